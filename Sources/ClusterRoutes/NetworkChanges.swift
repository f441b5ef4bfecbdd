import Addresses

/// What the kernel holds of ours: routes of our protocol in the main table, and the
/// neighbour and forwarding entries of our VXLAN device (nothing else owns entries there).
public struct InstalledNetwork: Equatable, Sendable {
    public var routes: [IPNetwork: InstalledRoute] = [:]
    public var neighbours: [IPAddress: MACAddress] = [:]
    public var forwarding: [MACAddress: IPAddress] = [:]

    public init(
        routes: [IPNetwork: InstalledRoute] = [:], neighbours: [IPAddress: MACAddress] = [:], forwarding: [MACAddress: IPAddress] = [:]
    ) {
        self.routes = routes
        self.neighbours = neighbours
        self.forwarding = forwarding
    }
}

public struct InstalledRoute: Hashable, Sendable {
    public var gateway: IPAddress?
    /// Out of our VXLAN device.
    public var tunnel: Bool

    public init(gateway: IPAddress?, tunnel: Bool) {
        self.gateway = gateway
        self.tunnel = tunnel
    }
}

/// One kernel change, and the node it is for (nil: a leftover of a node that is gone).
public enum NetworkChange: Hashable, Sendable, CustomStringConvertible {
    case addRoute(DesiredRoute)
    case replaceRoute(DesiredRoute, was: InstalledRoute)
    case removeRoute(IPNetwork, InstalledRoute)
    case setNeighbour(IPAddress, Owned<MACAddress>)
    case removeNeighbour(IPAddress, MACAddress)
    case setForwarding(MACAddress, Owned<IPAddress>)
    case removeForwarding(MACAddress, IPAddress)

    public var node: String? {
        switch self {
        case .addRoute(let r), .replaceRoute(let r, _): return r.node
        case .setNeighbour(_, let owned): return owned.node
        case .setForwarding(_, let owned): return owned.node
        case .removeRoute, .removeNeighbour, .removeForwarding: return nil
        }
    }

    public var description: String {
        func via(_ r: InstalledRoute) -> String { (r.gateway.map { " via \($0)" } ?? "") + (r.tunnel ? " (vxlan)" : "") }
        switch self {
        case .addRoute(let r): return "route added \(r)"
        case .replaceRoute(let r, let was): return "route replaced \(r), was\(via(was))"
        case .removeRoute(let destination, let was): return "route removed \(destination)\(via(was))"
        case .setNeighbour(let ip, let mac): return "neighbour set \(ip) lladdr \(mac.value) (\(mac.node))"
        case .removeNeighbour(let ip, let mac): return "neighbour removed \(ip) lladdr \(mac)"
        case .setForwarding(let mac, let dst): return "fdb set \(mac) dst \(dst.value) (\(dst.node))"
        case .removeForwarding(let mac, let dst): return "fdb removed \(mac) dst \(dst)"
        }
    }

    /// Removals first (a route before the entries it used), then entries before the routes
    /// that use them.
    var order: Int {
        switch self {
        case .removeRoute: return 0
        case .removeNeighbour: return 1
        case .removeForwarding: return 2
        case .setForwarding: return 3
        case .setNeighbour: return 4
        case .addRoute, .replaceRoute: return 5
        }
    }
}

extension DesiredNetwork {
    /// The changes that make `installed` match this: linear in entries, then sorted so that the
    /// log and the tests read in a stable order.
    public func changes(from installed: InstalledNetwork) -> [NetworkChange] {
        var changes: [NetworkChange] = []
        for (destination, route) in routes {
            guard let current = installed.routes[destination] else {
                changes.append(.addRoute(route))
                continue
            }
            if current.gateway != route.gateway || current.tunnel != route.tunnel { changes.append(.replaceRoute(route, was: current)) }
        }
        for (destination, current) in installed.routes where routes[destination] == nil {
            changes.append(.removeRoute(destination, current))
        }
        for (ip, mac) in neighbours where installed.neighbours[ip] != mac.value { changes.append(.setNeighbour(ip, mac)) }
        for (ip, mac) in installed.neighbours where neighbours[ip] == nil { changes.append(.removeNeighbour(ip, mac)) }
        for (mac, dst) in forwarding where installed.forwarding[mac] != dst.value { changes.append(.setForwarding(mac, dst)) }
        for (mac, dst) in installed.forwarding where forwarding[mac] == nil { changes.append(.removeForwarding(mac, dst)) }
        // Each key is made once: made in the comparator, 15,000 changes cost seconds.
        return changes.map { (key: ($0.order, $0.description), change: $0) }.sorted { $0.key < $1.key }.map(\.change)
    }
}
