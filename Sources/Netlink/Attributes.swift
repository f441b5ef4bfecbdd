import CNetlinkShim

/// A received netlink message: its type, the family header's bytes, and its attributes.
public struct NetlinkMessage: Sendable {
    public let type: UInt16
    public let familyHeader: [UInt8]
    public let attributes: Attributes

    /// Reads the family header as `Header` (e.g. `ifinfomsg`).
    public func header<Header>(as: Header.Type) -> Header {
        precondition(familyHeader.count >= MemoryLayout<Header>.size)
        return familyHeader.withUnsafeBytes { $0.loadUnaligned(as: Header.self) }
    }
}

/// Netlink attributes (type-length-value, 4-byte aligned) read from a copy of their bytes.
public struct Attributes: Sendable {
    private var values: [UInt16: [UInt8]] = [:]

    public init(_ bytes: ArraySlice<UInt8>) {
        // Attribute headers are in the host's byte order, as the kernel writes them: read them
        // through `nlattr` rather than byte by byte.
        let mask = cshim_nla_type_mask()
        let headerSize = MemoryLayout<nlattr>.size
        var offset = 0
        while offset + headerSize <= bytes.count {
            let header = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: nlattr.self) }
            let length = Int(header.nla_len)
            guard length >= headerSize, offset + length <= bytes.count else { break }
            let start = bytes.startIndex + offset
            values[header.nla_type & mask] = Array(bytes[(start + headerSize)..<(start + length)])
            offset += cshim_nla_align(length)
        }
    }

    public subscript(type: UInt16) -> [UInt8]? { values[type] }

    public func u8(_ type: UInt16) -> UInt8? { values[type]?.first }

    public func u32(_ type: UInt16) -> UInt32? {
        guard let v = values[type], v.count >= 4 else { return nil }
        return v.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    public func string(_ type: UInt16) -> String? {
        guard let v = values[type] else { return nil }
        return String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    public func nested(_ type: UInt16) -> Attributes? { values[type].map { Attributes($0[...]) } }

    /// A big-endian 64-bit value (nftables handles).
    public func u64BigEndian(_ type: UInt16) -> UInt64? {
        guard let v = values[type], v.count >= 8 else { return nil }
        return v.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
