import Addresses
import ClusterRoutes
import JSON
import Netlink

/// The agent's picture of the cluster's Nodes, and the one thing it does with it: make this
/// node's subnet file and routing table match, with the same route plan as `routes sync`.
///
/// Unlike `routes sync`, which refuses a whole file with one bad node, a node that is not ready
/// to be routed (no podCIDR yet, as right after it joined; no InternalIP; an invalid value) is
/// only left out and reported once; overlapping podCIDRs still stop every change.
public final class NodeRoutes {
    public let nodeName: String
    public let subnetFile: String
    let sync: RouteSync
    private(set) var nodes: [String: Result<ClusterNode, Cluster.Error>] = [:]
    /// The message last logged under each key, so a lasting problem is logged once.
    private var reported: [String: String] = [:]

    public init(nodeName: String, subnetFile: String, socket: NetlinkSocket) {
        self.nodeName = nodeName
        self.subnetFile = subnetFile
        self.sync = RouteSync(socket: socket)
    }

    public var nodeCount: Int { nodes.count }

    /// One Node object as the picture holds it: parsed, or why it cannot be routed (nil
    /// without a name).
    public static func entry(_ object: JSONValue) -> (name: String, node: Result<ClusterNode, Cluster.Error>)? {
        guard let name = object["metadata"]?["name"]?.stringValue else { return nil }
        do { return (name, .success(try Cluster.parseKubernetesNode(object, index: 0))) } catch { return (name, .failure(error)) }
    }

    /// Replaces the picture with a NodeList's items.
    public func replaceAll(_ items: [JSONValue]) {
        nodes = [:]
        for (i, item) in items.enumerated() { set(item, index: i) }
    }

    /// Replaces the picture with a whole list's entries (see `entry`), as the agent's paginated
    /// list collects them one item at a time.
    public func replaceAll(_ entries: [String: Result<ClusterNode, Cluster.Error>]) { nodes = entries }

    /// The routes the last reconcile wanted, and how many of them the routing table then held.
    public private(set) var routeCounts = (desired: 0, installed: 0)

    /// What keeps this node from being ready, as last reported (nil: nothing): it is not in the
    /// API, it has no subnet file, or a route of its table could not be applied.
    public var readinessProblem: String? {
        reported["self"] ?? reported["subnet"] ?? reported["cluster"]
            ?? reported.keys.filter { $0.hasPrefix("apply") }.min().flatMap { reported[$0] }
    }

    /// Applies one watch event; returns whether the picture changed.
    public func apply(_ event: WatchEvent) -> Bool {
        switch event.kind {
        case .added, .modified:
            guard let name = event.object["metadata"]?["name"]?.stringValue else { return false }
            let before = nodes[name]
            set(event.object, index: 0)
            return nodes[name] != before
        case .deleted:
            guard let name = event.object["metadata"]?["name"]?.stringValue else { return false }
            return nodes.removeValue(forKey: name) != nil
        case .bookmark, .error:
            return false
        }
    }

    private func set(_ object: JSONValue, index: Int) {
        guard let (name, node) = NodeRoutes.entry(object) else { return }
        nodes[name] = node
    }

