import Addresses
import JSON
@testable import NetworkPolicy

/// The cluster of the upstream e2e suite (test/e2e/network/netpol): namespaces x, y, z with pods
/// a, b, c each, spread over two nodes; every pod serves TCP and UDP on 80 and 81 under named
/// ports (`serve-80-tcp`, ...), and SCTP on 80. Plus a host outside the cluster.
enum Cluster {
    static let namespaces = ["x", "y", "z"]
    static let podNames = ["a", "b", "c"]
    static let nodes = [("node0", "192.168.1.2"), ("node1", "192.168.1.3")]
    static let outside = "192.168.100.2"

    static func podIP(_ ns: String, _ name: String) -> String {
        let n = namespaces.firstIndex(of: ns)! * 3 + podNames.firstIndex(of: name)!
        return "10.244.\(n % 2).\(10 + n)"
    }
    static func node(_ ns: String, _ name: String) -> String { "node\(Int(podIP(ns, name).split(separator: ".")[2])!)" }

    static func json(_ text: String) -> JSONValue { try! JSONValue.parse(text) }

    static func podJSON(_ ns: String, _ name: String, labels: [String: String]? = nil) -> JSONValue {
        let labelText = (labels ?? ["pod": name]).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        var ports: [String] = []
        for port in [80, 81] {
            for proto in ["TCP", "UDP"] {
                ports.append("{\"name\":\"serve-\(port)-\(proto.lowercased())\",\"containerPort\":\(port),\"protocol\":\"\(proto)\"}")
            }
        }
        ports.append("{\"name\":\"serve-80-sctp\",\"containerPort\":80,\"protocol\":\"SCTP\"}")
        return json(
            """
            {"metadata":{"namespace":"\(ns)","name":"\(name)","labels":{\(labelText)}},
             "spec":{"nodeName":"\(node(ns, name))","containers":[{"name":"c","ports":[\(ports.joined(separator: ","))]}]},
             "status":{"phase":"Running","podIP":"\(podIP(ns, name))","podIPs":[{"ip":"\(podIP(ns, name))"}]}}
            """)
    }

    static func namespaceJSON(_ ns: String, labels: [String: String]? = nil) -> JSONValue {
        let labelText = (labels ?? ["ns": ns]).sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        return json("{\"metadata\":{\"name\":\"\(ns)\",\"labels\":{\(labelText)}}}")
    }

    static func policy(_ ns: String, _ name: String, _ spec: String) -> JSONValue {
        json("{\"metadata\":{\"namespace\":\"\(ns)\",\"name\":\"\(name)\"},\"spec\":\(spec)}")
    }

    static let probes: [(proto: String, port: Int)] = [("TCP", 80), ("TCP", 81), ("UDP", 80), ("UDP", 81), ("SCTP", 80)]
}

/// A truth-table case: policies (and label changes) over the e2e cluster.
struct PolicyCase: CustomStringConvertible, Sendable {
    var name: String
    var policies: [JSONValue]
    var podLabels: [String: [String: String]] = [:]  // "ns/pod" -> labels
    var namespaceLabels: [String: [String: String]] = [:]
    var description: String { name }
}

enum Cases {
    static func p(_ ns: String, _ name: String, _ spec: String) -> JSONValue { Cluster.policy(ns, name, spec) }

