#if canImport(Glibc)
import Glibc
#endif
import JSON
import SystemIO

/// How to reach the API server and who we are to it: from the in-cluster service account, or
/// from a kubeconfig file's current context.
public struct KubeConnection: Equatable, Sendable {
    /// `https://host:port`, without a trailing slash.
    public var server: String
    public var certificateAuthorityFile: String?
    public var certificateAuthorityData: [UInt8]?
    public var insecureSkipTLSVerify = false
    /// The name the server's certificate must carry (and the TLS SNI), when it differs from
    /// the host in `server` (kubeconfig `tls-server-name`).
    public var tlsServerName: String?
    public var token: String?
    /// Read anew before every request, so a rotated service-account token is picked up.
    public var tokenFile: String?
    public var clientCertificateFile: String?
    public var clientCertificateData: [UInt8]?
    public var clientKeyFile: String?
    public var clientKeyData: [UInt8]?

    public init(server: String) { self.server = server }

    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The in-cluster config, as client-go builds it: `KUBERNETES_SERVICE_HOST`/`_PORT`, the
    /// service account's token and CA.
    public static func inCluster(environment: [String: String]) throws(Error) -> KubeConnection {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw Error("not running in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset); give --kubeconfig FILE")
        }
        var connection = KubeConnection(server: "https://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        connection.tokenFile = "\(serviceAccountDirectory)/token"
        connection.certificateAuthorityFile = "\(serviceAccountDirectory)/ca.crt"
        guard access(connection.tokenFile!, R_OK) == 0 else {
            throw Error("cannot read the service account token \(connection.tokenFile!): \(String(cString: strerror(errno)))")
        }
        return connection
    }

    /// The current context of a kubeconfig file (YAML or JSON). Relative file names in it are
    /// taken relative to the file's directory, as kubectl does.
    public static func kubeconfig(path: String) throws(Error) -> KubeConnection {
        guard let bytes = readWholeFile(path) else {
            throw Error("cannot read kubeconfig \(path): \(String(cString: strerror(errno)))")
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        do { return try kubeconfig(bytes: bytes, directory: directory) } catch {
            throw Error("kubeconfig \(path): \(error.message)")
        }
    }

    public static func kubeconfig(text: String, directory: String) throws(Error) -> KubeConnection {
        try kubeconfig(bytes: Array(text.utf8), directory: directory)
    }

    /// A kubeconfig's bytes: JSON (kubectl accepts it too) or YAML, read by libyaml.
    public static func kubeconfig(bytes: [UInt8], directory: String) throws(Error) -> KubeConnection {
        let document: JSONValue
        if bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{") {
            do { document = try JSONValue.parse(bytes) } catch { throw Error("invalid JSON: \(error)") }
        } else {
            do { document = try YAML.parse(bytes) } catch { throw Error("\(error)") }
        }
        func named(_ list: String, _ name: String, _ field: String) throws(Error) -> JSONValue {
            guard let entry = document[list]?.arrayValue?.first(where: { $0["name"]?.text == name }), let value = entry[field] else {
                throw Error("no \(field) named \"\(name)\" in \(list)")
            }
            return value
        }
        guard let current = document["current-context"]?.text, !current.isEmpty else { throw Error("current-context is not set") }
        let context = try named("contexts", current, "context")
        guard let clusterName = context["cluster"]?.text else { throw Error("context \"\(current)\" names no cluster") }
        let cluster = try named("clusters", clusterName, "cluster")
        guard var server = cluster["server"]?.text, !server.isEmpty else { throw Error("cluster \"\(clusterName)\" has no server") }
        while server.hasSuffix("/") { server.removeLast() }
        var connection = KubeConnection(server: server)
        func path(_ p: String?) -> String? { p.map { $0.hasPrefix("/") ? $0 : "\(directory)/\($0)" } }
        func data(_ value: JSONValue?, _ field: String) throws(Error) -> [UInt8]? {
            guard let text = value?.text else { return nil }
            guard let bytes = Base64.decode(text) else { throw Error("\(field) is not valid base64") }
            return bytes
        }
        connection.certificateAuthorityFile = path(cluster["certificate-authority"]?.text)
        connection.certificateAuthorityData = try data(cluster["certificate-authority-data"], "certificate-authority-data")
        connection.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"]?.boolValue ?? false
        connection.tlsServerName = cluster["tls-server-name"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        // A proxy the agent would silently bypass is worse than a refusal: the API server may
        // be reachable only through it.
        if let proxy = cluster["proxy-url"]?.text, !proxy.isEmpty {
            throw Error(
                "cluster \"\(clusterName)\": proxy-url \(proxy) is not supported; the agent connects to \(server) directly (remove proxy-url, or run the agent where the API server is reachable)"
            )
        }
        if let userName = context["user"]?.text {
            let user = try named("users", userName, "user")
            if user["exec"] != nil || user["auth-provider"] != nil {
                throw Error(
                    "user \"\(userName)\": exec and auth-provider credentials are not supported; use a token or a client certificate")
            }
            connection.token = user["token"]?.text
            connection.tokenFile = path(user["tokenFile"]?.text)
            connection.clientCertificateFile = path(user["client-certificate"]?.text)
            connection.clientCertificateData = try data(user["client-certificate-data"], "client-certificate-data")
            connection.clientKeyFile = path(user["client-key"]?.text)
            connection.clientKeyData = try data(user["client-key-data"], "client-key-data")
        }
        return connection
    }

    /// The bearer token to send now, if any (a token file is read on every call).
    public func currentToken() throws(Error) -> String? {
        // Files written by hand or on Windows end in a newline or CRLF, a block scalar in a
        // newline: never part of the token (and never to be sent inside the header).
        func trimmed(_ text: String) -> String {
            var token = Substring(text)
            while let last = token.last, last.isWhitespace { token.removeLast() }
            while let first = token.first, first.isWhitespace { token.removeFirst() }
            return String(token)
        }
        if let token, !trimmed(token).isEmpty { return trimmed(token) }
        guard let tokenFile else { return nil }
        guard let bytes = readWholeFile(tokenFile) else {
            throw Error("cannot read token file \(tokenFile): \(String(cString: strerror(errno)))")
        }
        return trimmed(String(decoding: bytes, as: UTF8.self))
    }
}

extension JSONValue {
    /// A scalar as text (YAML leaves a token of digits a number).
    var text: String? {
        switch self {
        case .string(let s): return s
        case .number(let n): return n
        default: return nil
        }
    }
}

/// The whole content of a file (at most 256 MiB: the plugin binary is the largest), or nil with
/// errno set.
public func readWholeFile(_ path: String) -> [UInt8]? {
    do throws(SystemError) { return try FileIO.read(path, limit: 256 * 1024 * 1024, regularOnly: false) } catch {
        errno = error.errno
        return nil
    }
}
