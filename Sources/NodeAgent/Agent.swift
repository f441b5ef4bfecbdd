#if canImport(Glibc)
import Glibc
#endif
import Addresses
import JSON
import NFTables
import Netlink

/// The node agent's loop: list and watch the Nodes (`ResourceWatcher`), and after every change
/// make this node's subnet file and routes match (`NodeRoutes`). When the API server cannot be
/// reached the agent keeps the routes it has and retries with backoff. Every `resync` seconds,
/// connected or not, the routing table is repaired from the last picture (a route deleted by
/// hand comes back). With `--metrics-address` it answers /healthz, /readyz and /metrics.
///
/// One thread does everything: curl's multi interface runs the requests, and its poll also
/// waits for the status server's sockets and the next timer. Nothing runs inside curl's
/// callbacks but keeping bytes; events are applied and routes synced between polls.
public final class Agent {
    let options: AgentOptions
    let connection: KubeConnection
    let routes: NodeRoutes
    private var masquerade: NodeMasquerade?
    let services: ServicesSetup
    let loop: TransferLoop
    let watcher: ResourceWatcher
    private var server: StatusServer?
    private var metrics = AgentMetrics()
    private var nextResync: Double
    /// Why the node is not ready (nil: ready); see `readyz`.
    private var notReady: String? = "the Nodes are not listed yet"
    private var servedPods = false
    private var listedOnce = false
    /// When a sync of changes received is due (see `scheduleSync`).
    private var syncAt: Double?
    private var firstPendingChange: Double?
    private var lastLoopTurn = Clock.monotonic()

    public init(options: AgentOptions, connection: KubeConnection, socket: NetlinkSocket) throws(KubeRequestError) {
        self.options = options
        self.connection = connection
        self.routes = NodeRoutes(nodeName: options.nodeName!, subnetFile: options.subnetFile, socket: socket, mode: options.routing)
        self.services = ServicesSetup(clusterCIDRs: options.clusterCIDRs)
        self.loop = try TransferLoop()
        self.watcher = ResourceWatcher(
            path: "/api/v1/nodes", resource: NodeWatch(routes: routes), request: try KubeRequest(connection: connection), loop: loop,
            backoff: Backoff(initial: 1, maximum: options.backoffMax), pageSize: options.listPageSize, watchTimeout: options.watchTimeout)
        self.nextResync = Clock.monotonic() + options.resync
        watcher.observer = observer()
    }

    /// Runs until the process is stopped by a signal. Returns an exit status only when the
    /// agent cannot work at all (the plugin cannot be installed, the metrics port is taken).
    public func run() -> Int32 {
        if let ready = options.readyFile { unlink(ready) }
        if options.masquerade {
            do { masquerade = try makeMasquerade() } catch {
                Log.line("cannot masquerade: \(error)")
                return 1
            }
        }
        if let install = options.installCNI {
            do { try installPlugin(binDir: install.binDir) } catch {
                Log.line("cannot install the CNI plugin: \(error)")
                return 1
            }
        }
        if let address = options.metricsAddress {
            do { server = try StatusServer(address: address) { [unowned self] in respond($0) } } catch {
                Log.line("cannot serve metrics: \(error)")
                return 1
            }
        }
        Log.line(
            "node \(routes.nodeName): watching nodes at \(connection.server); subnet file \(routes.subnetFile), resync every \(options.resync) s\(server.map { "; /healthz, /readyz and /metrics on \($0.address)" } ?? "")"
        )
        services.reconcile()
        while true {
            let now = Clock.monotonic()
            lastLoopTurn = now
            watcher.poll(now: now)
            let (changed, relisted) = watcher.takeChanges()
            if relisted {
                sync()
            } else if changed {
                scheduleSync()
            }
            if let syncAt, now >= syncAt { sync() }
            if now >= nextResync { resync() }
            server?.serve(now: Clock.monotonic())
            let due = min(watcher.nextDue, syncAt ?? .infinity, nextResync, server?.nextDeadline ?? .infinity)
            loop.run(timeout: due - Clock.monotonic(), extraFDs: server?.descriptors ?? [])
            watcher.drain()
        }
    }

    private func observer() -> WatcherObserver {
        var observer = WatcherObserver()
        observer.listed = { [unowned self] items, pages, version in
            metrics.lists += 1
            listedOnce = true
            Log.line("listed \(items) nodes at resourceVersion \(version)\(pages > 1 ? " in \(pages) pages" : "")")
        }
        observer.failed = { [unowned self] error, during, wait in
            metrics.apiErrors[error.codeLabel, default: 0] += 1
            if !listedOnce { notReady = "the Nodes are not listed yet: \(explain(error))" }
            if error.isExpired || error.isTooLargeResourceVersion { return }
            if during == "list" {
                Log.line("cannot list nodes: \(explain(error)); retrying in \(formatted(wait)) s")
            } else {
                Log.line("watch of nodes failed: \(explain(error)); reconnecting in \(formatted(wait)) s; routes are kept")
            }
        }
        observer.relisting = { reason in Log.line("\(reason): listing nodes again") }
        observer.watchRestarted = { [unowned self] in metrics.watchRestarts += 1 }
        return observer
    }

    /// Events come in bursts (500 nodes changed at once are 500 events): the sync after a
    /// change waits until the stream has been quiet for 20 ms, but never more than 200 ms.
    private func scheduleSync() {
        let now = Clock.monotonic()
        if firstPendingChange == nil { firstPendingChange = now }
        syncAt = min(now + 0.02, firstPendingChange! + 0.2)
    }

