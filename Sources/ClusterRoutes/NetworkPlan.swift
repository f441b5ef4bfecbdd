import Addresses

/// What this node should hold toward the other nodes: one route per podCIDR, and for each peer
/// reached through the tunnel a neighbour and a forwarding entry. Worked out per node and per
/// family: a peer that cannot be routed in one family (no InternalIP of it, an overlap) loses
/// only that, and the reason is kept under its name.
public struct DesiredNetwork: Equatable, Sendable {
    public var routes: [IPNetwork: DesiredRoute] = [:]
    /// Tunnel address -> the peer's VTEP MAC.
    public var neighbours: [IPAddress: Owned<MACAddress>] = [:]
    /// VTEP MAC -> the peer's underlay address.
    public var forwarding: [MACAddress: Owned<IPAddress>] = [:]
    /// Why a node is (partly) left out, by node name.
    public var problems: [String: String] = [:]

    public init() {}

    public var tunnelPeers: Int { forwarding.count }
}

/// A value and the node it is for (named in logs and errors).
public struct Owned<Value: Hashable & Sendable>: Hashable, Sendable {
    public var value: Value
    public var node: String

    public init(_ value: Value, node: String) {
        self.value = value
        self.node = node
    }
}

public struct DesiredRoute: Hashable, Sendable, CustomStringConvertible {
    public var destination: IPNetwork
    public var gateway: IPAddress
    /// Through the VXLAN device, onlink; else a plain route via an on-link InternalIP.
    public var tunnel: Bool
    public var node: String

    public init(destination: IPNetwork, gateway: IPAddress, tunnel: Bool, node: String) {
        self.destination = destination
        self.gateway = gateway
        self.tunnel = tunnel
        self.node = node
    }

    public var description: String { "\(destination) via \(gateway)\(tunnel ? " (vxlan)" : "") (\(node))" }
}

/// This node as the planner needs it.
public struct LocalNode: Sendable {
    public var node: ClusterNode
    /// The networks of this node's own addresses (not on our VXLAN device): a peer address in
    /// one of them is on-link.
    public var connected: [IPNetwork]

    public init(node: ClusterNode, connected: [IPNetwork]) {
        self.node = node
        self.connected = connected
    }

    /// The family the tunnel runs over: IPv4 when this node has an IPv4 InternalIP (dual-stack
    /// pods then share one IPv4 tunnel), else IPv6.
    public var underlayFamily: IPAddress.Family? {
        node.addresses.contains { $0.family == .v4 } ? .v4 : node.addresses.first?.family
    }

    public var underlayAddress: IPAddress? { underlayFamily.flatMap { f in node.addresses.first { $0.family == f } } }

    func isOnLink(_ ip: IPAddress) -> Bool { connected.contains { $0.contains(ip) } }
}

extension DesiredNetwork {
    /// Plans for `local` against `peers` (this node excluded or not; it is skipped by name).
    /// Sorting for the overlap check is the only super-linear step: O(N log N) in podCIDRs.
    public init(local: LocalNode, peers: [ClusterNode], mode: RoutingMode) {
        self.init()
        let me = local.node
        let others = peers.filter { $0.name != me.name }
        let culprits = DesiredNetwork.overlapping(me: me, others: others)
        let underlayFamily = local.underlayFamily
        for peer in others {
            var reasons: [String] = []
            if peer.podCIDRs.isEmpty { reasons.append("node \(peer.name) has no podCIDR yet; it gets no route until it has") }
            for cidr in peer.podCIDRs {
                if let other = culprits[cidr] {
                    reasons.append("podCIDR \(cidr) of node \(peer.name) overlaps \(other); it gets no route")
                    continue
                }
                let family = cidr.address.family
                let sameFamily = peer.addresses.first { $0.family == family }
                let direct: Bool
                switch mode {
                case .direct: direct = true
                case .vxlan: direct = false
                case .auto: direct = sameFamily.map(local.isOnLink) ?? false
                }
                if direct {
                    guard let gateway = sameFamily else {
                        reasons.append(
                            "node \(peer.name) has no \(family == .v4 ? "IPv4" : "IPv6") InternalIP; its podCIDR \(cidr) gets no route")
                        continue
                    }
                    routes[cidr] = DesiredRoute(destination: cidr, gateway: gateway, tunnel: false, node: peer.name)
                    continue
                }
                guard let underlayFamily, let underlay = peer.addresses.first(where: { $0.family == underlayFamily }) else {
                    reasons.append(
                        "node \(peer.name) has no \(underlayFamily == .v6 ? "IPv6" : "IPv4") InternalIP to tunnel to; its podCIDR \(cidr) gets no route"
                    )
                    continue
                }
                let mac = OverlaySettings.vtepMAC(for: underlay)
                let tunnelAddress = OverlaySettings.tunnelAddress(of: cidr)
                routes[cidr] = DesiredRoute(destination: cidr, gateway: tunnelAddress, tunnel: true, node: peer.name)
                neighbours[tunnelAddress] = Owned(mac, node: peer.name)
                forwarding[mac] = Owned(underlay, node: peer.name)
            }
            if !reasons.isEmpty { problems[peer.name] = reasons.joined(separator: "; ") }
        }
    }

    /// The podCIDRs that overlap another node's, each with the first one it overlaps. Sorted by
    /// first address, a network overlaps an earlier one exactly when it starts before the
    /// furthest end seen so far. Overlapping this node's own podCIDR condemns only the peer.
    static func overlapping(me: ClusterNode, others: [ClusterNode]) -> [IPNetwork: String] {
        var all: [(cidr: IPNetwork, node: String)] = []
        for node in [me] + others { for cidr in node.podCIDRs { all.append((cidr, node.name)) } }
        all.sort {
            $0.cidr.network < $1.cidr.network || ($0.cidr.network == $1.cidr.network && $0.cidr.prefixLength < $1.cidr.prefixLength)
        }
        var culprits: [IPNetwork: String] = [:]
        var furthest: (end: IPAddress, cidr: IPNetwork, node: String)?
        for entry in all {
            if let f = furthest, f.end.family == entry.cidr.address.family, entry.cidr.network <= f.end, f.node != entry.node {
                if entry.node != me.name { culprits[entry.cidr] = "podCIDR \(f.cidr) of node \(f.node)" }
                if f.node != me.name { culprits[f.cidr] = culprits[f.cidr] ?? "podCIDR \(entry.cidr) of node \(entry.node)" }
            }
            if furthest == nil || furthest!.end.family != entry.cidr.address.family || entry.cidr.last > furthest!.end {
                furthest = (entry.cidr.last, entry.cidr, entry.node)
            }
        }
        return culprits
    }
}
