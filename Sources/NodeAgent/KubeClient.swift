#if canImport(Glibc)
import Glibc
#endif
import CCurl
import JSON

/// Why a request to the API server did not give a 200 response.
public enum KubeRequestError: Error, CustomStringConvertible, Equatable {
    /// No HTTP response: DNS, connect, TLS, timeout, or a stream cut short (curl's message).
    case transport(String)
    /// An HTTP error; `message` is the Status object's message when the server sent one.
    case status(code: Int, reason: String, message: String)

    public var description: String {
        switch self {
        case .transport(let message): return message
        case .status(let code, let reason, let message):
            return "HTTP \(code)\(reason.isEmpty ? "" : " \(reason)")\(message.isEmpty ? "" : ": \(message)")"
        }
    }

    /// The label of `bridge_ipam_api_errors_total`: the HTTP status, or "transport".
    public var codeLabel: String {
        if case .status(let code, _, _) = self { return "\(code)" }
        return "transport"
    }

    /// 410 Gone: the resourceVersion (or a list's continue token) was compacted away.
    public var isExpired: Bool {
        if case .status(410, _, _) = self { return true }
        return false
    }

    /// The API server is behind the resourceVersion we asked for (after etcd was restored from
    /// a backup, or a watch cache that lags): "Too large resource version" (504, cause
    /// ResourceVersionTooLarge). Asking again with the same version can never succeed.
    public var isTooLargeResourceVersion: Bool {
        if case .status(_, _, let message) = self { return message.contains("Too large resource version") }
        return false
    }
}

