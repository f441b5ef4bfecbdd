import Addresses
import JSON
import Testing
@testable import NetworkPolicy

@Suite struct DecodingTests {
    func policy(_ spec: String) -> NetworkPolicy { NetworkPolicy(json: Cluster.policy("x", "p", spec))! }

    @Test func policyTypesAreDefaultedAsTheAPIServerDoes() {
        #expect(policy(#"{"podSelector":{}}"#).policyTypes == [.ingress])
        #expect(policy(#"{"podSelector":{},"egress":[{}]}"#).policyTypes == [.ingress, .egress])
        #expect(policy(#"{"podSelector":{},"egress":[]}"#).policyTypes == [.ingress])
        #expect(policy(#"{"podSelector":{},"policyTypes":[],"egress":[{}]}"#).policyTypes == [.ingress, .egress])
        #expect(policy(#"{"podSelector":{},"policyTypes":["Egress"],"ingress":[{}]}"#).policyTypes == [.egress])
    }

    @Test func emptyAndMissingFields() {
        let p = policy(#"{"podSelector":{},"ingress":[{},{"from":[],"ports":[]},{"ports":[{}]}]}"#)
        #expect(p.ingress.count == 3)
        #expect(p.ingress[0] == NetworkPolicy.Rule())
        #expect(p.ingress[1] == NetworkPolicy.Rule())
        #expect(p.ingress[2].ports == [NetworkPolicy.Port(proto: .tcp, port: nil)], "a port entry without port: every TCP port")
        #expect(NetworkPolicy(json: Cluster.policy("x", "p", "{}"))!.podSelector == .everything, "a missing podSelector selects all")
    }

    @Test func peersAndPorts() {
        let p = policy(
            #"{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.5/8","except":["10.1.0.0/16"]}},{"podSelector":{}},{"namespaceSelector":{},"podSelector":{"matchLabels":{"a":"b"}}},{}],"ports":[{"port":"http"},{"port":80,"endPort":90,"protocol":"UDP"},{"protocol":"SCTP","port":"9"}]}]}"#
        )
        let rule = p.ingress[0]
        #expect(rule.peers[0] == .ipBlock(cidr: IPNetwork(cidr: "10.0.0.0/8")!, except: [IPNetwork(cidr: "10.1.0.0/16")!]))
        #expect(rule.peers[1] == .pods(podSelector: .everything, namespaceSelector: nil))
        #expect(rule.peers[2] == .pods(podSelector: LabelSelector(matchLabels: ["a": "b"]), namespaceSelector: .everything))
        #expect(rule.peers[3] == .invalid, "a peer without any field is refused by the API server; here it matches nothing")
        #expect(rule.ports[0] == NetworkPolicy.Port(proto: .tcp, port: .name("http")))
        #expect(rule.ports[1] == NetworkPolicy.Port(proto: .udp, port: .number(80), endPort: 90))
        #expect(rule.ports[2] == NetworkPolicy.Port(proto: .sctp, port: .number(9)))
    }

    @Test func selectors() {
        let s = LabelSelector(
            json: Cluster.json(
                #"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["db"]},{"key":"env","operator":"In","values":["a","b"]}]}"#
            ))
        #expect(s.matches(["app": "web", "env": "a"]), "NotIn holds without the key")
        #expect(!s.matches(["app": "web", "env": "a", "tier": "db"]))
        #expect(!s.matches(["app": "web"]), "In needs the key")
        #expect(!s.matches(["env": "b"]))
        #expect(LabelSelector.everything.matches([:]))
        let bad = LabelSelector(json: Cluster.json(#"{"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]}"#))
        #expect(!bad.matches(["a": "2"]), "an unknown operator selects nothing")
        let exists = LabelSelector(
            json: Cluster.json(#"{"matchExpressions":[{"key":"a","operator":"Exists"},{"key":"b","operator":"DoesNotExist"}]}"#))
        #expect(exists.matches(["a": ""]))
        #expect(!exists.matches(["a": "", "b": "x"]))
    }

    @Test func podsWithoutAddressesOrFinishedTakeNoPart() {
        var json = Cluster.podJSON("x", "a")
        #expect(Pod(json: json)!.isPolicyTarget)
        #expect(Pod(json: json)!.port(named: "serve-81-udp", proto: .udp) == 81)
        #expect(Pod(json: json)!.port(named: "serve-81-udp", proto: .tcp) == nil)
        json = Cluster.json(#"{"metadata":{"namespace":"x","name":"p"},"spec":{"nodeName":"n"},"status":{"phase":"Pending"}}"#)
        #expect(!Pod(json: json)!.isPolicyTarget)
        json = Cluster.json(#"{"metadata":{"namespace":"x","name":"p"},"spec":{"hostNetwork":true},"status":{"podIP":"10.0.0.1"}}"#)
        #expect(!Pod(json: json)!.isPolicyTarget)
        json = Cluster.json(#"{"metadata":{"namespace":"x","name":"p"},"status":{"phase":"Succeeded","podIP":"10.0.0.1"}}"#)
        #expect(!Pod(json: json)!.isPolicyTarget)
    }

    @Test func addressSetsMergeAndCutHoles() {
        let set = Ruleset.AddressSet.of(
            family: .v4,
            networks: [IPNetwork(cidr: "10.0.0.0/24")!.range, IPNetwork(cidr: "10.0.1.0/24")!.range, IPAddress("10.0.0.7")!.single],
            holes: [IPNetwork(cidr: "10.0.0.128/25")!.range, IPAddress("10.0.1.255")!.single])
        #expect(set.ranges.map { "\($0.lowerBound)-\($0.upperBound)" } == ["10.0.0.0-10.0.0.127", "10.0.1.0-10.0.1.254"])
        let all = Ruleset.AddressSet.of(family: .v4, networks: [IPNetwork(cidr: "0.0.0.0/0")!.range], holes: [IPAddress("0.0.0.0")!.single])
        #expect(all.ranges.map { "\($0.lowerBound)-\($0.upperBound)" } == ["0.0.0.1-255.255.255.255"])
        #expect(Ruleset.AddressSet.of(family: .v6, networks: [IPNetwork(cidr: "10.0.0.0/8")!.range]).ranges.isEmpty)
    }

    @Test func watchEventsUpdateTheState() {
        var state = ClusterState()
        var changes: [Bool] = []
        changes.append(state.apply(.pods, object: Cluster.podJSON("x", "a"), deleted: false))
        changes.append(state.apply(.pods, object: Cluster.podJSON("x", "a"), deleted: false))  // the same again
        changes.append(state.apply(.pods, object: Cluster.podJSON("x", "a", labels: ["pod": "z"]), deleted: false))
        changes.append(state.apply(.pods, object: Cluster.podJSON("x", "a"), deleted: true))
        #expect(state.pods.isEmpty)
        changes.append(state.apply(.namespaces, object: Cluster.namespaceJSON("x"), deleted: false))
        changes.append(state.replaceAll(.namespaces, items: []))
        #expect(changes == [true, false, true, true, true, true])
    }

    @Test func longNamesAreBounded() {
        let name = PolicyCompiler.chainName(.ingress, ObjectKey(String(repeating: "n", count: 63), String(repeating: "p", count: 253)))
        #expect(name.utf8.count < 256)
        #expect(
            name
                != PolicyCompiler.chainName(
                    .ingress, ObjectKey(String(repeating: "n", count: 63), String(repeating: "p", count: 252) + "q")))
        #expect(PolicyCompiler.chainName(.egress, ObjectKey("x", "a")) == "egress/x/a")
    }
}
