#if canImport(Glibc)
import Glibc
#endif
import Addresses
import JSON
import NFTables
import NetworkPolicy
import Netlink

/// NetworkPolicy enforcement (`--network-policy`): lists and watches Pods, Namespaces and
/// NetworkPolicies with a `ResourceWatcher` each (as the Nodes are watched: paginated list,
/// resourceVersion, bookmarks, 410 relists, backoff), on a thread and transfer loop of its own so
/// that the route work never waits for it. It keeps the cluster picture in `ClusterState`,
/// compiles this node's rules and applies what changed to `table inet bridge_ipam_policy` 20 ms
/// after a quiet stream (at most 200 ms after the first change of a burst). Nothing is applied
/// until every kind has been listed once, so a half-known cluster never narrows what the kernel
/// enforces; until then (and while the API server is away) the kernel keeps the rules it has.
/// Every `resync` seconds the table is rebuilt whole from the picture.
public final class PolicyAgent: @unchecked Sendable {
    let options: AgentOptions
    let connection: KubeConnection
    let nodeName: String
    /// The picture, shared by the three kinds' `PolicyWatch`es (one thread uses them all).
    final class Picture {
        var state = ClusterState()
        var listed: Set<ClusterState.Kind> = []
    }
    let picture = Picture()

    public init(options: AgentOptions, connection: KubeConnection) {
        self.options = options
        self.connection = connection
        self.nodeName = options.nodeName!
    }

    static func path(_ kind: ClusterState.Kind) -> String {
        switch kind {
        case .pods: return "/api/v1/pods"
        case .namespaces: return "/api/v1/namespaces"
        case .networkpolicies: return "/apis/networking.k8s.io/v1/networkpolicies"
        }
    }