/// One GET at a time to the API server on one libcurl easy handle (TLS, client certificates,
/// CA bundles, chunked streaming, keep-alive: the next request on the handle reuses the
/// connection), run by a `TransferLoop` so that every request and the agent's own work share
/// one thread.
public final class KubeRequest {
    public let connection: KubeConnection
    let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var headers: UnsafeMutablePointer<curl_slist>?
    private var connectTo: UnsafeMutablePointer<curl_slist>?
    fileprivate var sink: Sink?

    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    public init(connection: KubeConnection) throws(KubeRequestError) {
        guard KubeRequest.globalInit, let handle = curl_easy_init() else { throw .transport("libcurl could not be initialised") }
        self.connection = connection
        self.handle = handle
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        freeLists()
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// How a request ended.
    public enum Completion: Equatable {
        /// The server ended a 200 response (a list's last byte, a watch's timeoutSeconds).
        case ended
        /// `onData` asked to stop.
        case stopped
        case failed(KubeRequestError)
    }

    /// Receives the body: a 200 response's bytes go to `onData` (which must only keep them:
    /// it runs inside curl), an error response's are kept (up to 64 KiB) for its Status.
    final class Sink {
        let handle: UnsafeMutableRawPointer
        let onData: (UnsafeRawBufferPointer) -> Bool
        let completion: (Completion) -> Void
        var errorBody: [UInt8] = []
        var stoppedByCaller = false
        init(
            handle: UnsafeMutableRawPointer, onData: @escaping (UnsafeRawBufferPointer) -> Bool,
            completion: @escaping (Completion) -> Void
        ) {
            self.handle = handle
            self.onData = onData
            self.completion = completion
        }
    }

    private static let writeCallback: bi_curl_write_callback = { data, size, count, context in
        let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
        let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
        if bi_curl_response_code(sink.handle) != 200 {
            if sink.errorBody.count < 65536 { sink.errorBody.append(contentsOf: bytes.prefix(65536 - sink.errorBody.count)) }
            return size * count
        }
        if sink.onData(bytes) { return size * count }
        sink.stoppedByCaller = true
        return 0
    }

    /// Sets the handle up for a GET of `path` (e.g. `/api/v1/nodes?limit=500`).
    func prepare(
        path: String, timeout: Double, onData: @escaping (UnsafeRawBufferPointer) -> Bool, completion: @escaping (Completion) -> Void
    ) throws(KubeRequestError) {
        curl_easy_reset(handle)
        freeLists()
        errorBuffer[0] = 0
        let c = connection
        headers = curl_slist_append(nil, "Accept: application/json")
        do {
            if let token = try c.currentToken() { headers = curl_slist_append(headers, "Authorization: Bearer \(token)") }
        } catch {
            throw .transport(error.message)
        }
        let sink = Sink(handle: handle, onData: onData, completion: completion)
        self.sink = sink
        var url = c.server + path
        if let name = c.tlsServerName, let target = ServerAddress(c.server) {
            // The URL names the certificate's host (curl sends it as SNI and verifies against
            // it); CONNECT_TO sends the connection to the server's real address.
            url = "\(target.scheme)://\(ServerAddress.bracketed(name)):\(target.port)\(target.pathPrefix)\(path)"
            connectTo = curl_slist_append(nil, "\(ServerAddress.bracketed(name)):\(target.port):\(target.host):\(target.port)")
        }
        var failed: CURLcode = CURLE_OK
        func set(_ code: CURLcode) { if failed == CURLE_OK && code != CURLE_OK { failed = code } }
        set(bi_curl_set_string(handle, CURLOPT_URL, url))
        set(bi_curl_set_pointer(handle, CURLOPT_HTTPHEADER, headers.map { UnsafeMutableRawPointer($0) }))
        if let connectTo { set(bi_curl_set_pointer(handle, CURLOPT_CONNECT_TO, UnsafeMutableRawPointer(connectTo))) }
        set(bi_curl_set_string(handle, CURLOPT_USERAGENT, "bridge-ipam-agent"))
        set(bi_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)))
        set(bi_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "https,http"))
        set(bi_curl_set_long(handle, CURLOPT_NOSIGNAL, 1))
        set(bi_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 5000))
        set(bi_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000)))
        set(bi_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        set(bi_curl_set_long(handle, CURLOPT_TCP_KEEPIDLE, 30))
        set(bi_curl_set_long(handle, CURLOPT_TCP_KEEPINTVL, 10))
        set(bi_curl_set_string(handle, CURLOPT_ACCEPT_ENCODING, ""))
        set(bi_curl_set_cloexec_sockets(handle))
        if let data = c.certificateAuthorityData {
            set(data.withUnsafeBytes { bi_curl_set_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) })
        } else if let file = c.certificateAuthorityFile {
            set(bi_curl_set_string(handle, CURLOPT_CAINFO, file))
        }
        if c.insecureSkipTLSVerify {
            set(bi_curl_set_long(handle, CURLOPT_SSL_VERIFYPEER, 0))
            set(bi_curl_set_long(handle, CURLOPT_SSL_VERIFYHOST, 0))
        }
        if let data = c.clientCertificateData {
            set(data.withUnsafeBytes { bi_curl_set_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) })
        } else if let file = c.clientCertificateFile {
            set(bi_curl_set_string(handle, CURLOPT_SSLCERT, file))
        }
        if let data = c.clientKeyData {
            set(data.withUnsafeBytes { bi_curl_set_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) })
        } else if let file = c.clientKeyFile {
            set(bi_curl_set_string(handle, CURLOPT_SSLKEY, file))
        }
        set(bi_curl_set_write_callback(handle, KubeRequest.writeCallback, Unmanaged.passUnretained(sink).toOpaque()))
        if failed != CURLE_OK {
            throw .transport("libcurl rejected an option: \(String(cString: curl_easy_strerror(failed)))")
        }
    }

    private func freeLists() {
        curl_slist_free_all(headers)
        curl_slist_free_all(connectTo)
        headers = nil
        connectTo = nil
    }

    /// What the finished transfer (curl's result `code`) amounts to.
    func completion(_ code: CURLcode) -> Completion {
        guard let sink else { return .failed(.transport("no request was prepared")) }
        if sink.stoppedByCaller { return .stopped }
        let status = bi_curl_response_code(handle)
        if status != 0 && status != 200 { return .failed(KubeRequest.statusError(code: status, body: sink.errorBody)) }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            return .failed(.transport(detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail))
        }
        return .ended
    }

    /// An error response's Status object (`{"kind":"Status","reason":...,"message":...}`) or text.
    static func statusError(code: Int, body: [UInt8]) -> KubeRequestError {
        if let status = try? JSONValue.parse(body), status["kind"]?.stringValue == "Status" {
            return statusError(code: code, status: status)
        }
        var text = String(decoding: body.prefix(200), as: UTF8.self)
        while let last = text.last, last == "\n" || last == "\r" { text.removeLast() }
        return .status(code: code, reason: "", message: text)
    }

    static func statusError(code: Int, status: JSONValue) -> KubeRequestError {
        .status(code: code, reason: status["reason"]?.stringValue ?? "", message: status["message"]?.stringValue ?? "")
    }
}

