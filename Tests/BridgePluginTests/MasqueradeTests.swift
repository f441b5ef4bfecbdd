#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNI
@testable import BridgePlugin

/// ipMasq's rules through the verbs: made under the lease lock with the first lease, kept while a
/// lease remains, removed with the last one, also by a failed ADD's rollback.
@Suite struct MasqueradeTests {
    let extra = #""ipMasq":true"#

    @Test func theRuleComesWithTheFirstLeaseAndGoesWithTheLast() {
        let h = VerbHarness()
        let config = h.config(extra: extra)
        #expect(h.run("ADD", container: "ctr1", config: config).exitCode == 0)
        #expect(h.namespaces.filter.masquerade["podnet"]?.map(\.sources.description) == ["[10.244.1.0/24]"])
        h.namespaces.pod("/run/netns/pod2")
        #expect(h.run("ADD", container: "ctr2", netns: "/run/netns/pod2", config: config).exitCode == 0)
        #expect(h.run("DEL", container: "ctr1", config: config).exitCode == 0)
        #expect(h.namespaces.filter.masquerade["podnet"] != nil, "a lease remains")
        #expect(h.run("DEL", container: "ctr2", netns: "/run/netns/pod2", config: config).exitCode == 0)
        #expect(h.namespaces.filter.masquerade["podnet"] == nil)
        #expect(h.lockIsFree)
    }

    @Test func aRuleThatCannotBeMadeFailsADDBeforeAnyLinkAndLeavesNoLease() {
        let h = VerbHarness()
        h.namespaces.filter.failures["ensureMasquerade"] = EPERM
        let r = h.run("ADD", config: h.config(extra: extra))
        #expect(r.code == 102)
        #expect(r.json?["msg"]?.stringValue == "nftables: ensureMasquerade failed")
        #expect(h.leases.isEmpty)
        #expect(h.hostVeths.isEmpty)
        #expect(h.lockIsFree)
    }

    @Test func aFailedADDTakesTheRuleAlongWithTheNetworksOnlyLease() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        #expect(h.run("ADD", config: h.config(extra: extra)).code == 102)
        #expect(h.leases.isEmpty)
        #expect(h.namespaces.filter.masquerade["podnet"] == nil)
    }

    @Test func aRuleTheRollbackCouldNotRemoveIsNamedInTheDetails() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        h.namespaces.filter.failures["removeMasquerade"] = EBUSY
        let r = h.run("ADD", config: h.config(extra: extra))
        #expect(r.code == 102)
        #expect(r.details.contains("rollback left behind: lease: removeMasquerade: Device or resource busy"), "\(r.details)")
        #expect(h.lockIsFree)
    }

    @Test func checkFailsWhenTheRuleIsMissing() throws {
        let h = VerbHarness()
        let add = h.run("ADD", config: h.config(extra: extra))
        let check = h.config(extra: extra + #","prevResult":\#(add.json?.serialized() ?? "null")"#)
        #expect(h.run("CHECK", config: check).exitCode == 0)
        try h.namespaces.filter.removeMasquerade(network: "podnet")
        let r = h.run("CHECK", config: check)
        #expect(r.code == 105)
        #expect(r.json?["msg"]?.stringValue?.contains("ipMasq rule of network podnet is missing") == true)
    }
}