    /// Makes the subnet file and the routing table match the picture. Returns whether this
    /// node can serve pods: it is in the API and its subnet file holds its podCIDRs.
    @discardableResult
    public func reconcile() -> Bool {
        guard let entry = nodes[nodeName] else {
            report("self", "node \(nodeName) is not in the API (yet); routes and subnet file are left as they are")
            return false
        }
        let me: ClusterNode
        switch entry {
        case .failure(let error):
            report("self", "\(error); routes and subnet file are left as they are")
            return false
        case .success(let node): me = node
        }
        clear("self")
        let subnetReady = writeSubnetFile(me)

        var usable: [ClusterNode] = []
        var problems: Set<String> = []
        for name in nodes.keys.sorted() where name != nodeName {
            switch nodes[name]! {
            case .failure(let error):
                problems.insert(name)
                report("node " + name, "\(error); node \(name) gets no route")
            case .success(let node):
                do { try Cluster(nodes: [node]).validate() } catch {
                    problems.insert(name)
                    report("node " + name, "\(error); node \(name) gets no route until it has")
                    continue
                }
                usable.append(node)
            }
        }
        for key in reported.keys where key.hasPrefix("node ") && !problems.contains(String(key.dropFirst(5))) { reported[key] = nil }

        let meComplete = (try? Cluster(nodes: [me]).validate()) != nil
        do { try Cluster(nodes: usable + (meComplete ? [me] : [])).validate() } catch {
            report("cluster", "\(error); the routing table is left as it was")
            return subnetReady
        }
        clear("cluster")
        do {
            let desired = try RoutePlan.desiredRoutes(cluster: Cluster(nodes: usable + [me]), selfName: nodeName, localAddresses: [])
            let before = try sync.currentRoutes()
            let plan = RoutePlan(desired: desired, current: before)
            guard !plan.isEmpty else {
                clear("apply")
                routeCounts = (desired.count, desired.count)
                return subnetReady
            }
            var failure: NetlinkError?
            do { try sync.apply(plan) } catch { failure = error }
            let after = try sync.currentRoutes()
            logChanges(before: before, after: after, desired: desired)
            var installed: [IPNetwork: IPAddress?] = [:]
            for route in after { installed[route.destination] = route.gateway }
            routeCounts = (desired.count, desired.filter { installed[$0.destination] == .some($0.gateway) }.count)
            if let failure {
                report("apply", "cannot apply every route: \(failure); retrying at the next change or resync")
            } else {
                clear("apply")
            }
        } catch {
            report("apply", "cannot read or change the routing table: \(error)")
        }
        return subnetReady
    }

    /// One line per podCIDR of this node (its `spec.podCIDRs`, primary first): the subnet file
    /// the conflist's `ipam.subnetFile` names. Written only when it differs.
    private func writeSubnetFile(_ me: ClusterNode) -> Bool {
        guard !me.podCIDRs.isEmpty else {
            report(
                "subnet", "node \(nodeName) has no podCIDR yet (the controller manager sets it with --allocate-node-cidrs); no subnet file")
            return false
        }
        let text = me.podCIDRs.map { "\($0)\n" }.joined()
        do {
            if try AtomicFile.write(Array(text.utf8), to: subnetFile, mode: 0o644) {
                Log.line("subnet file \(subnetFile) written: \(me.podCIDRs.map(\.description).joined(separator: " "))")
            }
            clear("subnet")
            return true
        } catch {
            report("subnet", "\(error)")
            return false
        }
    }

    private func logChanges(
        before: [(destination: IPNetwork, gateway: IPAddress?)], after: [(destination: IPNetwork, gateway: IPAddress?)],
        desired: [NodeRoute]
    ) {
        func node(_ destination: IPNetwork) -> String { desired.first { $0.destination == destination }.map { " (\($0.node))" } ?? "" }
        func via(_ gateway: IPAddress?) -> String { gateway.map { " via \($0)" } ?? "" }
        for route in before where !after.contains(where: { $0.destination == route.destination }) {
            Log.line("route removed \(route.destination)\(via(route.gateway))")
        }
        for route in after {
            if let old = before.first(where: { $0.destination == route.destination }) {
                if old.gateway != route.gateway {
                    Log.line("route replaced \(route.destination)\(via(route.gateway))\(node(route.destination)), was\(via(old.gateway))")
                }
            } else {
                Log.line("route added \(route.destination)\(via(route.gateway))\(node(route.destination))")
            }
        }
    }

    private func report(_ key: String, _ message: String) {
        guard reported[key] != message else { return }
        reported[key] = message
        Log.line(message)
    }

    private func clear(_ key: String) { reported[key] = nil }
}
