#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address, ordered numerically within a family.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    public enum Family: Sendable { case v4, v6 }

    public var family: Family {
        switch self {
        case .v4: return .v4
        case .v6: return .v6
        }
    }

    /// Width of the address in bits.
    public var bitWidth: Int { family == .v4 ? 32 : 128 }

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form.
    public init?(_ text: String) {
        var storage = (UInt64(0), UInt64(0))
        if !text.contains(":") {
            let ok = withUnsafeMutableBytes(of: &storage) { inet_pton(AF_INET, text, $0.baseAddress) == 1 }
            guard ok else { return nil }
            let bytes = withUnsafeBytes(of: storage) { Array($0.prefix(4)) }
            self.init(bytes: bytes)
        } else {
            let ok = withUnsafeMutableBytes(of: &storage) { inet_pton(AF_INET6, text, $0.baseAddress) == 1 }
            guard ok else { return nil }
            self.init(bytes: withUnsafeBytes(of: storage) { Array($0) })
        }
    }

    /// Builds an address from 4 or 16 bytes in network order.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16: self = .v6(bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
        default: return nil
        }
    }

    /// The address in network byte order (4 or 16 bytes).
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v): return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
        case .v6(let v): return (0..<16).map { UInt8(truncatingIfNeeded: v >> (120 - 8 * $0)) }
        }
    }

    public var description: String {
        let raw = bytes
        var text = [CChar](repeating: 0, count: 64)
        let family = raw.count == 4 ? AF_INET : AF_INET6
        raw.withUnsafeBytes { _ = inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address `offset` steps away, or nil when that leaves the family's address space.
    public func advanced(by offset: Int) -> IPAddress? {
        switch self {
        case .v4(let v):
            let r = Int64(v) + Int64(offset)
            guard r >= 0, r <= Int64(UInt32.max) else { return nil }
            return .v4(UInt32(r))
        case .v6(let v):
            if offset >= 0 {
                let (r, overflow) = v.addingReportingOverflow(UInt128(offset))
                return overflow ? nil : .v6(r)
            }
            let (r, overflow) = v.subtractingReportingOverflow(UInt128(-offset))
            return overflow ? nil : .v6(r)
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let a), .v6(let b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }

    /// Number of addresses from `self` to `other` inclusive, saturating; same family only.
    public func count(through other: IPAddress) -> UInt128 {
        switch (self, other) {
        case (.v4(let a), .v4(let b)): return b >= a ? UInt128(b - a) + 1 : 0
        case (.v6(let a), .v6(let b)): return b >= a ? (b - a == UInt128.max ? UInt128.max : b - a + 1) : 0
        default: return 0
        }
    }
}

/// An address with a prefix length, as in `10.244.1.0/24` or `10.244.1.5/24`.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bitWidth else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `ADDRESS/PREFIX`; the address may have host bits set (see `isNetworkAddress`).
    public init?(cidr text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
            let prefix = Int(parts[1]), parts[1].allSatisfy(\.isASCII)
        else { return nil }
        self.init(address: address, prefixLength: prefix)
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// The first address of the network (host bits cleared).
    public var network: IPAddress {
        switch address {
        case .v4(let v): return .v4(prefixLength == 0 ? 0 : v & ~(UInt32.max >> prefixLength))
        case .v6(let v): return .v6(prefixLength == 0 ? 0 : v & ~(UInt128.max >> prefixLength))
        }
    }

    /// The last address of the network (host bits set).
    public var last: IPAddress {
        switch address {
        case .v4(let v): return .v4(prefixLength == 32 ? v : v | (UInt32.max >> prefixLength))
        case .v6(let v): return .v6(prefixLength == 128 ? v : v | (UInt128.max >> prefixLength))
        }
    }

    /// The network with host bits cleared, e.g. 10.244.1.5/24 -> 10.244.1.0/24.
    public var masked: IPNetwork { IPNetwork(address: network, prefixLength: prefixLength)! }

    public var isNetworkAddress: Bool { address == network }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.family == address.family && ip >= network && ip <= last
    }

    public func overlaps(_ other: IPNetwork) -> Bool {
        contains(other.network) || other.contains(network)
    }
}
