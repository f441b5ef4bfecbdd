import JSON

/// What a `ResourceWatcher` keeps up to date: the picture of one kind of object.
public protocol WatchedResource: AnyObject {
    /// A new list begins; its items follow through `listed`. The picture in use stays as it
    /// was until `listEnded` (a list that fails half-way changes nothing).
    func listStarted()
    func listed(_ item: JSONValue)
    func listEnded()
    /// An ADDED, MODIFIED or DELETED event; returns whether the picture changed.
    func apply(_ event: WatchEvent) -> Bool
}

/// Things a watcher reports as they happen (the agent's log and metrics).
public struct WatcherObserver {
    public var listed: (_ items: Int, _ pages: Int, _ resourceVersion: String) -> Void = { _, _, _ in }
    public var failed: (_ error: KubeRequestError, _ during: String, _ retryIn: Double) -> Void = { _, _, _ in }
    public var relisting: (_ reason: String) -> Void = { _ in }
    public var watchRestarted: () -> Void = {}
    public init() {}
}

/// List and watch for one kind of object, client-go's reflector in small: a paginated LIST
/// (`limit`/`continue`) whose items are parsed one by one as they arrive, then a WATCH from
/// the list's resourceVersion, renewed from the last version seen (bookmarks included).
///
/// Every failure waits out a capped exponential backoff with jitter (`Backoff`): connect
/// errors, error statuses, ERROR events, and relists. A 410 Gone or a "Too large resource
/// version" relists (the first at once, a storm of them backing off); only a watch event
/// other than ERROR, or a watch that stayed open 10 s, counts as health and resets the backoff.
///
/// It never blocks: `TransferLoop` runs its requests, `poll` starts the next one when due, and
/// `drain` hands what arrived to the `WatchedResource`, outside curl's callbacks.
public final class ResourceWatcher {
    /// The collection's path, e.g. `/api/v1/nodes` or `/api/v1/namespaces/x/pods`.
    public let path: String
    public let resource: WatchedResource
    public var observer = WatcherObserver()
    let request: KubeRequest
    let loop: TransferLoop
    let pageSize: Int
    let watchTimeout: Int
    public private(set) var backoff: Backoff
    public private(set) var resourceVersion: String?

    enum State: Equatable {
        case waiting(until: Double)
        case listing
        case watching(since: Double)
    }
    private(set) var state: State = .waiting(until: 0)
    /// Whether the picture changed since the last `takeChanges`, and whether a list completed.
    private var changed = false
    private var relisted = false

    // Bytes of the request under way, kept by curl's callback until `drain`.
    private var pendingItems: [[UInt8]] = []
    private var pendingLines: [[UInt8]] = []
    private var listSplitter = ListSplitter()
    private var lineSplitter = LineSplitter()
    private var overflow: String?
    // The list under way.
    private var continueToken: String?
    private var listedItems = 0
    private var listedPages = 0
    // The watch under way.
    private var watchHealthy = false
    private var watchError: KubeRequestError?
    private var watches = 0

    public init(
        path: String, resource: WatchedResource, request: KubeRequest, loop: TransferLoop, backoff: Backoff,
        pageSize: Int = 500, watchTimeout: Int = 300
    ) {
        self.path = path
        self.resource = resource
        self.request = request
        self.loop = loop
        self.backoff = backoff
        self.pageSize = pageSize
        self.watchTimeout = watchTimeout
    }

    /// When `poll` next has something to do (`.infinity` while a request is under way).
    public var nextDue: Double {
        if case .waiting(let until) = state { return until }
        return .infinity
    }

    /// Whether a watch is open (for the metrics), and whether the loop is alive at all.
    public var isWatching: Bool { if case .watching = state { return true } else { return false } }

    /// Starts the next request when its time has come.
    public func poll(now: Double) {
        guard case .waiting(let until) = state, now >= until else { return }
        if resourceVersion == nil {
            if continueToken == nil {
                listedItems = 0
                listedPages = 0
                resource.listStarted()
            }
            startList(now: now)
        } else {
            startWatch(now: now)
        }
    }

    /// Returns whether the picture changed since the last call, and whether by a new list.
    public func takeChanges() -> (changed: Bool, relisted: Bool) {
        defer {
            changed = false
            relisted = false
        }
        return (changed, relisted)
    }

    private func startList(now: Double) {
        listSplitter = ListSplitter()
        overflow = nil
        var query = "?limit=\(pageSize)"
        if let continueToken { query += "&continue=\(percentEncoded(continueToken))" }
        do {
            try loop.start(
                request, path: path + query, timeout: 120,
                onData: { [unowned self] bytes in
                    do { pendingItems += try listSplitter.feed(bytes) } catch {
                        overflow = "a list item is longer than \(listSplitter.maxItemLength) bytes"
                        return false
                    }
                    return true
                }, completion: { [unowned self] in listCompleted($0) })
            state = .listing
        } catch {
            fail(error, during: "list", now: now)
        }
    }

