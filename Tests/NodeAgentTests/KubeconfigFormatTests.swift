import JSON
import XCTest

@testable import NodeAgent

/// Kubeconfigs as the tools people use write them, read through libyaml.
final class KubeconfigFormatTests: XCTestCase {
    // kubeadm's /etc/kubernetes/admin.conf: client certificate and key embedded.
    let kubeadm = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: aGVsbG8=
            server: https://10.0.0.10:6443
          name: kubernetes
        contexts:
        - context:
            cluster: kubernetes
            user: kubernetes-admin
          name: kubernetes-admin@kubernetes
        current-context: kubernetes-admin@kubernetes
        kind: Config
        preferences: {}
        users:
        - name: kubernetes-admin
          user:
            client-certificate-data: Y2VydA==
            client-key-data: a2V5
        """

    // kind: sequences indented under their key, a 127.0.0.1 port.
    let kind = """
        apiVersion: v1
        clusters:
          - cluster:
              certificate-authority-data: aGVsbG8=
              server: https://127.0.0.1:40551
            name: kind-kind
        contexts:
          - context:
              cluster: kind-kind
              user: kind-kind
            name: kind-kind
        current-context: kind-kind
        kind: Config
        preferences: {}
        users:
          - name: kind-kind
            user:
              client-certificate-data: Y2VydA==
              client-key-data: a2V5
        """

    // k3s's /etc/rancher/k3s/k3s.yaml: "default" everywhere.
    let k3s = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: aGVsbG8=
            server: https://127.0.0.1:6443
          name: default
        contexts:
        - context:
            cluster: default
            user: default
          name: default
        current-context: default
        kind: Config
        preferences: {}
        users:
        - name: default
          user:
            client-certificate-data: Y2VydA==
            client-key-data: a2V5
        """

    func testToolLayouts() throws {
        for (name, text, server) in [
            ("kubeadm", kubeadm, "https://10.0.0.10:6443"), ("kind", kind, "https://127.0.0.1:40551"),
            ("k3s", k3s, "https://127.0.0.1:6443"),
        ] {
            let c = try KubeConnection.kubeconfig(text: text, directory: "/etc/k")
            XCTAssertEqual(c.server, server, name)
            XCTAssertEqual(c.certificateAuthorityData, Array("hello".utf8), name)
            XCTAssertEqual(c.clientCertificateData, Array("cert".utf8), name)
            XCTAssertEqual(c.clientKeyData, Array("key".utf8), name)
            // The same file with Windows line ends.
            let crlf = text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
            XCTAssertEqual(try KubeConnection.kubeconfig(text: crlf, directory: "/etc/k"), c, name + " CRLF")
        }
    }

    /// Comments, block scalars, flow collections, anchors, merge keys, quoting, a BOM: all in
    /// entries the current context does not use, and some in those it does.
    func testEveryYAMLFeature() throws {
        let text =
            "\u{FEFF}" + """
                # written by hand
                apiVersion: v1
                kind: Config
                clusters:
                - name: prod   # the one we use
                  cluster: &base
                    server: "https://api.example:6443/"
                    certificate-authority-data: |
                      aGVs
                      bG8=
                    tls-server-name: kubernetes
                - name: copy
                  cluster:
                    <<: *base
                    server: https://other:6443
                - {name: flow, cluster: {server: 'https://flow:1', insecure-skip-tls-verify: true}}
                contexts:
                - name: main
                  context: {cluster: prod, user: me, namespace: kube-system}
                - name: folded
                  context:
                    cluster: >-
                      copy
                    user: me
                current-context: main
                users:
                - name: me
                  user:
                    token: >
                      abc
                      def
                preferences: {colors: [red, green]}
                extensions: []
                """
        let c = try KubeConnection.kubeconfig(text: text, directory: ".")
        XCTAssertEqual(c.server, "https://api.example:6443")
        XCTAssertEqual(c.certificateAuthorityData, Array("hello".utf8))
        XCTAssertEqual(c.tlsServerName, "kubernetes")
        XCTAssertEqual(c.token, "abc def\n")
        XCTAssertEqual(try c.currentToken(), "abc def")
        let doc = try YAML.parse(text)
        let copy = doc["clusters"]?.arrayValue?[1]["cluster"]
        XCTAssertEqual(copy?["server"], .string("https://other:6443"))
        XCTAssertEqual(copy?["tls-server-name"], .string("kubernetes"))
        XCTAssertEqual(doc["clusters"]?.arrayValue?[2]["cluster"]?["insecure-skip-tls-verify"], .bool(true))
        XCTAssertEqual(doc["contexts"]?.arrayValue?[1]["context"]?["cluster"], .string("copy"))
    }

    func testScalarsStayStrings() throws {
        let doc = try YAML.parse("token: 0123\nquoted: \"true\"\nyes: yes\nempty:\nnull: ~\n")
        XCTAssertEqual(doc["token"], .string("0123"))
        XCTAssertEqual(doc["quoted"], .string("true"))
        XCTAssertEqual(doc["yes"], .string("yes"))
        XCTAssertEqual(doc["empty"], .null)
        XCTAssertEqual(doc["null"], .null)
    }

    func testAliasBombsAndCyclesStop() {
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1..<8 {
            bomb +=
                "l\(level): &l\(level) [" + Array(repeating: level == 1 ? "*a" : "*l\(level - 1)", count: 10).joined(separator: ", ")
                + "]\n"
        }
        XCTAssertThrowsError(try YAML.parse(bomb)) { XCTAssertTrue("\($0)".contains("more than")) }
        XCTAssertThrowsError(try YAML.parse("a: &a [*a]\n"))
        XCTAssertThrowsError(try YAML.parse("a: [unclosed\n")) { XCTAssertTrue("\($0)".contains("line")) }
        XCTAssertThrowsError(try YAML.parse(""))
    }

    func testProxyURLIsRefused() {
        let text = kubeadm.replacingOccurrences(
            of: "    server: https://10.0.0.10:6443", with: "    server: https://10.0.0.10:6443\n    proxy-url: http://proxy:3128")
        XCTAssertThrowsError(try KubeConnection.kubeconfig(text: text, directory: ".")) { error in
            XCTAssertTrue("\(error)".contains("proxy-url http://proxy:3128 is not supported"), "\(error)")
        }
    }

    func testTokenFileWhitespaceIsTrimmed() throws {
        let path = "/tmp/bridge-ipam-token-\(getpid())"
        defer { unlink(path) }
        for content in ["s3cret\r\n", "  s3cret \n\n", "s3cret\t"] {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            _ = Array(content.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            var c = KubeConnection(server: "https://h")
            c.tokenFile = path
            XCTAssertEqual(try c.currentToken(), "s3cret", content.debugDescription)
        }
    }

    func testServerAddresses() {
        XCTAssertEqual(ServerAddress("https://10.0.0.1:6443"), ServerAddress(scheme: "https", host: "10.0.0.1", port: 6443, pathPrefix: ""))
        XCTAssertEqual(
            ServerAddress("https://[fd00::1]:6443/k8s/c1"),
            ServerAddress(scheme: "https", host: "[fd00::1]", port: 6443, pathPrefix: "/k8s/c1"))
        XCTAssertEqual(ServerAddress("https://api.example")?.port, 443)
        XCTAssertNil(ServerAddress("api.example:6443"))
        XCTAssertNil(ServerAddress("https://h:99999"))
    }
}