    /// Starts the enforcement thread; returns at once.
    public func start() {
        Log.line("network policy: enforcing for the pods of node \(nodeName) in table inet \(PolicyTable.table)")
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { context in
                let agent = Unmanaged<PolicyAgent>.fromOpaque(context!).takeRetainedValue()
                agent.run()
                return nil
            }, context)
        if result != 0 {
            Log.line("network policy: cannot start its thread: \(String(cString: strerror(result)))")
            exit(1)
        }
        pthread_detach(thread)
    }

    /// One kind's objects, delivered by its watcher into the shared picture: a list is staged
    /// and replaces the kind's objects only once complete.
    final class PolicyWatch: WatchedResource {
        let kind: ClusterState.Kind
        let picture: Picture
        private var staged: [JSONValue] = []
        init(kind: ClusterState.Kind, picture: Picture) {
            self.kind = kind
            self.picture = picture
        }
        func listStarted() { staged = [] }
        func listed(_ item: JSONValue) { staged.append(item) }
        func listEnded() {
            picture.state.replaceAll(kind, items: staged)
            picture.listed.insert(kind)
            staged = []
        }
        func apply(_ event: WatchEvent) -> Bool {
            picture.state.apply(kind, object: event.object, deleted: event.kind == .deleted)
        }
    }

    private func run() {
        let loop: TransferLoop
        let table: PolicyTable
        var watchers: [ResourceWatcher] = []
        do {
            loop = try TransferLoop()
            table = try PolicyTable()
            for kind in ClusterState.Kind.allCases {
                let watcher = ResourceWatcher(
                    path: PolicyAgent.path(kind), resource: PolicyWatch(kind: kind, picture: picture),
                    request: try KubeRequest(connection: connection), loop: loop,
                    backoff: Backoff(initial: 1, maximum: options.backoffMax), pageSize: options.listPageSize,
                    watchTimeout: options.watchTimeout)
                watcher.observer = observer(kind)
                watchers.append(watcher)
            }
        } catch {
            Log.line("network policy: cannot start: \(error)")
            exit(1)
        }
        var syncAt: Double?
        var firstPendingChange: Double?
        var nextResync = Clock.monotonic() + options.resync
        while true {
            let now = Clock.monotonic()
            var relisted = false
            for watcher in watchers {
                watcher.poll(now: now)
                let changes = watcher.takeChanges()
                if changes.changed || changes.relisted {
                    relisted = relisted || changes.relisted
                    if firstPendingChange == nil { firstPendingChange = now }
                    syncAt = min(now + 0.02, firstPendingChange! + 0.2)
                }
            }
            let ready = picture.listed.count == ClusterState.Kind.allCases.count
            if ready && (now >= nextResync || table.applied == nil) {
                apply(table, whole: true)
                nextResync = Clock.monotonic() + options.resync
                syncAt = nil
                firstPendingChange = nil
            } else if ready, let at = syncAt, now >= at || relisted {
                apply(table, whole: false)
                syncAt = nil
                firstPendingChange = nil
            }
            var due = watchers.map(\.nextDue).min() ?? .infinity
            if ready { due = min(due, syncAt ?? .infinity, nextResync, table.applied == nil ? Clock.monotonic() + 1 : .infinity) }
            loop.run(timeout: min(due - Clock.monotonic(), 60))
            for watcher in watchers { watcher.drain() }
        }
    }

    private func apply(_ table: PolicyTable, whole: Bool) {
        let started = Clock.monotonic()
        let content = PolicyAgent.content(PolicyCompiler.compile(picture.state, node: nodeName))
        let compiled = Clock.monotonic()
        do {
            if whole {
                try table.replace(with: content)
                Log.line(
                    "network policy: table rebuilt: \(content.chains.count) pod chains, \(content.sets.count) sets (compile \(PolicyAgent.ms(compiled - started)) ms, apply \(PolicyAgent.ms(Clock.monotonic() - compiled)) ms)"
                )
            } else {
                let messages = try table.update(to: content)
                if messages > 0 {
                    Log.line(
                        "network policy: applied \(messages) changes: \(content.chains.count) pod chains, \(content.sets.count) sets (compile \(PolicyAgent.ms(compiled - started)) ms, apply \(PolicyAgent.ms(Clock.monotonic() - compiled)) ms)"
                    )
                }
            }
        } catch {
            // `update` forgot what the kernel holds: the next turn rebuilds the whole table.
            Log.line("network policy: cannot apply the rules: \(error); the whole table is rebuilt next")
            table.forget()
        }
    }

    private func observer(_ kind: ClusterState.Kind) -> WatcherObserver {
        var observer = WatcherObserver()
        observer.listed = { items, pages, version in
            Log.line(
                "network policy: listed \(items) \(kind.rawValue) at resourceVersion \(version)\(pages > 1 ? " in \(pages) pages" : "")")
        }
        observer.failed = { error, during, wait in
            if error.isExpired || error.isTooLargeResourceVersion { return }
            Log.line(
                "network policy: \(during) of \(kind.rawValue) failed: \(error); retrying in \(PolicyAgent.ms(wait * 1000)) ms; rules are kept"
            )
        }
        observer.relisting = { reason in Log.line("network policy: \(reason): listing \(kind.rawValue) again") }
        return observer
    }

    static func ms(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10000).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// The compiled rules in the table's terms: ingress chains match the peer as the source,
    /// egress chains as the destination.
    public static func content(_ ruleset: Ruleset) -> PolicyTable.Content {
        var content = PolicyTable.Content()
        for (name, set) in ruleset.sets { content.sets[name] = PolicyTable.AddressSet(family: set.family, ranges: set.ranges) }
        for (name, chain) in ruleset.chains {
            content.chains[name] = chain.rules.map { rule in
                PolicyTable.Rule(
                    peers: rule.peers.map { set in
                        (set, ruleset.sets[set]!.family, chain.direction == .ingress ? PolicyTable.Rule.Side.source : .destination)
                    }, proto: rule.proto?.number,
                    ports: rule.ports.map { UInt16(clamping: $0.lowerBound)...UInt16(clamping: $0.upperBound) },
                    comment: rule.comment)
            }
        }
        content.ingress = ruleset.ingress
        content.egress = ruleset.egress
        return content
    }
}