    private func startWatch(now: Double) {
        lineSplitter = LineSplitter()
        overflow = nil
        watchHealthy = false
        watchError = nil
        let query =
            "?watch=1&resourceVersion=\(percentEncoded(resourceVersion ?? ""))&allowWatchBookmarks=true&timeoutSeconds=\(watchTimeout)"
        do {
            try loop.start(
                request, path: path + query, timeout: Double(watchTimeout) + 30,
                onData: { [unowned self] bytes in
                    do { pendingLines += try lineSplitter.feed(bytes) } catch {
                        overflow = "a watch event is longer than \(lineSplitter.maxLineLength) bytes"
                        return false
                    }
                    return true
                }, completion: { [unowned self] in watchCompleted($0, started: now) })
            watches += 1
            if watches > 1 { observer.watchRestarted() }
            state = .watching(since: now)
        } catch {
            fail(error, during: "watch", now: now)
        }
    }

    /// Hands what arrived to the resource (outside curl's callbacks). Stops at an ERROR event:
    /// what follows it in the same stream is not read.
    public func drain() {
        if !pendingItems.isEmpty {
            let items = pendingItems
            pendingItems.removeAll()
            for bytes in items {
                // An item that is not JSON is a broken response: the list fails as a whole.
                guard let item = try? JSONValue.parse(bytes) else {
                    overflow = overflow ?? "a list item is not JSON: \(String(decoding: bytes.prefix(120), as: UTF8.self))"
                    continue
                }
                listedItems += 1
                resource.listed(item)
            }
        }
        let lines = pendingLines
        pendingLines.removeAll()
        for line in lines where watchError == nil {
            let event: WatchEvent
            do { event = try WatchEvent.parse(line) } catch {
                watchError = error
                break
            }
            switch event.kind {
            case .error:
                watchError = KubeRequest.statusError(code: event.statusCode ?? 0, status: event.object)
            case .bookmark:
                healthy()
            case .added, .modified, .deleted:
                healthy()
                if resource.apply(event) { changed = true }
            }
            if watchError == nil, let version = event.resourceVersion { resourceVersion = version }
        }
        // An ERROR event ends the watch: the server closes it too, but need not at once.
        if watchError != nil, isWatching { loop.cancel(request) }
    }

    private func healthy() {
        watchHealthy = true
        backoff.reset()
    }

    private func listCompleted(_ completion: KubeRequest.Completion) {
        drain()
        let now = Clock.monotonic()
        if let overflow {
            continueToken = nil
            return fail(.transport(overflow), during: "list", now: now)
        }
        switch completion {
        case .failed(let error):
            // An expired continue token: the list starts over.
            continueToken = nil
            return fail(error, during: "list", now: now)
        case .stopped, .ended:
            break
        }
        let metadata: JSONValue?
        do { metadata = try listSplitter.remainder()["metadata"] } catch {
            continueToken = nil
            return fail(.transport("the list is not JSON: \(error)"), during: "list", now: now)
        }
        listedPages += 1
        if let next = metadata?["continue"]?.stringValue, !next.isEmpty {
            continueToken = next
            state = .waiting(until: now)
            return poll(now: now)
        }
        continueToken = nil
        guard let version = metadata?["resourceVersion"]?.stringValue, !version.isEmpty else {
            return fail(.transport("the list has no metadata.resourceVersion"), during: "list", now: now)
        }
        resourceVersion = version
        resource.listEnded()
        changed = true
        relisted = true
        observer.listed(listedItems, listedPages, version)
        state = .waiting(until: now)
        poll(now: now)
    }

    private func watchCompleted(_ completion: KubeRequest.Completion, started: Double) {
        drain()
        let now = Clock.monotonic()
        var failure = watchError
        if failure == nil, let overflow { failure = .transport(overflow) }
        if failure == nil, case .failed(let error) = completion { failure = error }
        if let failure { return fail(failure, during: "watch", now: now) }
        // The server ended the watch (its timeoutSeconds): renewed at once when it was healthy.
        if watchHealthy || now - started >= 10 {
            backoff.reset()
            state = .waiting(until: now)
            return poll(now: now)
        }
        let wait = backoff.next()
        observer.failed(.transport("the server ended the watch at once, with nothing in it"), "watch", wait)
        state = .waiting(until: now + wait)
    }

    private func fail(_ error: KubeRequestError, during: String, now: Double) {
        if error.isExpired || error.isTooLargeResourceVersion {
            let wait = backoff.nextAfterFreeRetry()
            let why =
                error.isExpired
                ? (during == "list"
                    ? "the list's continue token expired" : "resourceVersion \(resourceVersion ?? "") is too old (410 Gone)")
                : "the API server is behind resourceVersion \(resourceVersion ?? "") (Too large resource version)"
            resourceVersion = nil
            continueToken = nil
            observer.failed(error, during, wait)
            observer.relisting(why)
            state = .waiting(until: now + wait)
            return
        }
        let wait = backoff.next()
        observer.failed(error, during, wait)
        state = .waiting(until: now + wait)
    }

    private func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
