#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

/// A 48-bit Ethernet address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (also with '-').
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let b = UInt8(part, radix: 16) else { return nil }
            bytes.append(b)
        }
        self.bytes = bytes
    }

    /// A random unicast, locally administered address, as the kernel picks for new veths.
    /// Choosing it ourselves means the result needs no extra round trip to read it back.
    public static func random() -> MACAddress {
        var bytes = [UInt8](repeating: 0, count: 6)
        let got = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress, 6, 0) }
        if got != 6 {
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        }
        bytes[0] = (bytes[0] & 0xFE) | 0x02
        return MACAddress(bytes: bytes)!
    }

    public var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: ":")
    }
}