/// The parts of a kubeconfig `server` URL that a `tls-server-name` rewrite needs.
struct ServerAddress: Equatable {
    var scheme: String
    var host: String
    var port: Int
    var pathPrefix: String

    init(scheme: String, host: String, port: Int, pathPrefix: String) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.pathPrefix = pathPrefix
    }

    init?(_ url: String) {
        let parts = url.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].hasSuffix(":"), parts[1].isEmpty else { return nil }
        scheme = parts[0].dropLast().lowercased()
        let rest = parts[2]
        let authority = rest.prefix { $0 != "/" }
        pathPrefix = String(rest.dropFirst(authority.count))
        var hostPart = Substring(authority)
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { return nil }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { return nil }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty else { return nil }
        host = hostPart.contains(":") ? "[\(hostPart)]" : String(hostPart)
        if let portPart {
            guard let p = Int(portPart), p > 0, p < 65536 else { return nil }
            port = p
        } else {
            port = scheme == "http" ? 80 : 443
        }
    }

    static func bracketed(_ host: String) -> String { host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host }
}

/// curl's multi interface: runs every started `KubeRequest` at once, and waits for their
/// sockets together with the caller's own (the metrics server's), so one thread does it all.
public final class TransferLoop {
    private let multi: UnsafeMutableRawPointer
    private var running: [UnsafeMutableRawPointer: KubeRequest] = [:]

    public init() throws(KubeRequestError) {
        guard let multi = curl_multi_init() else { throw .transport("libcurl could not create a multi handle") }
        self.multi = multi
    }

    deinit {
        for handle in running.keys { curl_multi_remove_handle(multi, handle) }
        curl_multi_cleanup(multi)
    }

    /// Starts a GET of `path`. `onData` gets the 200 response's body as it arrives (inside
    /// curl: it must only keep the bytes); `completion` runs once, from `run`, when it ends.
    public func start(
        _ request: KubeRequest, path: String, timeout: Double, onData: @escaping (UnsafeRawBufferPointer) -> Bool,
        completion: @escaping (KubeRequest.Completion) -> Void
    ) throws(KubeRequestError) {
        precondition(running[request.handle] == nil, "one transfer per request at a time")
        try request.prepare(path: path, timeout: timeout, onData: onData, completion: completion)
        let code = curl_multi_add_handle(multi, request.handle)
        guard code == CURLM_OK else { throw .transport("libcurl: \(String(cString: curl_multi_strerror(code)))") }
        running[request.handle] = request
    }

    public var isIdle: Bool { running.isEmpty }

    /// Ends a transfer under way; its completion runs now, with `.stopped`.
    public func cancel(_ request: KubeRequest) {
        guard running.removeValue(forKey: request.handle) != nil else { return }
        curl_multi_remove_handle(multi, request.handle)
        let sink = request.sink
        request.sink = nil
        sink?.completion(.stopped)
    }

    /// Waits at most `timeout` seconds for any transfer's socket or one of `extraFDs` to be
    /// readable, moves every transfer on, and runs the completions of those that ended.
    public func run(timeout: Double, extraFDs: [Int32] = []) {
        var waits = extraFDs.map { curl_waitfd(fd: $0, events: Int16(CURL_WAIT_POLLIN), revents: 0) }
        let millis = Int32(min(1000, max(0, timeout * 1000)).rounded(.up))
        var transfers: Int32 = 0
        curl_multi_perform(multi, &transfers)
        if millis > 0 {
            _ = waits.withUnsafeMutableBufferPointer { curl_multi_poll(multi, $0.baseAddress, UInt32($0.count), millis, nil) }
            curl_multi_perform(multi, &transfers)
        }
        var left: Int32 = 0
        var finished: [(KubeRequest, CURLcode)] = []
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                let request = running.removeValue(forKey: handle)
            else { continue }
            finished.append((request, message.pointee.data.result))
        }
        for (request, code) in finished {
            curl_multi_remove_handle(multi, request.handle)
            let completion = request.completion(code)
            let sink = request.sink
            request.sink = nil
            sink?.completion(completion)
        }
    }
}
