import Testing
import Addresses
@testable import NFTables

func net(_ s: String) -> IPNetwork { IPNetwork(cidr: s)! }

@Suite struct MasqueradeRuleTests {
    @Test func theCommentTagsTheNetworkAndChangesWithTheContent() {
        let a = MasqueradeRule(network: "podnet", sources: [net("10.244.1.0/24")], excluded: [net("10.244.0.0/16")])
        let b = MasqueradeRule(network: "podnet", sources: [net("10.244.1.0/24")], excluded: [net("10.244.0.0/16"), net("192.168.1.0/24")])
        #expect(a.comment.hasPrefix("bridge-ipam podnet "))
        #expect(a.comment != b.comment)
        #expect(a.comment == MasqueradeRule(network: "podnet", sources: [net("10.244.1.5/24")], excluded: [net("10.244.0.0/16"), net("10.244.0.0/16")]).comment)
        #expect(a.comment.utf8.count <= 128)
    }

    @Test func exclusionsAreIPv4Deduplicated() {
        let rule = MasqueradeRule(network: "n", sources: [net("10.244.1.0/24")], excluded: [net("10.244.1.0/24"), net("fd00::/64"), net("10.244.1.0/24")])
        #expect(rule.excluded == [net("10.244.1.0/24")])
        #expect(rule.nftSyntax(source: net("10.244.1.0/24")).hasPrefix("ip saddr 10.244.1.0/24 ip daddr != 10.244.1.0/24 masquerade"))
    }

    @Test func userDataCommentIsRead() {
        let bytes: [UInt8] = [0, 4] + Array("abc".utf8) + [0]
        #expect(NFTables.comment(inUserData: bytes) == "abc")
        #expect(NFTables.comment(inUserData: [1, 2, 9, 9]) == nil)
    }
}
