import Addresses

/// Policy enforcement for one node as nftables will hold it, as plain data: address sets shared
/// by the pods a policy selects, one chain per isolated local pod and direction, and the maps
/// from a local pod's address to its chain. `PolicyCompiler` builds it, `evaluate` runs it the
/// way the kernel does (for tests), and the agent turns differences between two of them into a
/// small nftables transaction.
///
/// In the kernel (`table inet bridge_ipam_policy`):
/// - chain `egress` (hook forward, priority filter) and `egress_to_node` (hook input): replies
///   of allowed connections pass (`ct state established,related`); a packet from a local pod
///   isolated for egress jumps to the pod's egress chain through the map `egress_v4`/`_v6`.
/// - chain `ingress` (hook forward, priority filter + 10): the same by destination
///   (`ingress_v4`/`_v6`). Accept in `egress` ends that base chain only, so a packet between two
///   local pods passes both checks.
/// - a pod chain accepts what one of its rules allows and drops the rest.
/// Traffic the node sends itself (kubelet's probes) takes the output hook and is never checked.
public struct Ruleset: Equatable, Sendable {
    /// A named interval set of addresses of one family.
    public struct AddressSet: Equatable, Sendable {
        public var family: IPAddress.Family
        /// Sorted, non-overlapping, non-adjacent inclusive ranges.
        public var ranges: [ClosedRange<IPAddress>]
        public init(family: IPAddress.Family, ranges: [ClosedRange<IPAddress>]) {
            self.family = family
            self.ranges = ranges
        }
        public func contains(_ ip: IPAddress) -> Bool { ranges.contains { $0.contains(ip) } }
    }

    /// `[meta nfproto F ip saddr|daddr @set] [meta l4proto P [th dport A-B]] accept`
    public struct Rule: Equatable, Sendable {
        /// The peer address set (its family is the set's); nil: any peer.
        public var peers: String?
        public var proto: PortProtocol?
        /// nil: every port (or no protocol restriction at all when `proto` is nil too).
        public var ports: ClosedRange<Int>?
        /// Which policy rule this comes from, for `nft list`.
        public var comment: String
        public init(peers: String? = nil, proto: PortProtocol? = nil, ports: ClosedRange<Int>? = nil, comment: String) {
            self.peers = peers
            self.proto = proto
            self.ports = ports
            self.comment = comment
        }
    }

    /// A pod's chain in one direction; what no rule accepts is dropped.
    public struct Chain: Equatable, Sendable {
        public var direction: Direction
        public var pod: ObjectKey
        public var rules: [Rule]
    }

    public var sets: [String: AddressSet] = [:]
    public var chains: [String: Chain] = [:]
    /// Local pod address -> its chain, per direction.
    public var ingress: [IPAddress: String] = [:]
    public var egress: [IPAddress: String] = [:]

    public init() {}

    public static let table = "bridge_ipam_policy"

    /// A packet opening a connection.
    public struct Packet: Sendable {
        public var source: IPAddress
        public var destination: IPAddress
        public var proto: PortProtocol
        public var port: Int
        /// Whether it arrives for the node itself (input hook) rather than passing it (forward).
        public var toNode: Bool
        public init(source: IPAddress, destination: IPAddress, proto: PortProtocol, port: Int, toNode: Bool = false) {
            self.source = source
            self.destination = destination
            self.proto = proto
            self.port = port
            self.toNode = toNode
        }
    }

    /// What the kernel does with the first packet of a connection passing this node (a packet
    /// sent by the node itself is never checked). Each node checks only its own pods: a
    /// connection between nodes passes the sender's egress and the receiver's ingress.
    public func accepts(_ packet: Packet) -> Bool {
        if let chain = egress[packet.source], !accepts(packet, chain: chain, peer: packet.destination) { return false }
        if packet.toNode { return true }
        if let chain = ingress[packet.destination], !accepts(packet, chain: chain, peer: packet.source) { return false }
        return true
    }

    private func accepts(_ packet: Packet, chain name: String, peer: IPAddress) -> Bool {
        guard let chain = chains[name] else { return true }
        return chain.rules.contains { rule in
            if let set = rule.peers {
                guard let s = sets[set], s.family == peer.family, s.contains(peer) else { return false }
            }
            if let proto = rule.proto {
                guard proto == packet.proto else { return false }
                if let ports = rule.ports, !ports.contains(packet.port) { return false }
            }
            return true
        }
    }
}

extension Ruleset.AddressSet {
    /// The union of `networks` minus `holes`, as the kernel's interval set holds it.
    public static func of(family: IPAddress.Family, networks: [ClosedRange<IPAddress>], holes: [ClosedRange<IPAddress>] = [])
        -> Ruleset.AddressSet
    {
        var ranges: [ClosedRange<IPAddress>] = []
        for r in networks.filter({ $0.lowerBound.family == family }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = ranges.last, r.lowerBound <= last.upperBound || last.upperBound.advanced(by: 1) == r.lowerBound {
                if r.upperBound > last.upperBound { ranges[ranges.count - 1] = last.lowerBound...r.upperBound }
            } else {
                ranges.append(r)
            }
        }
        for hole in holes where hole.lowerBound.family == family {
            ranges = ranges.flatMap { r -> [ClosedRange<IPAddress>] in
                guard r.overlaps(hole) else { return [r] }
                var pieces: [ClosedRange<IPAddress>] = []
                if r.lowerBound < hole.lowerBound { pieces.append(r.lowerBound...hole.lowerBound.advanced(by: -1)!) }
                if hole.upperBound < r.upperBound { pieces.append(hole.upperBound.advanced(by: 1)!...r.upperBound) }
                return pieces
            }
        }
        return Ruleset.AddressSet(family: family, ranges: ranges)
    }
}

extension IPNetwork {
    public var range: ClosedRange<IPAddress> { network...last }
}

extension IPAddress {
    public var single: ClosedRange<IPAddress> { self...self }
}
