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
}

/// A blocking HTTPS client for the API server on top of libcurl (TLS, client certificates, CA
/// bundles, chunked streaming, keep-alive): one handle, so the connection is reused.
public final class KubeClient {
    public let connection: KubeConnection
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    public init(connection: KubeConnection) throws(KubeRequestError) {
        guard KubeClient.globalInit, let handle = curl_easy_init() else { throw .transport("libcurl could not be initialised") }
        self.connection = connection
        self.handle = handle
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// The body of a GET of `path` (e.g. `/api/v1/nodes`) answered with 200.
    public func get(_ path: String, timeout: Double = 60) throws(KubeRequestError) -> [UInt8] {
        var body: [UInt8] = []
        let sink = Sink(handle: handle) { chunk in
            body.append(contentsOf: chunk)
            return true
        }
        let headers = try prepare(path: path, timeout: timeout, sink: sink)
        defer { curl_slist_free_all(headers) }
        let code = withExtendedLifetime(sink) { curl_easy_perform(handle) }
        try check(code, sink: sink)
        return body
    }

    /// How a stream ended.
    public enum StreamEnd: Equatable {
        /// The server ended the response (e.g. a watch's timeoutSeconds passed).
        case ended
        /// `onData` asked to stop.
        case stopped
    }

    /// GETs `path` and hands the 200 response's body to `onData` as it arrives (returning false
    /// stops the stream). Meanwhile `onTimer` runs whenever the time `nextTimer()` returns (on
    /// the monotonic clock) has come, so periodic work goes on during a long watch.
    public func stream(
        _ path: String, timeout: Double, onData: @escaping (UnsafeRawBufferPointer) -> Bool,
        nextTimer: () -> Double, onTimer: () -> Void
    ) throws(KubeRequestError) -> StreamEnd {
        let sink = Sink(handle: handle, onData)
        let headers = try prepare(path: path, timeout: timeout, sink: sink)
        defer { curl_slist_free_all(headers) }
        guard let multi = curl_multi_init() else { throw .transport("libcurl could not create a multi handle") }
        defer { curl_multi_cleanup(multi) }
        curl_multi_add_handle(multi, handle)
        defer { curl_multi_remove_handle(multi, handle) }
        var running: Int32 = 1
        var result = CURLE_OK
        withExtendedLifetime(sink) {
            while true {
                curl_multi_perform(multi, &running)
                if running == 0 { break }
                let now = monotonicSeconds()
                let due = nextTimer()
                if now >= due {
                    onTimer()
                    continue
                }
                curl_multi_poll(multi, nil, 0, Int32(min(1000, max(1, (due - now) * 1000))), nil)
            }
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                if message.pointee.msg == CURLMSG_DONE { result = message.pointee.data.result }
            }
        }
        if sink.stoppedByCaller { return .stopped }
        try check(result, sink: sink)
        return .ended
    }

    /// Receives the body: a 200 response's bytes go to `onData`, an error response's are kept
    /// (up to 64 KiB) for its Status message.
    final class Sink {
        let handle: UnsafeMutableRawPointer
        let onData: (UnsafeRawBufferPointer) -> Bool
        var errorBody: [UInt8] = []
        var stoppedByCaller = false
        init(handle: UnsafeMutableRawPointer, _ onData: @escaping (UnsafeRawBufferPointer) -> Bool) {
            self.handle = handle
            self.onData = onData
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

    private func prepare(path: String, timeout: Double, sink: Sink) throws(KubeRequestError) -> UnsafeMutablePointer<curl_slist>? {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        let c = connection
        var headers: UnsafeMutablePointer<curl_slist>?
        headers = curl_slist_append(headers, "Accept: application/json")
        do {
            if let token = try c.currentToken() { headers = curl_slist_append(headers, "Authorization: Bearer \(token)") }
        } catch {
            curl_slist_free_all(headers)
            throw .transport(error.message)
        }
        var failed: CURLcode = CURLE_OK
        func set(_ code: CURLcode) { if failed == CURLE_OK && code != CURLE_OK { failed = code } }
        set(bi_curl_set_string(handle, CURLOPT_URL, c.server + path))
        set(bi_curl_set_pointer(handle, CURLOPT_HTTPHEADER, headers.map { UnsafeMutableRawPointer($0) }))
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
        set(bi_curl_set_write_callback(handle, KubeClient.writeCallback, Unmanaged.passUnretained(sink).toOpaque()))
        if failed != CURLE_OK {
            curl_slist_free_all(headers)
            throw .transport("libcurl rejected an option: \(String(cString: curl_easy_strerror(failed)))")
        }
        return headers
    }

    private func check(_ code: CURLcode, sink: Sink) throws(KubeRequestError) {
        let status = bi_curl_response_code(handle)
        if status != 0 && status != 200 {
            throw KubeClient.statusError(code: status, body: sink.errorBody)
        }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            throw .transport(detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
        }
    }

    /// An error response's Status object (`{"kind":"Status","reason":...,"message":...}`) or text.
    static func statusError(code: Int, body: [UInt8]) -> KubeRequestError {
        if let status = try? JSONValue.parse(body), status["kind"]?.stringValue == "Status" {
            return .status(code: code, reason: status["reason"]?.stringValue ?? "", message: status["message"]?.stringValue ?? "")
        }
        var text = String(decoding: body.prefix(200), as: UTF8.self)
        while let last = text.last, last == "\n" || last == "\r" { text.removeLast() }
        return .status(code: code, reason: "", message: text)
    }
}
