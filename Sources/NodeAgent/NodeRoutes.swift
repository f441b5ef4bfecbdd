import Addresses
import ClusterRoutes
import RouteKernel
import JSON
import Netlink

/// The agent's picture of the cluster's Nodes, and the one thing it does with it: make this
/// node's subnet file, routes and VXLAN entries match (`NodeNetwork`, in the routing mode).
///
/// Faults stay with their node and family: a node not ready to be routed (no podCIDR yet, as
/// right after it joined; no InternalIP of a family; an invalid value; a podCIDR overlapping
/// another's; an entry the kernel refuses) is left out, in that family only, and reported by
/// name once per change; every other node converges.
public final class NodeRoutes {
    public let nodeName: String
    public let subnetFile: String
    let network: NodeNetwork
    private(set) var nodes: [String: Result<ClusterNode, Cluster.Error>] = [:]
    /// The message last logged under each key, so a lasting problem is logged once.
    private var reported: [String: String] = [:]
    /// The pods' MTU last worked out, kept while the underlay cannot be read.
    private var podMTU: UInt32?
    /// What the last sync did and found (routes desired, changes refused, nodes left out).
    public private(set) var lastOutcome: NodeNetwork.Outcome?

    public convenience init(nodeName: String, subnetFile: String, socket: NetlinkSocket, mode: RoutingMode = .auto) {
        self.init(
            nodeName: nodeName, subnetFile: subnetFile, network: NodeNetwork(mode: mode, kernel: NetlinkNetworkKernel(socket: socket)))
    }

    public init(nodeName: String, subnetFile: String, network: NodeNetwork) {
        self.nodeName = nodeName
        self.subnetFile = subnetFile
        self.network = network
    }

    public var nodeCount: Int { nodes.count }

    /// The InternalIPs of every node in the picture (this one included), also of nodes that
    /// cannot be routed yet (no podCIDR): traffic to them must not be masqueraded either.
    public var nodeAddresses: [IPAddress] {
        nodes.values.flatMap { (try? $0.get())?.addresses ?? [] }.sorted()
    }

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
    /// API, it has no subnet file, its tunnel cannot be set up, or a route of its table could not
    /// be applied.
    public var readinessProblem: String? {
        reported["self"] ?? reported["subnet"] ?? reported["local"]
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

    /// Makes the subnet file, routes and tunnel match the picture. Returns whether this node
    /// can serve pods: it is in the API and its subnet file holds its podCIDRs.
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

        var peers: [ClusterNode] = []
        var problems: [String: String] = [:]
        peers.reserveCapacity(nodes.count)
        for (name, entry) in nodes where name != nodeName {
            switch entry {
            case .failure(let error): problems[name] = "\(error); node \(name) gets no route"
            case .success(let node): peers.append(node)
            }
        }
        let outcome = network.sync(me: me, peers: peers)
        lastOutcome = outcome
        routeCounts = (outcome.desiredRoutes, outcome.desiredRoutes - outcome.refusedRoutes)
        podMTU = outcome.podMTU ?? podMTU
        let subnetReady = writeSubnetFile(me, mtu: podMTU)
        problems.merge(outcome.problems) { a, _ in a }
        for (name, problem) in problems { report("node " + name, problem) }
        for key in reported.keys where key.hasPrefix("node ") && problems[String(key.dropFirst(5))] == nil { reported[key] = nil }
        if let problem = outcome.localProblem { report("local", problem) } else { clear("local") }

        if outcome.tunnelRecreated {
            Log.line("VXLAN device \(network.overlay.device) created (VNI \(network.overlay.vni), UDP port \(network.overlay.port))")
        }
        var entries = 0
        for change in outcome.applied {
            switch change {
            case .addRoute, .replaceRoute, .removeRoute: Log.line(change.description)
            default: entries += 1
            }
        }
        if entries > 0 { Log.line("\(entries) neighbour and fdb entries of \(network.overlay.device) changed") }
        for (node, messages) in outcome.failures {
            let whose = node.isEmpty ? "a node that left" : "node \(node)"
            report(
                "apply " + node,
                "cannot apply every route: for \(whose): \(messages.joined(separator: "; ")); retrying at the next change or resync")
        }
        for key in reported.keys where key.hasPrefix("apply ") && outcome.failures[String(key.dropFirst(6))] == nil { reported[key] = nil }
        return subnetReady
    }

    /// One line per podCIDR of this node (its `spec.podCIDRs`, primary first), then the MTU
    /// pods get (`FLANNEL_MTU`, as in flannel's subnet.env): the subnet file the conflist's
    /// `ipam.subnetFile` names. Each agent has its own file, so agents sharing a machine never
    /// share an MTU. Written only when it differs.
    private func writeSubnetFile(_ me: ClusterNode, mtu: UInt32?) -> Bool {
        guard !me.podCIDRs.isEmpty else {
            report(
                "subnet", "node \(nodeName) has no podCIDR yet (the controller manager sets it with --allocate-node-cidrs); no subnet file")
            return false
        }
        let text = me.podCIDRs.map { "\($0)\n" }.joined() + (mtu.map { "FLANNEL_MTU=\($0)\n" } ?? "")
        do {
            if try AtomicFile.write(Array(text.utf8), to: subnetFile, mode: 0o644) {
                Log.line(
                    "subnet file \(subnetFile) written: \(me.podCIDRs.map(\.description).joined(separator: " "))\(mtu.map { ", MTU \($0)" } ?? "")"
                )
            }
            clear("subnet")
            return true
        } catch {
            report("subnet", "\(error)")
            return false
        }
    }

    private func report(_ key: String, _ message: String) {
        guard reported[key] != message else { return }
        reported[key] = message
        Log.line(message)
    }

    private func clear(_ key: String) { reported[key] = nil }
}
