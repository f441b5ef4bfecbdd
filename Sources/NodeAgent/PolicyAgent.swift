#if canImport(Glibc)
import Glibc
#endif
import Addresses
import JSON
import NFTables
import NetworkPolicy
import Netlink

/// NetworkPolicy enforcement (`--network-policy`): lists and watches Pods, Namespaces and
/// NetworkPolicies, one thread per kind (each as the Node watch: resourceVersion, bookmarks,
/// 410 relists, backoff), keeps the cluster picture in `ClusterState`, and a thread of its own
/// compiles this node's rules and applies what changed to `table inet bridge_ipam_policy`,
/// within 20 ms of a quiet stream (at most 200 ms after the first change of a burst). Nothing
/// is applied until every kind has been listed once, so a half-known cluster never narrows what
/// the kernel enforces; until then (and while the API server is away) the kernel keeps the rules
/// it has. Every `resync` seconds the table is rebuilt whole from the picture.
public final class PolicyAgent: @unchecked Sendable {
    let options: AgentOptions
    let connection: KubeConnection
    let nodeName: String

    private var mutex = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var state = ClusterState()
    private var listed: Set<ClusterState.Kind> = []
    private var dirty = false
    private var firstPendingChange: Double?
    private var lastChange = 0.0

    public init(options: AgentOptions, connection: KubeConnection) {
        self.options = options
        self.connection = connection
        self.nodeName = options.nodeName!
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&changed, nil)
    }

    static func path(_ kind: ClusterState.Kind) -> String {
        switch kind {
        case .pods: return "/api/v1/pods"
        case .namespaces: return "/api/v1/namespaces"
        case .networkpolicies: return "/apis/networking.k8s.io/v1/networkpolicies"
        }
    }

    /// Starts the watch threads and the applier; returns at once.
    public func start() {
        Log.line("network policy: enforcing for the pods of node \(nodeName) in table inet \(PolicyTable.table)")
        for kind in ClusterState.Kind.allCases { spawn { [self] in watchLoop(kind) } }
        spawn { [self] in applyLoop() }
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { context in
                let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        if result != 0 {
            Log.line("network policy: cannot start a thread: \(String(cString: strerror(result)))")
            exit(1)
        }
        pthread_detach(thread)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    /// Marks the picture changed (under the lock) and wakes the applier.
    private func noteChange() {
        let now = monotonicSeconds()
        dirty = true
        if firstPendingChange == nil { firstPendingChange = now }
        lastChange = now
        pthread_cond_signal(&changed)
    }

    // MARK: - Watching

    private func watchLoop(_ kind: ClusterState.Kind) {
        let client: KubeClient
        do { client = try KubeClient(connection: connection) } catch {
            Log.line("network policy: \(error)")
            exit(1)
        }
        let initialBackoff = min(1, options.backoffMax)
        var backoff = initialBackoff
        var resourceVersion: String?
        func waitBackingOff() {
            sleepSeconds(backoff)
            backoff = min(backoff * 2, options.backoffMax)
        }
        while true {
            if resourceVersion == nil {
                do {
                    resourceVersion = try list(kind, client)
                    backoff = initialBackoff
                } catch {
                    Log.line("network policy: cannot list \(kind.rawValue): \(error); retrying in \(backoff) s; rules are kept")
                    waitBackingOff()
                    continue
                }
            }
            let started = monotonicSeconds()
            do {
                let (received, expired) = try watch(kind, client, from: &resourceVersion)
                if received { backoff = initialBackoff }
                if expired {
                    Log.line("network policy: \(kind.rawValue) resourceVersion too old (410 Gone): listing again")
                    resourceVersion = nil
                } else if !received && monotonicSeconds() - started < 1 {
                    waitBackingOff()
                }
            } catch {
                if case .status(410, _, _) = error {
                    Log.line("network policy: \(kind.rawValue) resourceVersion too old (410 Gone): listing again")
                    resourceVersion = nil
                    continue
                }
                Log.line("network policy: watch of \(kind.rawValue) failed: \(error); reconnecting in \(backoff) s; rules are kept")
                waitBackingOff()
            }
        }
    }

    /// The whole list, paged (limit/continue); returns the resourceVersion to watch from.
    private func list(_ kind: ClusterState.Kind, _ client: KubeClient) throws(KubeRequestError) -> String {
        var items: [JSONValue] = []
        var next: String?
        var version = ""
        repeat {
            var path = "\(PolicyAgent.path(kind))?limit=500"
            if let token = next { path += "&continue=\(PolicyAgent.percentEncoded(token))" }
            let body = try client.get(path)
            let list: JSONValue
            do { list = try JSONValue.parse(body) } catch { throw .transport("the \(kind.rawValue) list is not JSON: \(error)") }
            guard let page = list["items"]?.arrayValue, let rv = list["metadata"]?["resourceVersion"]?.stringValue else {
                throw .transport("the \(kind.rawValue) list has no items or no metadata.resourceVersion")
            }
            items += page
            version = rv
            next = list["metadata"]?["continue"]?.stringValue
            if next?.isEmpty == true { next = nil }
        } while next != nil
        locked {
            let changed = state.replaceAll(kind, items: items)
            let first = listed.insert(kind).inserted
            if changed || first { noteChange() }
        }
        Log.line("network policy: listed \(items.count) \(kind.rawValue) at resourceVersion \(version)")
        return version
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isLetter && byte < 128 || c.isNumber && byte < 128 || "-._~".contains(c) {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }

    /// One watch request; returns whether any event came and whether it ended with 410.
    private func watch(_ kind: ClusterState.Kind, _ client: KubeClient, from resourceVersion: inout String?) throws(KubeRequestError) -> (
        Bool, Bool
    ) {
        let path =
            "\(PolicyAgent.path(kind))?watch=1&resourceVersion=\(resourceVersion ?? "")&allowWatchBookmarks=true&timeoutSeconds=\(options.watchTimeout)"
        var splitter = LineSplitter()
        var failure: KubeRequestError?
        var received = false
        var expired = false
        var version = resourceVersion
        _ = try client.stream(
            path, timeout: Double(options.watchTimeout) + 30,
            onData: { [self] bytes in
                let lines: [[UInt8]]
                do { lines = try splitter.feed(bytes) } catch {
                    failure = .transport("a watch event is longer than 64 MiB")
                    return false
                }
                for line in lines {
                    let event: WatchEvent
                    do throws(KubeRequestError) { event = try WatchEvent.parse(line) } catch {
                        failure = error
                        return false
                    }
                    received = true
                    switch event.kind {
                    case .error:
                        if event.statusCode == 410 {
                            expired = true
                        } else {
                            failure = KubeClient.statusError(code: event.statusCode ?? 0, body: Array(event.object.serialized().utf8))
                        }
                        return false
                    case .bookmark:
                        break
                    case .added, .modified, .deleted:
                        locked {
                            if state.apply(kind, object: event.object, deleted: event.kind == .deleted) { noteChange() }
                        }
                    }
                    if let v = event.resourceVersion { version = v }
                }
                return true
            }, nextTimer: { .infinity }, onTimer: {})
        resourceVersion = version
        if let failure { throw failure }
        return (received, expired)
    }

    // MARK: - Applying

    private func applyLoop() {
        let table: PolicyTable
        do { table = try PolicyTable() } catch {
            Log.line("network policy: cannot open a netfilter socket: \(error)")
            exit(1)
        }
        var nextResync = monotonicSeconds() + options.resync
        while true {
            // Wait for a change (and for every kind to be listed), then for the burst to end.
            var snapshot: ClusterState?
            var resync = false
            locked {
                while true {
                    let now = monotonicSeconds()
                    let ready = listed.count == ClusterState.Kind.allCases.count
                    if ready && now >= nextResync {
                        resync = true
                        break
                    }
                    // Until every kind is listed only a change (a list arriving) can make progress.
                    var due = ready ? nextResync : now + 3600
                    if ready && dirty {
                        let at = min(lastChange + 0.02, firstPendingChange! + 0.2)
                        if now >= at { break }
                        due = min(due, at)
                    }
                    var deadline = timespec()
                    clock_gettime(CLOCK_REALTIME, &deadline)
                    let wait = max(0.001, due - now)
                    let total = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + min(wait, 3600)
                    deadline.tv_sec = Int(total)
                    deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
                    pthread_cond_timedwait(&changed, &mutex, &deadline)
                }
                dirty = false
                firstPendingChange = nil
                snapshot = state
            }
            let started = monotonicSeconds()
            let content = PolicyAgent.content(PolicyCompiler.compile(snapshot!, node: nodeName))
            let compiled = monotonicSeconds()
            do {
                if resync || table.applied == nil {
                    try table.replace(with: content)
                    Log.line(
                        "network policy: table rebuilt: \(content.chains.count) pod chains, \(content.sets.count) sets (compile \(PolicyAgent.ms(compiled - started)) ms, apply \(PolicyAgent.ms(monotonicSeconds() - compiled)) ms)"
                    )
                } else {
                    let messages = try table.update(to: content)
                    if messages > 0 {
                        Log.line(
                            "network policy: applied \(messages) changes: \(content.chains.count) pod chains, \(content.sets.count) sets (compile \(PolicyAgent.ms(compiled - started)) ms, apply \(PolicyAgent.ms(monotonicSeconds() - compiled)) ms)"
                        )
                    }
                }
            } catch {
                Log.line("network policy: cannot apply the rules: \(error); retrying with the whole table")
                locked { noteChange() }
                sleepSeconds(1)
            }
            if resync { nextResync = monotonicSeconds() + options.resync }
        }
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

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
