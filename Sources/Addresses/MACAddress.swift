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
        var bytes = randomBytes(6)
        bytes[0] = (bytes[0] & 0xFE) | 0x02
        return MACAddress(bytes: bytes)!
    }

    public var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: ":")
    }
}

/// Bytes from the kernel's random pool (the standard library's system generator reads getrandom),
/// for MACs and interface names.
public func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    var word: UInt64 = 0
    for i in bytes.indices {
        if i % 8 == 0 { word = generator.next() }
        bytes[i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i % 8)))
    }
    return bytes
}
