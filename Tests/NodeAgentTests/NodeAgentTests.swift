import Addresses
import JSON
import NFTables
import NetworkPolicy
import XCTest
@testable import NodeAgent

final class KubeconfigTests: XCTestCase {
    // As `kubectl config view --raw` writes it: sequences at their key's indentation.
    let kubeconfig = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: aGVsbG8=
            server: https://192.168.1.1:6443/
          name: test
        contexts:
        - context:
            cluster: test
            user: agent   # a comment
          name: test-ctx
        - context:
            cluster: other
            user: nobody
          name: other
        current-context: test-ctx
        kind: Config
        preferences: {}
        users:
        - name: agent
          user:
            token: "s3cr#t"
        - name: nobody
          user:
            token: '12345'
        """

    func testKubeconfigShape() throws {
        let doc = try YAML.parse(kubeconfig)
        XCTAssertEqual(doc["current-context"], .string("test-ctx"))
        XCTAssertEqual(doc["clusters"]?.arrayValue?.count, 1)
        XCTAssertEqual(doc["contexts"]?.arrayValue?[1]["name"], .string("other"))
        XCTAssertEqual(doc["contexts"]?.arrayValue?[0]["context"]?["user"], .string("agent"))
        XCTAssertEqual(doc["preferences"], .object(JSONObject()))
        XCTAssertEqual(doc["users"]?.arrayValue?[0]["user"]?["token"], .string("s3cr#t"))
        XCTAssertEqual(doc["users"]?.arrayValue?[1]["user"]?["token"], .string("12345"))
    }

    func testConnectionFromKubeconfig() throws {
        let c = try KubeConnection.kubeconfig(text: kubeconfig, directory: "/etc/k")
        XCTAssertEqual(c.server, "https://192.168.1.1:6443")
        XCTAssertEqual(c.certificateAuthorityData, Array("hello".utf8))
        XCTAssertEqual(c.token, "s3cr#t")
        XCTAssertNil(c.clientCertificateFile)
    }

    func testRelativePathsAndClientCertificates() throws {
        let text = """
            {"current-context":"c","contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],
             "clusters":[{"name":"k","cluster":{"server":"https://h:1","certificate-authority":"ca.crt"}}],
             "users":[{"name":"u","user":{"client-certificate":"/abs/u.crt","client-key":"u.key"}}]}
            """
        let c = try KubeConnection.kubeconfig(text: text, directory: "/etc/k")
        XCTAssertEqual(c.certificateAuthorityFile, "/etc/k/ca.crt")
        XCTAssertEqual(c.clientCertificateFile, "/abs/u.crt")
        XCTAssertEqual(c.clientKeyFile, "/etc/k/u.key")
    }

    func testRejectsWhatIsNotAKubeconfig() {
        XCTAssertThrowsError(try YAML.parse("a: b\n   c: d\n"))
        XCTAssertThrowsError(try YAML.parse("a: 1\na: 2\n"))
        XCTAssertThrowsError(try KubeConnection.kubeconfig(text: "current-context: x\n", directory: "."))
        let exec =
            "current-context: c\ncontexts:\n- name: c\n  context: {\"cluster\": \"k\", \"user\": \"u\"}\nclusters:\n- name: k\n  cluster: {\"server\": \"https://h\"}\nusers:\n- name: u\n  user:\n    exec: {}\n"
        XCTAssertThrowsError(try KubeConnection.kubeconfig(text: exec, directory: ".")) { error in
            XCTAssertTrue("\(error)".contains("exec"))
        }
    }

    func testInCluster() throws {
        XCTAssertThrowsError(try KubeConnection.inCluster(environment: [:]))
    }

    func testBase64() {
        XCTAssertEqual(Base64.decode("aGVsbG8="), Array("hello".utf8))
        XCTAssertEqual(Base64.decode("aGVs\nbG8h"), Array("hello!".utf8))
        XCTAssertEqual(Base64.decode(""), [])
        XCTAssertNil(Base64.decode("a"))
        XCTAssertNil(Base64.decode("aGV*"))
    }
}

final class WatchStreamTests: XCTestCase {
    func testLinesSplitAnywhere() throws {
        var splitter = LineSplitter()
        let stream = Array(
            "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}\n\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n"
                .utf8)
        var lines: [[UInt8]] = []
        for start in stride(from: 0, to: stream.count, by: 7) {
            let chunk = Array(stream[start..<min(start + 7, stream.count)])
            lines += try chunk.withUnsafeBytes { try splitter.feed($0) }
        }
        XCTAssertEqual(lines.count, 2)
        XCTAssertFalse(splitter.hasPartialLine)
        let first = try WatchEvent.parse(lines[0])
        let second = try WatchEvent.parse(lines[1])
        XCTAssertEqual(first.kind, .added)
        XCTAssertEqual(first.resourceVersion, "5")
        XCTAssertEqual(second.kind, .bookmark)
        XCTAssertEqual(second.resourceVersion, "9")
    }

    func testExpiredEvent() throws {
        let line = Array(
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#
                .utf8)
        let event = try WatchEvent.parse(line)
        XCTAssertEqual(event.kind, .error)
        XCTAssertEqual(event.statusCode, 410)
        XCTAssertThrowsError(try WatchEvent.parse(Array(#"{"type":"NOPE","object":{}}"#.utf8)))
    }

    func testLineLimit() {
        var splitter = LineSplitter(maxLineLength: 4)
        XCTAssertThrowsError(try Array("abcdefgh".utf8).withUnsafeBytes { try splitter.feed($0) })
    }

    func testStatusMessages() {
        let error = KubeRequest.statusError(
            code: 401,
            body: Array(
                #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
                    .utf8))
        XCTAssertEqual(error.description, "HTTP 401 Unauthorized: Unauthorized")
        XCTAssertEqual(KubeRequest.statusError(code: 500, body: Array("oops\n".utf8)).description, "HTTP 500: oops")
    }
}

final class AgentOptionsTests: XCTestCase {
    func testFlags() throws {
        let o = try AgentOptions.parse(
            ["--kubeconfig", "k", "--install-cni", "/b", "/c", "--resync", "2.5"], environment: ["NODE_NAME": "n1"])
        XCTAssertEqual(o.nodeName, "n1")
        XCTAssertEqual(o.installCNI?.binDir, "/b")
        XCTAssertEqual(o.installCNI?.confDir, "/c")
        XCTAssertEqual(o.resync, 2.5)
        XCTAssertEqual(o.subnetFile, "/run/bridge-ipam/podcidr")
        XCTAssertThrowsError(try AgentOptions.parse([], environment: [:]))
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "a", "--resync", "0"], environment: [:]))
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "a", "--bogus"], environment: [:]))
        XCTAssertFalse(o.networkPolicy, "NetworkPolicy is enforced only when asked")
        XCTAssertTrue(try AgentOptions.parse(["--node", "a", "--network-policy"], environment: [:]).networkPolicy)
    }
}

final class PolicyAgentTests: XCTestCase {
    /// Ingress chains match their peers as the packet's source, egress chains as its destination.
    func testCompiledRulesBecomeTableContent() throws {
        var state = ClusterState()
        let pod = { (ns: String, name: String, ip: String, node: String) -> JSONValue in
            try! JSONValue.parse(
                #"{"metadata":{"namespace":"\#(ns)","name":"\#(name)","labels":{"pod":"\#(name)"}},"spec":{"nodeName":"\#(node)"},"status":{"podIP":"\#(ip)"}}"#
            )
        }
        state.replaceAll(.pods, items: [pod("x", "a", "10.244.0.10", "n0"), pod("x", "b", "10.244.1.10", "n1")])
        state.replaceAll(
            .networkpolicies,
            items: [
                try JSONValue.parse(
                    #"{"metadata":{"namespace":"x","name":"p"},"spec":{"podSelector":{},"ingress":[{"from":[{"podSelector":{}}],"ports":[{"port":80,"endPort":90}]}],"egress":[{"to":[{"podSelector":{}}]}]}}"#
                )
            ])
        let content = PolicyAgent.content(PolicyCompiler.compile(state, node: "n0"))
        XCTAssertEqual(Set(content.chains.keys), ["ingress/x/a", "egress/x/a"], "only the node's own pod")
        XCTAssertEqual(content.ingress, [IPAddress("10.244.0.10")!: "ingress/x/a"])
        XCTAssertEqual(content.egress, [IPAddress("10.244.0.10")!: "egress/x/a"])
        let ingress = try XCTUnwrap(content.chains["ingress/x/a"]?.first)
        XCTAssertEqual(ingress.peers?.side, .source)
        XCTAssertEqual(ingress.proto, 6)
        XCTAssertEqual(ingress.ports, 80...90)
        XCTAssertEqual(content.chains["egress/x/a"]?.first?.peers?.side, .destination)
        XCTAssertEqual(content.sets[ingress.peers!.set]?.ranges.count, 2, "both pods of x")
    }
}
