import Addresses
import NFTables
import Netlink
import XCTest

@testable import NodeAgent

/// Records what the agent asks of nftables; fails on demand.
final class FakeMasqueradeTable: MasqueradeTable {
    var current: [MasqueradeRule] = []
    var transactions = 0
    var failure: NetlinkError?

    func ensure(_ rules: [MasqueradeRule]) throws(NetlinkError) -> Bool {
        if let failure { throw failure }
        guard rules != current else { return false }
        current = rules
        transactions += 1
        return true
    }
}

final class NodeMasqueradeTests: XCTestCase {
    let cluster = IPNetwork(cidr: "10.244.0.0/16")!

    func testTheRuleExcludesTheClusterAndEveryNodeAddress() {
        let rules = NodeMasquerade.rules(
            clusterCIDRs: [cluster], nodeAddresses: [IPAddress("192.168.1.3")!, IPAddress("192.168.1.2")!, IPAddress("fd00::2")!])
        XCTAssertEqual(rules.count, 1, "an IPv4 cluster CIDR gets an IPv4 rule only")
        XCTAssertEqual(rules[0].sources, [cluster])
        XCTAssertEqual(rules[0].excluded.map(\.description), ["10.244.0.0/16", "192.168.1.2/32", "192.168.1.3/32"])
        XCTAssertEqual(
            rules[0].nftSyntax(source: cluster),
            "ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 192.168.1.2/32, 192.168.1.3/32 } masquerade comment \"\(rules[0].comment)\""
        )
    }

    func testDualStackGetsOneRulePerFamily() {
        let v6 = IPNetwork(cidr: "fd00:10:244::/56")!
        let rules = NodeMasquerade.rules(clusterCIDRs: [cluster, v6], nodeAddresses: [IPAddress("192.168.1.2")!, IPAddress("fd00::2")!])
        XCTAssertEqual(rules.map(\.familyKeyword), ["ip", "ip6"])
        XCTAssertEqual(rules[1].excluded.map(\.description), ["fd00:10:244::/56", "fd00::2/128"])
    }

    func testTheRuleChangesOnlyWithTheNodeAddresses() {
        let table = FakeMasqueradeTable()
        let masquerade = NodeMasquerade(clusterCIDRs: [cluster], table: table)
        let a = IPAddress("192.168.1.2")!
        let b = IPAddress("192.168.1.3")!
        XCTAssertTrue(masquerade.reconcile(nodeAddresses: [a, b]))
        XCTAssertTrue(masquerade.reconcile(nodeAddresses: [b, a, a]), "order and duplicates do not matter")
        XCTAssertEqual(table.transactions, 1)
        XCTAssertTrue(masquerade.reconcile(nodeAddresses: [a]))
        XCTAssertEqual(table.transactions, 2, "a node that left is no longer excluded")
        XCTAssertEqual(table.current[0].excluded.count, 2)
    }

    func testAFailureIsReportedAndRetried() {
        let table = FakeMasqueradeTable()
        let masquerade = NodeMasquerade(clusterCIDRs: [cluster], table: table)
        table.failure = NetlinkError("list nftables rules", errno: EPERM)
        XCTAssertFalse(masquerade.reconcile(nodeAddresses: []))
        table.failure = nil
        XCTAssertTrue(masquerade.reconcile(nodeAddresses: []))
        XCTAssertEqual(table.transactions, 1)
    }

    func testTheClusterCIDRComesFromTheConflist() throws {
        let conflist = """
            {"cniVersion":"1.0.0","name":"k","plugins":[{"type":"bridge-ipam","ipam":{"type":"host-local","clusterCIDR":"10.244.0.0/16"}},
            {"type":"portmap"}]}
            """
        XCTAssertEqual(try NodeMasquerade.clusterCIDRs(conflist: Array(conflist.utf8), path: "c"), [cluster])
        let single = #"{"type":"bridge-ipam","ipam":{"clusterCIDR":"fd00:10:244::/56"}}"#
        XCTAssertEqual(try NodeMasquerade.clusterCIDRs(conflist: Array(single.utf8), path: "c"), [IPNetwork(cidr: "fd00:10:244::/56")!])
        for bad in [#"{"plugins":[{"ipam":{}}]}"#, #"{"ipam":{"clusterCIDR":"10.244.0.1/16"}}"#, "not json"] {
            XCTAssertThrowsError(try NodeMasquerade.clusterCIDRs(conflist: Array(bad.utf8), path: "c"), bad)
        }
    }

    func testTheFlagIsParsed() throws {
        let options = try AgentOptions.parse(["--masquerade"], environment: ["NODE_NAME": "n"])
        XCTAssertTrue(options.masquerade)
        XCTAssertFalse(try AgentOptions.parse([], environment: ["NODE_NAME": "n"]).masquerade)
    }
}
