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
///
/// Indexed once, looked up by a linear search: a link carries some fifty attributes of which
/// a caller reads a handful, so this beats hashing every one into a dictionary.
public struct Attributes: Sendable {
    private struct Entry: Sendable {
        var type: UInt16
        var value: Range<Int>
    }

    private let bytes: [UInt8]
    private var entries: [Entry] = []

    public init(_ slice: ArraySlice<UInt8>) {
        bytes = Array(slice)
        // Attribute headers are in the host's byte order, as the kernel writes them: read them
        // through `nlattr` rather than byte by byte.
        let mask = cshim_nla_type_mask()
        let headerSize = MemoryLayout<nlattr>.size
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset + headerSize <= raw.count {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: nlattr.self)
                let length = Int(header.nla_len)
                guard length >= headerSize, offset + length <= raw.count else { break }
                entries.append(Entry(type: header.nla_type & mask, value: (offset + headerSize)..<(offset + length)))
                offset += cshim_nla_align(length)
            }
        }
    }

    /// The value of the last attribute of `type` (a repeated type keeps the last, as before).
    private func range(_ type: UInt16) -> Range<Int>? {
        entries.last { $0.type == type }?.value
    }

    public subscript(type: UInt16) -> [UInt8]? { range(type).map { Array(bytes[$0]) } }

    public func u8(_ type: UInt16) -> UInt8? { range(type).flatMap { bytes[$0].first } }

    public func u32(_ type: UInt16) -> UInt32? {
        guard let r = range(type), r.count >= 4 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt32.self) }
    }

    public func string(_ type: UInt16) -> String? {
        guard let r = range(type) else { return nil }
        return String(decoding: bytes[r].prefix { $0 != 0 }, as: UTF8.self)
    }

    public func nested(_ type: UInt16) -> Attributes? { range(type).map { Attributes(bytes[$0]) } }

    /// Every attribute of `type`, each read as a nest (a list such as nftables' expressions).
    public func nestedEach(_ type: UInt16) -> [Attributes] {
        entries.filter { $0.type == type }.map { Attributes(bytes[$0.value]) }
    }

    /// Every attribute, in order, each read as a nest.
    public var nestedAll: [Attributes] { entries.map { Attributes(bytes[$0.value]) } }

    /// A big-endian 64-bit value (nftables handles).
    public func u64BigEndian(_ type: UInt16) -> UInt64? {
        guard let r = range(type), r.count >= 8 else { return nil }
        return bytes[r].prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
