#if canImport(Glibc)
import Glibc
#endif

/// A log line built as UTF-8 bytes. String interpolation cost several times as many instructions,
/// which mattered: the whole line must stay a small fraction of an ADD.
struct LogLine {
    private(set) var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(256) }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// `n` in decimal, zero-padded to `width` digits.
    mutating func append(_ n: Int, width: Int = 1) {
        if n < 0 { bytes.append(0x2D) }
        let m = n.magnitude
        var divisor: UInt = 1
        var digits = 1
        while m / divisor >= 10 {
            divisor *= 10
            digits += 1
        }
        for _ in digits..<max(width, digits) { bytes.append(0x30) }
        while divisor > 0 {
            bytes.append(0x30 + UInt8(m / divisor % 10))
            divisor /= 10
        }
    }

    /// `text` as it is when it is a plain word, otherwise quoted with `\` escapes (logfmt style):
    /// so a value can never end the line or fake another field. Bytes of multi-byte characters
    /// are copied as they are, so the line stays valid UTF-8.
    mutating func appendValue<Bytes: Collection<UInt8>>(_ text: Bytes) {
        if !text.isEmpty && text.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x3D }) {
            bytes.append(contentsOf: text)
            return
        }
        bytes.append(0x22)
        for byte in text {
            switch byte {
            case 0x22, 0x5C: bytes += [0x5C, byte]  // \" \\
            case 0x0A: bytes += [0x5C, 0x6E]  // \n
            case 0x0D: bytes += [0x5C, 0x72]  // \r
            case 0x09: bytes += [0x5C, 0x74]  // \t
            case 0..<0x20, 0x7F:  // \u00XX
                bytes += [0x5C, 0x75, 0x30, 0x30, LogLine.hex[Int(byte >> 4)], LogLine.hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(0x22)
    }

    mutating func appendValue(_ text: String) { appendValue(text.utf8) }

    /// ` key=value`: `key` is given with its leading space and `=`.
    mutating func field<Bytes: Collection<UInt8>>(_ key: StaticString, _ value: Bytes) {
        append(key)
        appendValue(value)
    }

    mutating func field(_ key: StaticString, _ value: String) { field(key, value.utf8) }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A point in time in UTC with milliseconds: 2026-11-25T15:20:01.123Z. Computed here rather
    /// than with gmtime_r, which makes glibc read /etc/localtime (five system calls) first.
    mutating func appendUTC(_ t: timespec) {
        let days = t.tv_sec >= 0 ? t.tv_sec / 86400 : (t.tv_sec - 86399) / 86400
        let secondOfDay = t.tv_sec - days * 86400
        // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day count.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        append(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
        append("-")
        append(month, width: 2)
        append("-")
        append(day, width: 2)
        append("T")
        append(secondOfDay / 3600, width: 2)
        append(":")
        append(secondOfDay / 60 % 60, width: 2)
        append(":")
        append(secondOfDay % 60, width: 2)
        append(".")
        append(t.tv_nsec / 1_000_000, width: 3)
        append("Z")
    }
}
