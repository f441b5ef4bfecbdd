import Addresses
/// One allocation range inside a subnet, as host-local's `ranges` entries describe it.
public struct IPRange: Equatable, Sendable, CustomStringConvertible {
    public let subnet: IPNetwork
    public let rangeStart: IPAddress
    public let rangeEnd: IPAddress
    public let gateway: IPAddress?

    /// Why a range could not be built; each case reads as a sentence for an operator.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case hostBitsSet(IPNetwork)
        case tooSmall(IPNetwork)
        case outsideSubnet(field: String, IPAddress, IPNetwork)
        case startAfterEnd(IPAddress, IPAddress)
        case familyMismatch(field: String, IPAddress, IPNetwork)

        public var description: String {
            switch self {
            case .hostBitsSet(let n): return "subnet \(n) has host bits set (the network address is \(n.masked))"
            case .tooSmall(let n): return "subnet \(n) is too small to allocate from"
            case .outsideSubnet(let field, let ip, let n): return "\(field) \(ip) is outside subnet \(n)"
            case .startAfterEnd(let s, let e): return "rangeStart \(s) is after rangeEnd \(e)"
            case .familyMismatch(let field, let ip, let n): return "\(field) \(ip) is not of the same IP family as subnet \(n)"
            }
        }
    }

    /// Fills in host-local's defaults: the gateway is the subnet's first host, the range spans all
    /// hosts (IPv4 leaves out the network and broadcast addresses).
    public init(
        subnet: IPNetwork, rangeStart: IPAddress? = nil, rangeEnd: IPAddress? = nil,
        gateway: IPAddress? = nil
    ) throws(Error) {
        guard subnet.isNetworkAddress else { throw .hostBitsSet(subnet) }
        guard subnet.prefixLength <= subnet.address.bitWidth - 2 else { throw .tooSmall(subnet) }
        for (field, ip) in [("rangeStart", rangeStart), ("rangeEnd", rangeEnd), ("gateway", gateway)] {
            guard let ip else { continue }
            guard ip.family == subnet.address.family else { throw .familyMismatch(field: field, ip, subnet) }
            guard subnet.contains(ip) else { throw .outsideSubnet(field: field, ip, subnet) }
        }
        let firstHost = subnet.network.advanced(by: 1)!
        let lastHost = subnet.address.family == .v4 ? subnet.last.advanced(by: -1)! : subnet.last
        let start = rangeStart ?? firstHost
        let end = rangeEnd ?? lastHost
        guard start <= end else { throw .startAfterEnd(start, end) }
        self.subnet = subnet
        self.rangeStart = start
        self.rangeEnd = end
        self.gateway = gateway ?? firstHost
    }

    public var description: String { "\(rangeStart)-\(rangeEnd)" }

    public func contains(_ ip: IPAddress) -> Bool { ip >= rangeStart && ip <= rangeEnd && ip.family == rangeStart.family }

    /// Whether `ip` may be handed to a pod: inside the range, and neither the gateway nor the
    /// subnet's network or broadcast address.
    public func isAssignable(_ ip: IPAddress) -> Bool {
        guard contains(ip), ip != gateway, ip != subnet.network else { return false }
        return !(ip.family == .v4 && ip == subnet.last)
    }

    public func overlaps(_ other: IPRange) -> Bool {
        rangeStart.family == other.rangeStart.family && rangeStart <= other.rangeEnd && other.rangeStart <= rangeEnd
    }
}

/// A set of ranges of one family from which one address is handed out (host-local's "range set").
public struct RangeSet: Equatable, Sendable, CustomStringConvertible {
    public let ranges: [IPRange]

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case empty
        case mixedFamilies
        case overlapping(IPRange, IPRange)
        public var description: String {
            switch self {
            case .empty: return "a range set must hold at least one range"
            case .mixedFamilies: return "all ranges of a range set must be of one IP family"
            case .overlapping(let a, let b): return "ranges \(a) and \(b) overlap"
            }
        }
    }

    public init(_ ranges: [IPRange]) throws(Error) {
        guard let first = ranges.first else { throw .empty }
        guard ranges.allSatisfy({ $0.rangeStart.family == first.rangeStart.family }) else { throw .mixedFamilies }
        for i in ranges.indices {
            for j in ranges.indices where j > i && ranges[i].overlaps(ranges[j]) {
                throw .overlapping(ranges[i], ranges[j])
            }
        }
        self.ranges = ranges
    }

    public var family: IPAddress.Family { ranges[0].rangeStart.family }
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    public func range(containing ip: IPAddress) -> IPRange? { ranges.first { $0.contains(ip) } }

    public func overlaps(_ other: RangeSet) -> Bool {
        ranges.contains { a in other.ranges.contains { a.overlaps($0) } }
    }
}

extension RangeSet {
    /// How many addresses the set can hand out (gateway, network and broadcast excluded).
    public var assignableCount: UInt128 {
        ranges.reduce(UInt128(0)) { total, range in
            var count = range.rangeStart.count(through: range.rangeEnd)
            for reserved in [range.gateway, range.subnet.network, range.rangeStart.family == .v4 ? range.subnet.last : nil] {
                if let reserved, range.contains(reserved), count > 0 { count -= 1 }
            }
            return total &+ count
        }
    }
}
