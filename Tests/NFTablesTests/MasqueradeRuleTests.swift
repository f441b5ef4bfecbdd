import Testing
import Addresses
@testable import NFTables

func net(_ s: String) -> IPNetwork { IPNetwork(cidr: s)! }
func ip(_ s: String) -> IPAddress { IPAddress(s)! }

@Suite struct MasqueradeRuleTests {
    @Test func theCommentTagsTheNetworkAndChangesWithTheContent() {
        let a = MasqueradeRule(network: "podnet", family: .v4, sources: [net("10.244.1.0/24")], excluded: [net("10.244.0.0/16")])
        let b = MasqueradeRule(
            network: "podnet", family: .v4, sources: [net("10.244.1.0/24")], excluded: [net("10.244.0.0/16"), net("192.168.1.0/24")])
        #expect(a.comment.hasPrefix("bridge-ipam podnet "))
        #expect(a.comment != b.comment)
        #expect(
            a.comment
                == MasqueradeRule(
                    network: "podnet", family: .v4, sources: [net("10.244.1.5/24")], excluded: [net("10.244.0.0/16"), net("10.244.0.0/16")]
                ).comment)
        #expect(a.comment.utf8.count <= 128)
    }

    @Test func oneRulePerFamilyWithItsOwnExclusions() {
        let rules = MasqueradeRule.rules(
            network: "n", sources: [net("10.244.1.0/24"), net("fd00:1::/64")],
            excluded: [net("10.244.1.0/24"), net("fd00:1::/64"), net("10.244.1.0/24"), net("fd00::/48")])
        #expect(rules.map(\.family) == [.v4, .v6])
        #expect(rules[0].excluded == [net("10.244.1.0/24")])
        #expect(rules[1].excluded == [net("fd00:1::/64"), net("fd00::/48")])
        #expect(rules[0].comment != rules[1].comment)
        #expect(
            rules[0].nftSyntax(source: net("10.244.1.0/24")).hasPrefix("ip saddr 10.244.1.0/24 ip daddr != { 10.244.1.0/24 } masquerade"))
        #expect(
            rules[1].nftSyntax(source: net("fd00:1::/64")).hasPrefix(
                "ip6 saddr fd00:1::/64 ip6 daddr != { fd00:1::/64, fd00::/48 } masquerade"))
        #expect(MasqueradeRule.rules(network: "n", sources: [net("10.0.0.0/8")], excluded: []).count == 1, "no IPv6 subnet: no IPv6 rule")
    }

    @Test func exclusionsBecomeMergedIntervals() {
        let rule = MasqueradeRule(
            network: "n", family: .v4, sources: [net("10.244.1.0/24")],
            excluded: [net("192.168.1.0/24"), net("10.244.1.0/24"), net("10.244.0.0/16"), net("192.168.0.0/24"), net("240.0.0.0/4")])
        let intervals = rule.excludedIntervals.map { "\($0.start)-\($0.end.map(\.description) ?? "end")" }
        // The pod subnet inside the cluster CIDR, two adjacent /24s, and a range up to the last address.
        #expect(intervals == ["10.244.0.0-10.245.0.0", "192.168.0.0-192.168.2.0", "240.0.0.0-end"])
        let v6 = MasqueradeRule(network: "n", family: .v6, sources: [net("fd00:1::/64")], excluded: [net("fd00:1::/64"), net("fd00::/16")])
        #expect(v6.excludedIntervals.map { "\($0.start)-\($0.end!)" } == ["fd00::-fd01::"])
    }

    @Test func theRuleDoesNotGrowWithTheExclusions() {
        // The set holds the exclusions; the rule text shown in messages is the only thing that grows.
        let many = (0..<256).map { net("172.16.\($0).0/24") }
        let rule = MasqueradeRule(network: "n", family: .v4, sources: [net("10.244.1.0/24")], excluded: many)
        #expect(rule.excluded.count == 256)
        #expect(rule.excludedIntervals.count == 1, "256 adjacent /24s merge into one interval")
        #expect(rule.comment.utf8.count <= 128)
    }

    @Test func userDataCommentIsRead() {
        let bytes: [UInt8] = [0, 4] + Array("abc".utf8) + [0]
        #expect(OwnChain.comment(inUserData: bytes) == "abc")
        #expect(OwnChain.comment(inUserData: [1, 2, 9, 9]) == nil)
    }
}
