#if canImport(Glibc)
import Glibc
#endif
import Testing
import Addresses
import CNI
import JSON
import Netlink
@testable import BridgePlugin

/// DEL's idempotence, and the lease lock's scope across verbs of one process.
@Suite struct DeleteTests {
    @Test func delRemovesThePodInterfaceWithItsVethAndTheLease() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        let r = h.run("DEL")
        #expect(r.exitCode == 0, "\(h.result(of: r))")
        #expect(h.leases.isEmpty)
        #expect(!h.pod.linkNames.contains("eth0"))
        #expect(h.hostVeths.isEmpty, "the host end went with the pod end")
        #expect(h.lockIsFree)
    }

    @Test func delOfAnAttachmentThatNeverExistedSucceeds() {
        let h = VerbHarness()
        #expect(h.run("DEL").exitCode == 0)
        #expect(h.leases.isEmpty)
    }

    @Test func delTwiceSucceedsTwice() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        #expect(h.run("DEL").exitCode == 0)
        #expect(h.run("DEL").exitCode == 0)
        #expect(h.leases.isEmpty)
    }

    @Test func delAfterTheNamespaceIsGoneReleasesTheLease() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        h.namespaces.removePod(VerbHarness.podPath)
        let r = h.run("DEL")
        #expect(r.exitCode == 0, "\(h.result(of: r))")
        #expect(h.leases.isEmpty)
    }

    @Test func delWithAnEmptyNetnsReleasesTheLeaseAndTouchesNoNamespace() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        let journal = h.pod.journal.count
        #expect(h.run("DEL", netns: "").exitCode == 0)
        #expect(h.leases.isEmpty)
        #expect(h.pod.journal.count == journal)
    }

    @Test func delWhenThePodInterfaceIsAlreadyGoneSucceeds() throws {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        try h.pod.deleteLink(named: "eth0")
        #expect(h.run("DEL").exitCode == 0)
        #expect(h.leases.isEmpty)
    }

    @Test func delNeverDeletesAnInterfaceOfTheNode() {
        let h = VerbHarness()
        h.node.insert(Link(index: 3, name: "eth0", flags: 1))
        h.namespaces.nodePaths = ["/proc/1/ns/net"]
        #expect(h.run("DEL", netns: "/proc/1/ns/net").exitCode == 0)
        #expect(h.node.named("eth0") != nil)
        #expect(!h.node.journal.contains { $0.hasPrefix("deleteLink") })
    }

    @Test func aNetlinkFailureDeletingThePodInterfaceIs102AfterTheLeaseIsReleased() {
        let h = VerbHarness()
        #expect(h.run("ADD").exitCode == 0)
        h.pod.failures["deleteLink"] = EPERM
        let r = h.run("DEL")
        #expect(r.code == 102)
        #expect(h.leases.isEmpty, "the lease goes first: it must go even when the namespace is unusable")
        #expect(h.lockIsFree)
    }

    /// ADD, a failing ADD, DEL, DEL: each takes the lock and gives it back, in one process. A
    /// lock kept past its verb would hang the next one (the alarm fails the run then).
    @Test func theLeaseLockIsHeldByNoVerbAfterItReturnsOrThrows() {
        let h = VerbHarness()
        withAlarm {
            #expect(h.run("ADD", container: "ctr1").exitCode == 0)
            #expect(h.lockIsFree)
            h.namespaces.pod("/run/netns/pod2").failures["configure"] = EPERM
            #expect(h.run("ADD", container: "ctr2", netns: "/run/netns/pod2").code == 102)
            #expect(h.lockIsFree)
            #expect(h.leases == ["10.244.1.2"])
            #expect(h.run("ADD", container: "ctr3", netns: "/run/netns/pod2", config: h.config(subnet: "10.244.1.0/30")).code == 100)
            #expect(h.lockIsFree)
            #expect(h.run("DEL", container: "ctr1").exitCode == 0)
            #expect(h.lockIsFree)
            #expect(h.run("DEL", container: "ctr2", netns: "/run/netns/pod2").exitCode == 0)
            #expect(h.lockIsFree)
            #expect(h.leases.isEmpty)
        }
    }
}

