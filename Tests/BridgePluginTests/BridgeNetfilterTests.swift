#if canImport(Glibc)
import Glibc
#endif
import Testing
import Addresses
import JSON
import Netlink
@testable import BridgePlugin

/// The bridge's own bridge-netfilter switches through ADD, CHECK and STATUS (fakes).
@Suite struct BridgeNetfilterTests {
    func withPrevResult(_ h: VerbHarness, _ result: JSONValue?) -> String {
        h.config(extra: #""prevResult":\#(result?.serialized() ?? "null")"#)
    }

    /// A bridge made by someone else (an older plugin version, a hand-made one).
    func adopt(_ h: VerbHarness, netfilter: BridgeNetfilter?) {
        h.node.insert(Link(index: 40, name: "cni0", flags: 1, kind: "bridge", bridgeNetfilter: netfilter))
    }

    @Test func aNewBridgeIsCreatedWithBothSwitchesOnAndNoExtraRequest() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        #expect(h.node.named("cni0")?.bridgeNetfilter == .on)
        #expect(!h.node.journal.contains { $0.hasPrefix("setBridgeNetfilter") }, "set in the creating request")
    }

    @Test(arguments: [
        BridgeNetfilter(iptables: false, ip6tables: false), BridgeNetfilter(iptables: true, ip6tables: false),
        BridgeNetfilter(iptables: false, ip6tables: true),
    ])
    func anAdoptedBridgeWithASwitchOffIsTurnedOn(_ found: BridgeNetfilter) {
        let h = VerbHarness()
        adopt(h, netfilter: found)
        #expect(h.run("ADD").exitCode == 0)
        #expect(h.node.named("cni0")?.bridgeNetfilter == .on)
        #expect(h.node.journal.filter { $0.hasPrefix("setBridgeNetfilter") } == ["setBridgeNetfilter cni0"])
    }

    @Test func anAdoptedBridgeThatIsRightCostsNoRequest() {
        let h = VerbHarness()
        adopt(h, netfilter: .on)
        #expect(h.run("ADD").exitCode == 0)
        h.namespaces.pod("/run/netns/pod2")
        #expect(h.run("ADD", container: "ctr2", netns: "/run/netns/pod2").exitCode == 0)
        #expect(!h.node.journal.contains { $0.hasPrefix("setBridgeNetfilter") })
        #expect(!h.node.journal.contains { $0.hasPrefix("setLink") })
    }

    @Test func aKernelWithoutBridgeNetfilterIsNotAskedToSetIt() {
        let h = VerbHarness()
        adopt(h, netfilter: nil)
        #expect(h.run("ADD").exitCode == 0)
        #expect(!h.node.journal.contains { $0.hasPrefix("setBridgeNetfilter") })
    }

    @Test func aFailureToSetItFailsADDAndReleasesTheLease() {
        let h = VerbHarness()
        adopt(h, netfilter: BridgeNetfilter(iptables: false, ip6tables: false))
        h.node.failures["setBridgeNetfilter"] = EPERM
        let r = h.run("ADD")
        #expect(r.code == 102)
        #expect(h.leases.isEmpty)
        #expect(h.hostVeths.isEmpty)
    }

    @Test func checkFailsWhenASwitchWasTurnedOffAndPassesOnceADDTurnsItOn() {
        let h = VerbHarness()
        let add = h.run("ADD")
        #expect(h.run("CHECK", config: withPrevResult(h, add.json)).exitCode == 0)
        h.node.insert(
            Link(
                index: h.node.named("cni0")!.index, name: "cni0", flags: 1, kind: "bridge",
                bridgeNetfilter: BridgeNetfilter(iptables: true, ip6tables: false)))
        let r = h.run("CHECK", config: withPrevResult(h, add.json))
        #expect(r.code == 105)
        #expect(
            r.json?["msg"]?.stringValue == "bridge cni0 does not pass its traffic to netfilter (nf_call_iptables 1, nf_call_ip6tables 0)")
        h.namespaces.pod("/run/netns/pod2")
        #expect(h.run("ADD", container: "ctr2", netns: "/run/netns/pod2").exitCode == 0)
        #expect(h.run("CHECK", config: withPrevResult(h, add.json)).exitCode == 0)
    }

    @Test func statusIs50NamingBrNetfilterWhenTheKernelHasNone() {
        let h = VerbHarness()
        #expect(h.run("STATUS").exitCode == 0)
        h.node.bridgeNetfilterLoaded = false
        let r = h.run("STATUS")
        #expect(r.code == 50)
        #expect(r.json?["msg"]?.stringValue?.contains("br_netfilter is not loaded") == true)
        #expect(r.details.contains("modprobe br_netfilter"))
        #expect(r.details.contains("/etc/modules-load.d/"))
    }
}