    static let all: [PolicyCase] = [
        PolicyCase(name: "no policy", policies: []),
        PolicyCase(name: "default-deny-ingress", policies: [p("x", "deny", #"{"podSelector":{}}"#)]),
        PolicyCase(name: "default-deny-all", policies: [p("x", "deny", #"{"podSelector":{},"policyTypes":["Ingress","Egress"]}"#)]),
        PolicyCase(name: "allow-all ingress (one empty rule)", policies: [p("x", "all", #"{"podSelector":{},"ingress":[{}]}"#)]),
        PolicyCase(name: "ingress: [] denies", policies: [p("x", "none", #"{"podSelector":{},"ingress":[]}"#)]),
        PolicyCase(name: "from: [] allows all", policies: [p("x", "all", #"{"podSelector":{},"ingress":[{"from":[]}]}"#)]),
        PolicyCase(
            name: "x/a from pods b in its namespace",
            policies: [
                p(
                    "x", "a-from-b",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#)
            ]),
        PolicyCase(
            name: "from podSelector {}: every pod of the policy's namespace",
            policies: [p("x", "same-ns", #"{"podSelector":{},"ingress":[{"from":[{"podSelector":{}}]}]}"#)]),
        PolicyCase(
            name: "from namespaceSelector {}: every pod, no outside host",
            policies: [p("x", "all-ns", #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{}}]}]}"#)]),
        PolicyCase(
            name: "from namespace y",
            policies: [p("x", "from-y", #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"y"}}}]}]}"#)]),
        PolicyCase(
            name: "namespaceSelector NotIn [x]",
            policies: [
                p(
                    "x", "not-x",
                    #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchExpressions":[{"key":"ns","operator":"NotIn","values":["x"]}]}}]}]}"#
                )
            ]),
        PolicyCase(
            name: "podSelector and namespaceSelector in one peer (AND)",
            policies: [
                p(
                    "x", "and",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"namespaceSelector":{"matchExpressions":[{"key":"ns","operator":"In","values":["y","z"]}]},"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#
                )
            ]),
        PolicyCase(
            name: "podSelector or namespaceSelector in two peers (OR)",
            policies: [
                p(
                    "x", "or",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"y"}}},{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#
                )
            ]),
        PolicyCase(
            name: "podSelector Exists / DoesNotExist",
            policies: [
                p(
                    "x", "exists",
                    #"{"podSelector":{"matchExpressions":[{"key":"pod","operator":"Exists"}]},"ingress":[{"from":[{"namespaceSelector":{},"podSelector":{"matchExpressions":[{"key":"pod","operator":"In","values":["a","c"]},{"key":"role","operator":"DoesNotExist"}]}}]}]}"#
                )
            ], podLabels: ["y/a": ["pod": "a", "role": "web"]]),
        PolicyCase(
            name: "ingress on TCP 81 only",
            policies: [p("x", "port-81", #"{"podSelector":{},"ingress":[{"ports":[{"port":81}]}]}"#)]),
        PolicyCase(
            name: "ingress on named port serve-80-tcp from namespace y",
            policies: [
                p(
                    "x", "named",
                    #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"y"}}}],"ports":[{"port":"serve-80-tcp","protocol":"TCP"}]}]}"#
                )
            ]),
        PolicyCase(
            name: "named port of another protocol matches nothing",
            policies: [p("x", "named-udp", #"{"podSelector":{},"ingress":[{"ports":[{"port":"serve-80-tcp","protocol":"UDP"}]}]}"#)]),
        PolicyCase(
            name: "ports TCP 80 and UDP 81",
            policies: [
                p("x", "two", #"{"podSelector":{},"ingress":[{"ports":[{"port":80,"protocol":"TCP"},{"port":81,"protocol":"UDP"}]}]}"#)
            ]),
        PolicyCase(
            name: "UDP, any port",
            policies: [p("x", "udp", #"{"podSelector":{},"ingress":[{"ports":[{"protocol":"UDP"}]}]}"#)]),
        PolicyCase(
            name: "endPort 80-81 TCP from z",
            policies: [
                p(
                    "x", "range",
                    #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"z"}}}],"ports":[{"port":80,"endPort":81}]}]}"#
                )
            ]),
        PolicyCase(
            name: "SCTP 80",
            policies: [p("x", "sctp", #"{"podSelector":{},"ingress":[{"ports":[{"port":80,"protocol":"SCTP"}]}]}"#)]),
        PolicyCase(
            name: "union of two policies",
            policies: [
                p("x", "from-b", #"{"podSelector":{},"ingress":[{"from":[{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#),
                p(
                    "x", "from-z-udp",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"z"}}}],"ports":[{"protocol":"UDP","port":80}]}]}"#
                ),
            ]),
        PolicyCase(
            name: "ingress from the outside host (ipBlock)",
            policies: [p("x", "outside", #"{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"192.168.100.0/24"}}]}]}"#)]),
        PolicyCase(
            name: "ipBlock with except: node1's pods minus y/a",
            policies: [
                p(
                    "x", "block",
                    #"{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.244.1.0/24","except":["10.244.1.13/32"]}}]}]}"#)
            ]),
        PolicyCase(
            name: "egress only to namespace x (policyTypes defaulted from egress rules)",
            policies: [p("x", "to-x", #"{"podSelector":{},"egress":[{"to":[{"namespaceSelector":{"matchLabels":{"ns":"x"}}}]}]}"#)]),
        PolicyCase(
            name: "policyTypes [Egress] without rules: deny egress, ingress open",
            policies: [p("x", "deny-egress", #"{"podSelector":{},"policyTypes":["Egress"]}"#)]),
        PolicyCase(
            name: "egress: [] without policyTypes is ingress only",
            policies: [p("x", "empty-egress", #"{"podSelector":{},"egress":[]}"#)]),
        PolicyCase(
            name: "egress to ipBlock with except, UDP 80",
            policies: [
                p(
                    "y", "block-out",
                    #"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.0.0/24"]}}],"ports":[{"protocol":"UDP","port":80}]}]}"#
                )
            ]),
        PolicyCase(
            name: "egress to the outside host only",
            policies: [
                p("z", "out", #"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"192.168.100.2/32"}}]}]}"#)
            ]),
        PolicyCase(
            name: "egress on named port serve-81-udp",
            policies: [
                p(
                    "y", "named-out",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"policyTypes":["Egress"],"egress":[{"ports":[{"port":"serve-81-udp","protocol":"UDP"}]}]}"#
                )
            ]),
        PolicyCase(
            name: "egress named port through an ipBlock",
            policies: [
                p(
                    "y", "named-block",
                    #"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"10.244.0.0/24"}}],"ports":[{"port":"serve-80-tcp"}]}]}"#
                )
            ]),
        PolicyCase(
            name: "ingress and egress together",
            policies: [
                p(
                    "x", "both",
                    #"{"podSelector":{"matchLabels":{"pod":"a"}},"policyTypes":["Ingress","Egress"],"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"y"}}}]}],"egress":[{"to":[{"podSelector":{"matchLabels":{"pod":"c"}}}]}]}"#
                )
            ]),
        PolicyCase(
            name: "relabelled namespace y as ns=x matches",
            policies: [p("x", "from-x", #"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"ns":"x"}}}]}]}"#)],
            namespaceLabels: ["y": ["ns": "x"]]),
        PolicyCase(
            name: "relabelled pod y/b (pod=c) is selected as a c",
            policies: [
                p(
                    "y", "to-c",
                    #"{"podSelector":{"matchLabels":{"pod":"c"}},"ingress":[{"from":[{"namespaceSelector":{}}],"ports":[{"port":80}]}]}"#)
            ],
            podLabels: ["y/b": ["pod": "c"]]),
    ]
}
