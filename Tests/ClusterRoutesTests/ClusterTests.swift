import Testing
import Addresses
@testable import ClusterRoutes

let simple = #"""
    {"nodes":[{"name":"node-0","ip":"192.168.1.2","podCIDR":"10.244.0.0/24"},
              {"name":"node-1","ip":"192.168.1.3","podCIDR":"10.244.1.0/24"},
              {"name":"node-2","ip":"192.168.1.4","podCIDR":"10.244.2.0/24"}]}
    """#

let nodeList = #"""
    {"apiVersion":"v1","kind":"NodeList","items":[
     {"metadata":{"name":"a"},"spec":{"podCIDR":"10.244.0.0/24","podCIDRs":["10.244.0.0/24","fd00:10:244::/64"]},
      "status":{"addresses":[{"type":"Hostname","address":"a"},{"type":"InternalIP","address":"192.168.1.2"},{"type":"InternalIP","address":"fd00::2"}]}},
     {"metadata":{"name":"b"},"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24","fd00:10:244:1::/64"]},
      "status":{"addresses":[{"type":"InternalIP","address":"192.168.1.3"},{"type":"InternalIP","address":"fd00::3"}]}}]}
    """#

func ip(_ s: String) -> IPAddress { IPAddress(s)! }
func net(_ s: String) -> IPNetwork { IPNetwork(cidr: s)! }

@Suite struct ClusterParsingTests {
    @Test func readsTheSimpleFormat() throws {
        let cluster = try Cluster.parse(simple)
        #expect(cluster.nodes.map(\.name) == ["node-0", "node-1", "node-2"])
        #expect(cluster.nodes[1] == ClusterNode(name: "node-1", addresses: [ip("192.168.1.3")], podCIDRs: [net("10.244.1.0/24")]))
    }

    @Test func readsAKubernetesNodeListWithDualStack() throws {
        let cluster = try Cluster.parse(nodeList)
        #expect(cluster.nodes[0].addresses == [ip("192.168.1.2"), ip("fd00::2")])
        #expect(cluster.nodes[0].podCIDRs == [net("10.244.0.0/24"), net("fd00:10:244::/64")])
    }

    @Test func refusesOverlappingPodCIDRsNamingBothNodes() {
        let text = simple.replacingOccurrences("10.244.2.0/24", "10.244.1.0/25")
        #expect(throws: Cluster.Error.overlapping(node: "node-1", net("10.244.1.0/24"), other: "node-2", net("10.244.1.0/25"))) {
            try Cluster.parse(text)
        }
    }

    @Test func aNodeWithoutPodCIDROrAddressIsNamed() {
        #expect(throws: Cluster.Error.missingPodCIDR(node: "x")) { try Cluster.parse(#"{"nodes":[{"name":"x","ip":"192.168.1.2"}]}"#) }
        #expect(throws: Cluster.Error.missingAddress(node: "x", family: "IPv4")) {
            try Cluster.parse(#"{"nodes":[{"name":"x","podCIDR":"10.244.0.0/24"}]}"#)
        }
        #expect(throws: Cluster.Error.invalidValue(node: "x", field: "podCIDR", value: "10.244.0.1/24")) {
            try Cluster.parse(#"{"nodes":[{"name":"x","ip":"192.168.1.2","podCIDR":"10.244.0.1/24"}]}"#)
        }
    }

    @Test func malformedFilesAreRejected() {
        #expect(throws: Cluster.Error.self) { try Cluster.parse("{") }
        #expect(throws: Cluster.Error.unknownFormat) { try Cluster.parse(#"{"something":1}"#) }
        #expect(throws: Cluster.Error.duplicateNode("a")) {
            try Cluster.parse(
                #"{"nodes":[{"name":"a","ip":"1.1.1.1","podCIDR":"10.0.0.0/24"},{"name":"a","ip":"1.1.1.2","podCIDR":"10.0.1.0/24"}]}"#)
        }
    }
}

@Suite struct RoutePlanTests {
    @Test func routesEveryOtherNodeAndSkipsThisOne() throws {
        let routes = try RoutePlan.desiredRoutes(
            cluster: Cluster.parse(simple), selfName: nil, localAddresses: [ip("192.168.1.3"), ip("10.244.1.1")])
        #expect(
            routes == [
                NodeRoute(destination: net("10.244.0.0/24"), gateway: ip("192.168.1.2"), node: "node-0"),
                NodeRoute(destination: net("10.244.2.0/24"), gateway: ip("192.168.1.4"), node: "node-2"),
            ])
    }

    @Test func dualStackRoutesUseTheAddressOfTheSameFamily() throws {
        let routes = try RoutePlan.desiredRoutes(cluster: Cluster.parse(nodeList), selfName: "a", localAddresses: [])
        #expect(routes.map(\.description) == ["10.244.1.0/24 via 192.168.1.3 (b)", "fd00:10:244:1::/64 via fd00::3 (b)"])
    }

    @Test func anUnknownSelfIsAnError() throws {
        #expect(throws: RoutePlan.Error.self) {
            try RoutePlan.desiredRoutes(cluster: Cluster.parse(simple), selfName: nil, localAddresses: [ip("10.0.0.1")])
        }
        #expect(throws: RoutePlan.Error.self) {
            try RoutePlan.desiredRoutes(cluster: Cluster.parse(simple), selfName: "nope", localAddresses: [])
        }
    }

    @Test func planAddsReplacesRemovesAndKeeps() {
        let desired = [
            NodeRoute(destination: net("10.244.0.0/24"), gateway: ip("192.168.1.2"), node: "a"),
            NodeRoute(destination: net("10.244.1.0/24"), gateway: ip("192.168.1.9"), node: "b"),
            NodeRoute(destination: net("10.244.2.0/24"), gateway: ip("192.168.1.4"), node: "c"),
        ]
        let current: [(destination: IPNetwork, gateway: IPAddress?)] = [
            (net("10.244.0.0/24"), ip("192.168.1.2")), (net("10.244.1.0/24"), ip("192.168.1.3")), (net("10.244.7.0/24"), ip("192.168.1.8")),
        ]
        let plan = RoutePlan(desired: desired, current: current)
        #expect(plan.keep.map(\.node) == ["a"])
        #expect(plan.replace.map(\.node) == ["b"])
        #expect(plan.add.map(\.node) == ["c"])
        #expect(plan.remove.map(\.destination) == [net("10.244.7.0/24")])
    }

    @Test func aSecondSyncChangesNothing() {
        let desired = [NodeRoute(destination: net("10.244.0.0/24"), gateway: ip("192.168.1.2"), node: "a")]
        #expect(RoutePlan(desired: desired, current: [(net("10.244.0.0/24"), ip("192.168.1.2"))]).isEmpty)
    }
}

extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
