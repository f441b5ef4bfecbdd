#if canImport(Glibc)
import Glibc
#endif
import JSON
import Netlink

/// The node agent's loop: list the Nodes, then watch them from the list's resourceVersion, and
/// after every change make this node's subnet file and routes match (`NodeRoutes`). A watch
/// that ends is renewed from the last resourceVersion seen (bookmarks included); an expired one
/// (410 Gone) is replaced by a new list. When the API server cannot be reached the agent keeps
/// the routes it has and retries with exponential backoff. Every `resync` seconds, connected or
/// not, the routing table is repaired from the last picture (a route deleted by hand comes back).
public final class Agent {
    let options: AgentOptions
    let client: KubeClient
    let routes: NodeRoutes
    let services: ServicesSetup
    private var resourceVersion: String?
    private var nextResync: Double
    private var ready = false
    /// When a sync of changes received is due (see `scheduleSync`).
    private var syncAt: Double?
    private var firstPendingChange: Double?
    private var backoff: Double
    private let initialBackoff: Double

    public init(options: AgentOptions, connection: KubeConnection, socket: NetlinkSocket) throws(KubeRequestError) {
        self.options = options
        self.client = try KubeClient(connection: connection)
        self.routes = NodeRoutes(nodeName: options.nodeName!, subnetFile: options.subnetFile, socket: socket)
        self.services = ServicesSetup(clusterCIDRs: options.clusterCIDRs)
        self.nextResync = monotonicSeconds() + options.resync
        self.initialBackoff = min(1, options.backoffMax)
        self.backoff = initialBackoff
    }

    /// Runs until the process is stopped by a signal. Returns an exit status only when the
    /// agent cannot work at all (the plugin cannot be installed).
    public func run() -> Int32 {
        if let ready = options.readyFile { unlink(ready) }
        if let install = options.installCNI {
            do { try installPlugin(binDir: install.binDir) } catch {
                Log.line("cannot install the CNI plugin: \(error)")
                return 1
            }
        }
        Log.line(
            "node \(routes.nodeName): watching nodes at \(client.connection.server); subnet file \(routes.subnetFile), resync every \(options.resync) s"
        )
        services.reconcile()
        while true {
            if resourceVersion == nil {
                do { try list() } catch {
                    Log.line("cannot list nodes: \(explain(error)); retrying in \(formatted(backoff)) s")
                    waitBackingOff()
                    continue
                }
            }
            let started = monotonicSeconds()
            do {
                let received = try watch()
                // A watch the server ends at once, with nothing in it, is retried with backoff.
                if !received && monotonicSeconds() - started < 1 { waitBackingOff() }
            } catch {
                if case .status(410, _, _) = error {
                    Log.line("resourceVersion \(resourceVersion ?? "") is too old (410 Gone): listing nodes again")
                    resourceVersion = nil
                    continue
                }
                Log.line("watch of nodes failed: \(explain(error)); reconnecting in \(formatted(backoff)) s; routes are kept")
                waitBackingOff()
            }
        }
    }

    /// GET /api/v1/nodes: the whole picture and the resourceVersion to watch from.
    private func list() throws(KubeRequestError) {
        let body = try client.get("/api/v1/nodes")
        let list: JSONValue
        do { list = try JSONValue.parse(body) } catch { throw .transport("the node list is not JSON: \(error)") }
        guard let items = list["items"]?.arrayValue, let version = list["metadata"]?["resourceVersion"]?.stringValue else {
            throw .transport("the node list has no items or no metadata.resourceVersion")
        }
        routes.replaceAll(items)
        resourceVersion = version
        backoff = initialBackoff
        Log.line("listed \(items.count) nodes at resourceVersion \(version)")
        resync()
    }

    /// One watch request, until the server ends it or it breaks. Returns whether any event came.
    private func watch() throws(KubeRequestError) -> Bool {
        let path =
            "/api/v1/nodes?watch=1&resourceVersion=\(resourceVersion ?? "")&allowWatchBookmarks=true&timeoutSeconds=\(options.watchTimeout)"
        var splitter = LineSplitter()
        var failure: KubeRequestError?
        var received = false
        do {
            _ = try client.stream(
                path, timeout: Double(options.watchTimeout) + 30,
                onData: { [self] bytes in
                    let lines: [[UInt8]]
                    do { lines = try splitter.feed(bytes) } catch {
                        failure = .transport("a watch event is longer than 64 MiB")
                        return false
                    }
                    var changed = false
                    for line in lines {
                        let event: WatchEvent
                        do throws(KubeRequestError) { event = try WatchEvent.parse(line) } catch {
                            failure = error
                            return false
                        }
                        received = true
                        backoff = initialBackoff
                        switch event.kind {
                        case .error:
                            if event.statusCode == 410 {
                                Log.line("resourceVersion \(resourceVersion ?? "") is too old (410 Gone): listing nodes again")
                                resourceVersion = nil
                            } else {
                                failure = KubeClient.statusError(code: event.statusCode ?? 0, body: Array(event.object.serialized().utf8))
                            }
                            if changed || syncAt != nil { sync() }
                            return false
                        case .bookmark:
                            break
                        case .added, .modified, .deleted:
                            if routes.apply(event) { changed = true }
                        }
                        if let version = event.resourceVersion { resourceVersion = version }
                    }
                    if changed { scheduleSync() }
                    return true
                }, nextTimer: { [self] in min(nextResync, syncAt ?? .infinity) },
                onTimer: { [self] in
                    if monotonicSeconds() >= nextResync { resync() } else { sync() }
                })
        } catch {
            // Changes that arrived before the stream broke are applied now, not after the backoff.
            if syncAt != nil { sync() }
            throw error
        }
        if syncAt != nil { sync() }
        if let failure { throw failure }
        return received
    }

    /// Events come in bursts (500 nodes changed at once are 500 events): the sync after a
    /// change waits until the stream has been quiet for 20 ms, but never more than 200 ms.
    private func scheduleSync() {
        let now = monotonicSeconds()
        if firstPendingChange == nil { firstPendingChange = now }
        syncAt = min(now + 0.02, firstPendingChange! + 0.2)
    }

    /// Makes the node match the picture; the first time it can serve pods, it becomes ready.
    private func sync() {
        syncAt = nil
        firstPendingChange = nil
        let routesReady = routes.reconcile()
        let servicesReady = services.reconcile()
        if routesReady && servicesReady && !ready { becomeReady() }
    }

    private func resync() {
        sync()
        nextResync = monotonicSeconds() + options.resync
    }

    /// Waits out the backoff (resyncing meanwhile when due) and doubles it up to the maximum.
    private func waitBackingOff() {
        let end = monotonicSeconds() + backoff
        while true {
            let now = monotonicSeconds()
            if now >= end { break }
            if now >= nextResync {
                resync()
                continue
            }
            sleepSeconds(min(end, nextResync) - now)
        }
        backoff = min(backoff * 2, options.backoffMax)
    }

    private func becomeReady() {
        if let install = options.installCNI {
            do { try installConflist(confDir: install.confDir) } catch {
                Log.line("cannot install the CNI config: \(error)")
                return
            }
        }
        if let path = options.readyFile {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else {
                Log.line("cannot create the ready file \(path): \(String(cString: strerror(errno)))")
                return
            }
            close(fd)
        }
        ready = true
        Log.line("ready: node \(routes.nodeName) is listed and has its subnet file")
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
