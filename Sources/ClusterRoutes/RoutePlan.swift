import Addresses

/// A route to another node's pods.
public struct NodeRoute: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var destination: IPNetwork
    public var gateway: IPAddress
    public var node: String

    public var description: String { "\(destination) via \(gateway) (\(node))" }
}

/// What `routes sync` changes: the routes to add, to replace (same destination, new gateway) and
/// to remove (nodes that left), computed from the cluster and the routes we own today.
public struct RoutePlan: Equatable, Sendable {
    public var add: [NodeRoute] = []
    public var replace: [NodeRoute] = []
    public var remove: [(destination: IPNetwork, gateway: IPAddress?)] = []
    public var keep: [NodeRoute] = []

    public var isEmpty: Bool { add.isEmpty && replace.isEmpty && remove.isEmpty }

    public static func == (l: RoutePlan, r: RoutePlan) -> Bool {
        l.add == r.add && l.replace == r.replace && l.keep == r.keep
            && l.remove.map(\.destination) == r.remove.map(\.destination) && l.remove.map(\.gateway) == r.remove.map(\.gateway)
    }

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case selfNotFound(name: String?, localAddresses: [IPAddress])
        public var description: String {
            switch self {
            case .selfNotFound(let name?, _): return "node \(name) is not in the cluster file"
            case .selfNotFound(nil, let addresses):
                return
                    "no node of the cluster file has one of this node's addresses (\(addresses.map(\.description).joined(separator: ", "))); name it with --node"
            }
        }
    }

    /// Routes every other node's podCIDRs via that node's address of the same family.
    /// This node is the one called `selfName`, or else the one owning one of `localAddresses`.
    public static func desiredRoutes(cluster: Cluster, selfName: String?, localAddresses: [IPAddress]) throws(Error) -> [NodeRoute] {
        let me: ClusterNode?
        if let selfName {
            me = cluster.nodes.first { $0.name == selfName }
        } else {
            me = cluster.nodes.first { node in node.addresses.contains { localAddresses.contains($0) } }
        }
        guard let me else { throw .selfNotFound(name: selfName, localAddresses: localAddresses) }
        return cluster.nodes.filter { $0.name != me.name }.flatMap { node in
            node.podCIDRs.compactMap { cidr in
                node.addresses.first { $0.family == cidr.address.family }.map { NodeRoute(destination: cidr, gateway: $0, node: node.name) }
            }
        }
    }

    /// Compares the desired routes with the ones we own now (`current`: destination and gateway).
    /// Linear: both sides are looked up by destination.
    public init(desired: [NodeRoute], current: [(destination: IPNetwork, gateway: IPAddress?)]) {
        var gateways: [IPNetwork: IPAddress?] = [:]
        for route in current { gateways[route.destination] = route.gateway }
        var wanted: Set<IPNetwork> = []
        for route in desired {
            wanted.insert(route.destination)
            if let existing = gateways[route.destination] {
                if existing == route.gateway { keep.append(route) } else { replace.append(route) }
            } else {
                add.append(route)
            }
        }
        remove = current.filter { !wanted.contains($0.destination) }
    }
}
