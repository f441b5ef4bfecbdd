#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNI
import NFTables
@testable import BridgePlugin

/// macspoofchk's rule through the verbs: made by ADD, undone by a failed ADD, removed by DEL and GC.
@Suite struct MacSpoofCheckTests {
    let extra = #""macspoofchk":true"#

    func tag(_ container: String) -> String { MacSpoofRule.tag(network: "podnet", containerID: container, ifname: "eth0") }

    @Test func addMakesTheAttachmentsRuleAndDelRemovesIt() {
        let h = VerbHarness()
        let config = h.config(extra: extra)
        #expect(h.run("ADD", config: config).exitCode == 0)
        let rule = h.namespaces.filter.spoofRules[tag("ctr1")]
        #expect(rule?.hostInterface == h.hostVeths.first)
        #expect(rule?.mac.description == h.pod.named("eth0")?.mac?.description)
        #expect(h.run("DEL", config: config).exitCode == 0)
        #expect(h.namespaces.filter.spoofRules.isEmpty)
    }

    @Test func aFailedADDRemovesTheRuleItMade() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        #expect(h.run("ADD", config: h.config(extra: extra)).code == 102)
        #expect(h.namespaces.filter.journal.contains("addSpoofRule"))
        #expect(h.namespaces.filter.spoofRules.isEmpty)
        #expect(h.hostVeths.isEmpty)
        #expect(h.leases.isEmpty)
    }

    @Test func aRuleTheRollbackCouldNotRemoveIsNamedInTheDetails() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        h.namespaces.filter.failures["removeSpoofRules"] = ENOBUFS
        let r = h.run("ADD", config: h.config(extra: extra))
        #expect(r.code == 102)
        #expect(r.details.contains("rollback left behind: macspoofchk rule: removeSpoofRules: No buffer space available"), "\(r.details)")
        #expect(h.hostVeths.isEmpty, "the rest was still undone")
        #expect(h.leases.isEmpty)
    }

    @Test func aRuleThatCannotBeAddedFailsADDWith102AndRollsBack() {
        let h = VerbHarness()
        h.namespaces.filter.failures["addSpoofRule"] = EPERM
        let r = h.run("ADD", config: h.config(extra: extra))
        #expect(r.code == 102)
        #expect(r.json?["msg"]?.stringValue == "nftables: addSpoofRule failed")
        #expect(h.hostVeths.isEmpty)
        #expect(h.leases.isEmpty)
    }

    @Test func checkFailsWhenTheRuleIsMissing() {
        let h = VerbHarness()
        let add = h.run("ADD", config: h.config(extra: extra))
        let check = h.config(extra: extra + #","prevResult":\#(add.json?.serialized() ?? "null")"#)
        #expect(h.run("CHECK", config: check).exitCode == 0)
        try? h.namespaces.filter.removeSpoofRules { _ in true }
        let r = h.run("CHECK", config: check)
        #expect(r.code == 105)
        #expect(r.json?["msg"]?.stringValue?.contains("macspoofchk rule of eth0 is missing") == true)
    }

    @Test func gcRemovesOnlyTheRulesOfUnlistedAttachments() {
        let h = VerbHarness()
        #expect(h.run("ADD", container: "keep", config: h.config(extra: extra)).exitCode == 0)
        h.namespaces.pod("/run/netns/pod2")
        #expect(h.run("ADD", container: "drop", netns: "/run/netns/pod2", config: h.config(extra: extra)).exitCode == 0)
        let gc = h.config(extra: extra + #","cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]"#)
        #expect(h.run("GC", config: gc).exitCode == 0)
        #expect(Array(h.namespaces.filter.spoofRules.keys) == [tag("keep")])
    }
}
