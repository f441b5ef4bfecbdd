#if canImport(Glibc)
import Glibc
#endif
import CNI
import JSON

/// The config's `logFile`: what the plugin was asked and what it answered, one line per
/// invocation (stamped with the time it started), e.g.
///
///     2026-11-25T15:20:01.123Z pid=4242 ADD container=ctr1 netns=/run/netns/pod1 ifname=eth0 network=podnet ok ips=10.244.1.10/24 duration=2.315ms
///     2026-11-25T15:20:07.004Z pid=4250 ADD container=ctr2 netns=/run/netns/pod2 ifname=eth0 network=podnet error code=100 msg="..." duration=0.912ms
///
/// Values are quoted and escaped when they hold spaces, quotes or control characters, so a line
/// is always one line. At `debug` the line also carries `stdin=` and `stdout=`. Writing it can
/// never fail the verb: a log that cannot be written is skipped.
struct InvocationLog {
    let settings: LogSettings

    /// When an invocation started: the wall clock for the line, the monotonic clock for the duration.
    struct Start {
        let wall: timespec
        let monotonic: timespec

        static func now() -> Start {
            var wall = timespec(), monotonic = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            clock_gettime(CLOCK_MONOTONIC, &monotonic)
            return Start(wall: wall, monotonic: monotonic)
        }

        /// Nanoseconds since the start.
        var elapsed: Int {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return (now.tv_sec - monotonic.tv_sec) * 1_000_000_000 + (now.tv_nsec - monotonic.tv_nsec)
        }
    }

    /// Everything one line reports.
    struct Invocation {
        var variables: [String: String]
        var network: String?
        var stdin: [UInt8]
        var stdout: String
        var reply: Plugin.Reply
        var started: Start

        var failed: Bool {
            if case .failed = reply { return true }
            return false
        }
    }

    func record(_ invocation: Invocation) {
        if settings.level == .error && !invocation.failed { return }
        let line = InvocationLog.line(invocation, level: settings.level, at: InvocationLog.utc(invocation.started.wall),
                                      elapsed: invocation.started.elapsed)
        LogFile(path: settings.path, maxSize: settings.maxSize).append(Array(line.utf8))
    }

    /// The line for `invocation`, newline included.
    static func line(_ invocation: Invocation, level: LogSettings.Level, at time: String, elapsed: Int) -> String {
        let v = invocation.variables
        var line = "\(time) pid=\(getpid()) \(value(v["CNI_COMMAND"] ?? "-"))"
        line += " container=\(value(v["CNI_CONTAINERID"] ?? ""))"
        line += " netns=\(value(v["CNI_NETNS"] ?? ""))"
        line += " ifname=\(value(v["CNI_IFNAME"] ?? ""))"
        if let network = invocation.network { line += " network=\(value(network))" }
        switch invocation.reply {
        case .done: line += " ok"
        case .result(let result): line += " ok ips=\(value(addresses(in: result).joined(separator: ",")))"
        case .failed(let error):
            line += " error code=\(error.code) msg=\(value(error.msg))"
            if !error.details.isEmpty { line += " details=\(value(error.details))" }
        }
        let microseconds = max(elapsed, 0) / 1000
        line += " duration=\(microseconds / 1000).\(padded(microseconds % 1000, to: 3))ms"
        if level == .debug {
            line += " stdin=\(value(String(decoding: invocation.stdin, as: UTF8.self)))"
            line += " stdout=\(value(invocation.stdout.hasSuffix("\n") ? String(invocation.stdout.dropLast()) : invocation.stdout))"
        }
        return line + "\n"
    }

    /// The addresses in an ADD result of any version (`ips` from 0.3.0 on, `ip4`/`ip6` before).
    static func addresses(in result: JSONValue) -> [String] {
        if let ips = result["ips"]?.arrayValue { return ips.compactMap { $0["address"]?.stringValue } }
        return ["ip4", "ip6"].compactMap { result[$0]?["ip"]?.stringValue }
    }

    /// `text` as it is when it is a plain word, otherwise quoted with `\` escapes (logfmt style).
    /// Bytes of multi-byte characters are copied as they are, so the result stays valid UTF-8.
    static func value(_ text: String) -> String {
        let plain = !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x3D }
        if plain { return text }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [0x22]
        out.reserveCapacity(text.utf8.count + 16)
        for byte in text.utf8 {
            switch byte {
            case 0x22: out += [0x5C, 0x22]  // \"
            case 0x5C: out += [0x5C, 0x5C]  // \\
            case 0x0A: out += [0x5C, 0x6E]  // \n
            case 0x0D: out += [0x5C, 0x72]  // \r
            case 0x09: out += [0x5C, 0x74]  // \t
            case 0..<0x20, 0x7F: out += [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]  // \u00XX
            default: out.append(byte)
            }
        }
        out.append(0x22)
        return String(decoding: out, as: UTF8.self)
    }

    /// A point in time, in UTC with milliseconds: 2026-11-25T15:20:01.123Z. Computed here rather
    /// than with gmtime_r, which makes glibc read /etc/localtime (five system calls) first.
    static func utc(_ t: timespec) -> String {
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
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return "\(year)-\(padded(month, to: 2))-\(padded(day, to: 2))T\(padded(secondOfDay / 3600, to: 2)):"
            + "\(padded(secondOfDay / 60 % 60, to: 2)):\(padded(secondOfDay % 60, to: 2)).\(padded(t.tv_nsec / 1_000_000, to: 3))Z"
    }

    static func padded(_ n: Int, to width: Int, radix: Int = 10) -> String {
        let digits = String(n, radix: radix)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