    /// Makes the node match the picture, and works out whether it is ready.
    private func sync() {
        syncAt = nil
        firstPendingChange = nil
        guard watcher.resourceVersion != nil || routes.nodeCount > 0 else { return }
        let started = Clock.monotonic()
        let canServe = routes.reconcile()
        let servicesReady = services.reconcile()
        masquerade?.reconcile(nodeAddresses: routes.nodeAddresses)
        metrics.syncDurations.observe(Clock.monotonic() - started)
        metrics.routesDesired = routes.routeCounts.desired
        metrics.routesInstalled = routes.routeCounts.installed
        metrics.routesFailed = max(0, routes.routeCounts.desired - routes.routeCounts.installed)
        metrics.nodesSeen = routes.nodeCount
        // Problems are logged where they are found (once each); here only a recovery is.
        var problem = routes.readinessProblem ?? (servicesReady ? nil : ServicesSetup.notReadyReason)
        let servedBefore = servedPods
        if canServe && servicesReady && !servedPods {
            if let failure = becomeReady() { problem = problem ?? failure }
        }
        if problem == nil { metrics.lastSuccessfulSync = Clock.wallSeconds() }
        if problem == nil && notReady != nil && servedBefore { Log.line("ready again: \(notReady!) no longer holds") }
        notReady = problem
        metrics.ready = problem == nil
    }

    private func resync() {
        sync()
        nextResync = Clock.monotonic() + options.resync
    }

    /// The answers of the status server.
    func respond(_ target: String) -> StatusServer.Response {
        switch target.prefix(while: { $0 != "?" }) {
        case "/healthz":
            // Answered from the loop itself: an answer means the loop turns. The watcher is
            // either running a request or waiting for its next one.
            let stalled = Clock.monotonic() - lastLoopTurn > 60
            return stalled ? .init(status: 503, body: "the watch loop has not turned for 60 s\n") : .init(status: 200, body: "ok\n")
        case "/readyz":
            if let notReady { return .init(status: 503, body: "not ready: \(notReady)\n") }
            return .init(
                status: 200, body: "ready: node \(routes.nodeName) is listed, its subnet file written, conflist installed, routes applied\n"
            )
        case "/metrics":
            return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render())
        default:
            return .init(status: 404, body: "not found: /healthz, /readyz and /metrics are served\n")
        }
    }

    /// The first time the node can serve pods: the conflist goes in, and the ready file. Returns
    /// what failed, if anything (retried at the next sync).
    private func becomeReady() -> String? {
        if let install = options.installCNI {
            do { try installConflist(confDir: install.confDir) } catch {
                Log.line("cannot install the CNI config: \(error)")
                return "cannot install the CNI config: \(error)"
            }
        }
        if let path = options.readyFile {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else {
                let reason = "cannot create the ready file \(path): \(String(cString: strerror(errno)))"
                Log.line(reason)
                return reason
            }
            close(fd)
        }
        servedPods = true
        Log.line("ready: node \(routes.nodeName) is listed and has its subnet file")
        return nil
    }

    private enum MasqueradeSetupError: Error, CustomStringConvertible {
        case conflist(String)
        case nftables(NetlinkError)
        var description: String {
            switch self {
            case .conflist(let text): return text
            case .nftables(let error): return "nftables: \(error)"
            }
        }
    }

    /// The cluster CIDRs are `--cluster-cidr`'s (one per family, as for the FORWARD accepts), or
    /// else the conflist's `ipam.clusterCIDR`: the manifest generates the first from the second.
    private func makeMasquerade() throws(MasqueradeSetupError) -> NodeMasquerade {
        var cidrs = options.clusterCIDRs
        if cidrs.isEmpty {
            let path = options.cniConflist
            guard let bytes = readWholeFile(path) else { throw .conflist("cannot read \(path)") }
            do { cidrs = try NodeMasquerade.clusterCIDRs(conflist: bytes, path: path) } catch { throw .conflist(error.description) }
        }
        do {
            return NodeMasquerade(
                clusterCIDRs: cidrs, table: try NFTables(table: NodeMasquerade.table, exclusionSet: NodeMasquerade.exclusionSet))
        } catch {
            throw .nftables(error)
        }
    }

    /// The plugin goes in first, so that kubelet never finds the conflist without its plugin.
    private func installPlugin(binDir: String) throws(AtomicFile.Error) {
        let source = options.cniPlugin ?? Agent.besideExecutable("bridge-ipam")
        guard let content = readWholeFile(source) else { throw AtomicFile.failure("read \(source)") }
        let target = "\(binDir)/bridge-ipam"
        if try AtomicFile.write(content, to: target, mode: 0o755) { Log.line("installed \(target) (\(content.count) bytes)") }
    }

    /// The conflist goes in only once the subnet file exists: until then an ADD could only fail.
    private func installConflist(confDir: String) throws(AtomicFile.Error) {
        let source = options.cniConflist
        guard let content = readWholeFile(source) else { throw AtomicFile.failure("read \(source)") }
        let name = source.split(separator: "/").last.map(String.init) ?? source
        let target = "\(confDir)/\(name)"
        if try AtomicFile.write(content, to: target, mode: 0o644) { Log.line("installed \(target)") }
    }

    static func besideExecutable(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return name }
        let path = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return name }
        return "\(path[..<slash])/\(name)"
    }

    /// Error text with a hint for the two refusals an operator can fix.
    private func explain(_ error: KubeRequestError) -> String {
        switch error {
        case .status(401, _, _):
            return
                "\(error) (the API server does not accept our credentials: check the token or client certificate of \(options.kubeconfig ?? "the service account"))"
        case .status(403, _, _):
            return "\(error) (our account may not list and watch nodes: apply the ClusterRole in deploy/bridge-ipam.yaml)"
        default:
            return "\(error)"
        }
    }

    private func formatted(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