/// CHECK, GC and STATUS through the same fakes.
@Suite struct CheckGCStatusTests {
    func withPrevResult(_ h: VerbHarness, _ result: JSONValue?, extra: String = "") -> String {
        h.config(extra: #""prevResult":\#(result?.serialized() ?? "null")"# + (extra.isEmpty ? "" : "," + extra))
    }

    @Test func checkPassesOnWhatADDMadeAndNamesAMissingAddress() {
        let h = VerbHarness()
        let add = h.run("ADD")
        #expect(h.run("CHECK", config: withPrevResult(h, add.json)).exitCode == 0)
        h.pod.removeAddresses(of: "eth0")
        let r = h.run("CHECK", config: withPrevResult(h, add.json))
        #expect(r.code == 105)
        #expect(r.json?["msg"]?.stringValue == "address 10.244.1.2/24 missing on eth0")
    }

    @Test(arguments: [
        (#""hairpinMode":true"#, "hairpin mode of bridge port", BridgePortSettings(hairpin: false)),
        (#""portIsolation":true"#, "is not isolated, the config says portIsolation true", BridgePortSettings(isolated: false)),
        ("", "hairpin mode of bridge port", BridgePortSettings(hairpin: true)),
        ("", "is isolated, the config says portIsolation false", BridgePortSettings(isolated: true)),
    ])
    func checkFindsABridgePortFlagUndoneByHand(extra: String, message: String, undo: BridgePortSettings) {
        let h = VerbHarness()
        let add = h.run("ADD", config: h.config(extra: extra))
        #expect(add.exitCode == 0, "\(h.result(of: add))")
        let check = withPrevResult(h, add.json, extra: extra)
        #expect(h.run("CHECK", config: check).exitCode == 0)
        h.node.setBridgePort(h.hostVeths[0], undo)
        let r = h.run("CHECK", config: check)
        #expect(r.code == 105)
        #expect(r.json?["msg"]?.stringValue?.contains(message) == true, "\(h.result(of: r))")
    }

    @Test func checkFindsThePodInterfaceUpUnderDisableContainerInterface() {
        let h = VerbHarness()
        let config = h.config(extra: #""disableContainerInterface":true"#, ipam: "{}")
        let add = h.run("ADD", config: config)
        #expect(h.pod.named("eth0")?.isUp == false, "\(h.result(of: add))")
        var object = (try? JSONValue.parse(Array(config.utf8)))?.objectValue ?? [:]
        object["prevResult"] = add.json
        let check = JSONValue.object(object).serialized()
        #expect(h.run("CHECK", config: check).exitCode == 0)
        h.pod.setUp("eth0", true)
        let r = h.run("CHECK", config: check)
        #expect(r.code == 105)
        #expect(r.json?["msg"]?.stringValue == "interface eth0 is up, but the config says disableContainerInterface")
    }

    @Test func checkOfAMissingNamespaceIs106() {
        let h = VerbHarness()
        let add = h.run("ADD")
        h.namespaces.removePod(VerbHarness.podPath)
        #expect(h.run("CHECK", config: withPrevResult(h, add.json)).code == 106)
    }

    @Test func gcDeletesTheVethsAndLeasesOfUnlistedAttachmentsOnly() {
        let h = VerbHarness()
        #expect(h.run("ADD", container: "keep").exitCode == 0)
        h.namespaces.pod("/run/netns/pod2")
        #expect(h.run("ADD", container: "drop", netns: "/run/netns/pod2").exitCode == 0)
        #expect(h.hostVeths.count == 2)
        let gc = h.config(extra: #""cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]"#)
        let r = h.run("GC", config: gc)
        #expect(r.exitCode == 0, "\(h.result(of: r))")
        #expect(h.leases == ["10.244.1.2"])
        #expect(h.hostVeths.count == 1)
        #expect(h.node.named(h.hostVeths[0])?.alias == "bridge-ipam podnet keep eth0")
    }

    @Test func gcReportsTheVethsItCouldNotDeleteAndStillReleasesTheLeases() {
        let h = VerbHarness()
        #expect(h.run("ADD", container: "drop").exitCode == 0)
        h.node.failures["deleteLink"] = EBUSY
        let r = h.run("GC", config: h.config(extra: #""cni.dev/valid-attachments":[]"#))
        #expect(r.code == 5)
        #expect(r.details.contains("Device or resource busy"), "\(r.details)")
        #expect(h.leases.isEmpty)
        #expect(h.lockIsFree)
    }

    @Test func statusIs50WhileTheSubnetFileIsMissingOrEmptyAnd7WhenMalformed() {
        let h = VerbHarness()
        let path = h.scratch.file("podcidr")
        let config = h.config(ipam: #"{"type":"host-local","subnetFile":"\#(path)","dataDir":"\#(h.scratch.path)"}"#)
        let missing = h.run("STATUS", config: config)
        #expect(missing.code == 50, "\(h.result(of: missing))")
        #expect(missing.json?["msg"]?.stringValue == "the node's subnet file \(path) does not exist")
        for empty in ["", " \n\n"] {
            h.scratch.write("podcidr", empty)
            let r = h.run("STATUS", config: config)
            #expect(
                r.code == 50 && r.json?["msg"]?.stringValue?.hasSuffix("is empty") == true, "\(empty.debugDescription): \(h.result(of: r))")
        }
        h.scratch.write("podcidr", "10.244.1.0/33\n")
        #expect(h.run("STATUS", config: config).code == 7, "a malformed file is a config error")
        h.scratch.write("podcidr", "10.244.1.0/24\n")
        #expect(h.run("STATUS", config: config).exitCode == 0)
    }

    @Test func statusIs50WhenTheBridgeNameIsTakenByAnotherDevice() {
        let h = VerbHarness()
        #expect(h.run("STATUS").exitCode == 0)
        h.node.insert(Link(index: 4, name: "cni0", kind: "vxlan"))
        #expect(h.run("STATUS").code == 50)
        #expect(h.lockIsFree)
    }
}
