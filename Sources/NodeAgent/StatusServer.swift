#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.x server for probes and scrapes (`--metrics-address`): GET only, one
/// response per connection, non-blocking sockets served from the agent's own loop (their
/// descriptors are polled together with curl's), so it needs no thread and no lock.
public final class StatusServer {
    public struct Response: Equatable {
        public var status: Int
        public var contentType: String
        public var body: String
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private struct Client {
        var fd: Int32
        var request: [UInt8] = []
        var deadline: Double
    }

    public let address: String
    private let listener: Int32
    private var clients: [Client] = []
    /// Answers a request target (path and query).
    private let handler: (String) -> Response
    static let maxClients = 32
    static let maxRequest = 8192
    static let clientTimeout = 5.0

    /// Listens on `address`: `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for every address.
    public init(address: String, handler: @escaping (String) -> Response) throws(Error) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw Error(description: "--metrics-address \(address): not HOST:PORT")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        // `:PORT` is every address of both families, or of IPv4 on a node without IPv6.
        if host.isEmpty {
            let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            host = probe >= 0 ? "::" : "0.0.0.0"
            if probe >= 0 { close(probe) }
        }
        let everyFamily = host == "::"
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var found: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, "\(port)", &hints, &found)
        guard code == 0, let info = found else {
            throw Error(description: "--metrics-address \(address): \(String(cString: gai_strerror(code)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(
            info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Error(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        var zero: Int32 = 0
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if everyFamily { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size)) }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Error(description: "--metrics-address \(address): \(reason)")
        }
        self.address = address
        self.listener = fd
        self.handler = handler
    }

    deinit {
        for client in clients { close(client.fd) }
        close(listener)
    }

    /// The port listened on (the one chosen by the kernel for port 0).
    public var port: Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// The descriptors to wait on.
    public var descriptors: [Int32] { [listener] + clients.map(\.fd) }

    /// When a slow client is next due to be dropped.
    public var nextDeadline: Double { clients.map(\.deadline).min() ?? .infinity }

    /// Accepts, reads and answers whatever is ready now, without waiting.
    public func serve(now: Double) {
        while true {
            // accept4 is a GNU extension Glibc's module does not show; one thread, so no race.
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { break }
            // Full: the client waiting longest makes room, so idle connections cannot starve
            // the kubelet's probes.
            if clients.count >= StatusServer.maxClients { close(clients.removeFirst().fd) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            clients.append(Client(fd: fd, deadline: now + StatusServer.clientTimeout))
        }
        var kept: [Client] = []
        for var client in clients {
            if read(&client) { kept.append(client) } else { close(client.fd) }
        }
        clients = kept.filter { client in
            if client.deadline > now { return true }
            close(client.fd)
            return false
        }
    }

    /// Reads what the client sent; answers once its request head is complete. Returns whether
    /// to keep waiting for more.
    private func read(_ client: inout Client) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            client.request += buffer[..<n]
            if let end = headEnd(client.request) {
                respond(to: client.fd, head: client.request[..<end])
                return false
            }
            if client.request.count > StatusServer.maxRequest {
                send(client.fd, Response(status: 431, body: "request head too large\n"))
                return false
            }
        }
    }

    private func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 10 && (bytes[i - 1] == 10 || (bytes[i - 1] == 13 && bytes[i - 2] == 10)) {
            return i + 1
        }
        return nil
    }

    private func respond(to fd: Int32, head: ArraySlice<UInt8>) {
        let line = head.prefix { $0 != 13 && $0 != 10 }.split(separator: 32)
        guard line.count == 3, line[2].starts(with: Array("HTTP/1.".utf8)) else {
            return send(fd, Response(status: 400, body: "bad request\n"))
        }
        let method = String(decoding: line[0], as: UTF8.self)
        guard method == "GET" || method == "HEAD" else { return send(fd, Response(status: 405, body: "only GET\n")) }
        var response = handler(String(decoding: line[1], as: UTF8.self))
        if method == "HEAD" { response.body = "" }
        send(fd, response)
    }

    private func send(_ fd: Int32, _ response: Response) {
        let reasons = [
            200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
            503: "Service Unavailable",
        ]
        let body = Array(response.body.utf8)
        let head =
            "HTTP/1.1 \(response.status) \(reasons[response.status] ?? "Status")\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var bytes = Array(head.utf8) + body
        // A probe's or a scrape's answer fits in the socket's buffer; a client that reads
        // nothing gets what fits and is dropped, never waited for.
        var offset = 0
        var attempts = 0
        while offset < bytes.count && attempts < 100 {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                attempts += 1
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 10)
            } else {
                break
            }
        }
        bytes.removeAll()
    }
}
