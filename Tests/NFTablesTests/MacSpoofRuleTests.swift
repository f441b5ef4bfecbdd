import Testing
import Addresses
import Netlink
@testable import NFTables

@Suite struct MacSpoofRuleTests {
    let mac = MACAddress("02:00:00:00:00:01")!

    @Test func theTagNamesTheNetworkAndTheAttachment() {
        let a = MacSpoofRule(network: "podnet", containerID: "c1", ifname: "eth0", hostInterface: "veth01234567", mac: mac)
        #expect(a.comment.hasPrefix(MacSpoofRule.tagPrefix(network: "podnet")))
        #expect(a.comment == MacSpoofRule.tag(network: "podnet", containerID: "c1", ifname: "eth0"))
        #expect(a.comment != MacSpoofRule.tag(network: "podnet", containerID: "c1", ifname: "eth1"))
        #expect(a.comment != MacSpoofRule.tag(network: "podnet", containerID: "c2", ifname: "eth0"))
        // The separator keeps ("ab","c") and ("a","bc") apart.
        #expect(
            MacSpoofRule.tag(network: "n", containerID: "ab", ifname: "c") != MacSpoofRule.tag(network: "n", containerID: "a", ifname: "bc")
        )
    }

    @Test func theLongestTagFitsNFTablesCommentLimit() {
        let name = String(repeating: "n", count: 94)
        #expect(MacSpoofRule.tag(network: name, containerID: String(repeating: "c", count: 200), ifname: "eth0").utf8.count <= 127)
    }

    @Test func nftSyntaxShowsTheRule() {
        let rule = MacSpoofRule(network: "n", containerID: "c", ifname: "eth0", hostInterface: "veth01234567", mac: mac)
        #expect(rule.nftSyntax.hasPrefix("iifname \"veth01234567\" ether saddr != 02:00:00:00:00:01 drop comment \"bridge-ipam-mac n "))
    }
}
