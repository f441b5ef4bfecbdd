import Addresses
import JSON
import Testing
@testable import NetworkPolicy

/// Every case's compiled rules, run as the kernel runs them on both nodes, against the
/// reference model: every pod, node and the outside host to every pod and host, on TCP and UDP
/// 80 and 81 and SCTP 80.
@Suite struct TruthTableTests {
    struct World {
        var model: ReferenceModel
        var state: ClusterState
        var rulesets: [String: Ruleset]
    }

    static func world(_ c: PolicyCase) -> World {
        var pods: [JSONValue] = []
        for ns in Cluster.namespaces {
            for name in Cluster.podNames { pods.append(Cluster.podJSON(ns, name, labels: c.podLabels["\(ns)/\(name)"])) }
        }
        let namespaces = Cluster.namespaces.map { Cluster.namespaceJSON($0, labels: c.namespaceLabels[$0]) }
        var state = ClusterState()
        state.replaceAll(.pods, items: pods)
        state.replaceAll(.namespaces, items: namespaces)
        state.replaceAll(.networkpolicies, items: c.policies)
        var rulesets: [String: Ruleset] = [:]
        for (node, _) in Cluster.nodes { rulesets[node] = PolicyCompiler.compile(state, node: node) }
        return World(model: ReferenceModel(pods: pods, namespaces: namespaces, policies: c.policies), state: state, rulesets: rulesets)
    }

    enum End {
        case pod(String, String)
        case node(String, String)
        case outside
        var model: ReferenceModel.Endpoint {
            switch self {
            case .pod(let ns, let n): return .pod(ns, n)
            case .node(let n, let ip): return .node(n, ip)
            case .outside: return .host(Cluster.outside)
            }
        }
        var ip: String {
            switch self {
            case .pod(let ns, let n): return Cluster.podIP(ns, n)
            case .node(_, let ip): return ip
            case .outside: return Cluster.outside
            }
        }
        /// The node the endpoint's traffic passes first / last.
        var node: String? {
            switch self {
            case .pod(let ns, let n): return Cluster.node(ns, n)
            case .node(let n, _): return n
            case .outside: return nil
            }
        }
        var isPod: Bool { if case .pod = self { return true } else { return false } }
    }

    static var ends: [End] {
        Cluster.namespaces.flatMap { ns in Cluster.podNames.map { End.pod(ns, $0) } } + Cluster.nodes.map { End.node($0.0, $0.1) } + [
            .outside
        ]
    }

    /// The compiled rules' verdict: the source's node checks it on the way out (forward, or
    /// input when the node itself is the destination), the destination's node on the way in;
    /// a node's own packets are not checked on the way out.
    static func compiledVerdict(_ w: World, _ s: End, _ d: End, proto: PortProtocol, port: Int) -> Bool {
        let packet = { (toNode: Bool) in
            Ruleset.Packet(source: IPAddress(s.ip)!, destination: IPAddress(d.ip)!, proto: proto, port: port, toNode: toNode)
        }
        var passed: Set<String> = []
        if s.isPod, let node = s.node {
            let toNode: Bool = { if case .node(let n, _) = d { return n == node } else { return false } }()
            if !w.rulesets[node]!.accepts(packet(toNode)) { return false }
            passed.insert(node)
        }
        if d.isPod, let node = d.node, !passed.contains(node) {
            if case .node(let n, _) = s, n == node { return true }  // output hook: unchecked
            if !w.rulesets[node]!.accepts(packet(false)) { return false }
        }
        return true
    }

    @Test(arguments: Cases.all) func compiledRulesAgreeWithTheModel(_ c: PolicyCase) {
        let w = TruthTableTests.world(c)
        var mismatches: [String] = []
        for s in TruthTableTests.ends {
            for d in TruthTableTests.ends where s.ip != d.ip && (s.isPod || d.isPod) {
                for probe in Cluster.probes {
                    let expected = w.model.allows(s.model, d.model, proto: probe.proto, port: probe.port)
                    let got = TruthTableTests.compiledVerdict(w, s, d, proto: PortProtocol(rawValue: probe.proto)!, port: probe.port)
                    if expected != got {
                        mismatches.append("\(s.ip)->\(d.ip) \(probe.proto)/\(probe.port): model \(expected), rules \(got)")
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(c.name): \(mismatches.prefix(10).joined(separator: "; "))")
    }

    @Test func casesAreNotVacuous() {
        // Each case denies something and allows something, except those meant to allow all.
        for c in Cases.all.dropFirst() where !c.name.contains("allow") {
            let w = TruthTableTests.world(c)
            var verdicts = Set<Bool>()
            for s in TruthTableTests.ends {
                for d in TruthTableTests.ends where s.ip != d.ip && (s.isPod || d.isPod) {
                    for probe in Cluster.probes { verdicts.insert(w.model.allows(s.model, d.model, proto: probe.proto, port: probe.port)) }
                }
            }
            #expect(verdicts == [true, false], "\(c.name)")
        }
    }
}
