#if canImport(Glibc)
import Glibc
#endif
import Testing
import Addresses
import CNI
import JSON
import Netlink
@testable import BridgePlugin

/// ADD against fake namespaces and a real lease store: the result, rollback and error codes.
@Suite struct AddTests {
    @Test func addCreatesTheBridgeTheVethPairAndALeaseAndPrintsTheResult() throws {
        let h = VerbHarness()
        let r = h.run("ADD")
        #expect(r.exitCode == 0, "\(h.result(of: r))")
        let interfaces = r.json?["interfaces"]?.arrayValue ?? []
        #expect(interfaces.compactMap { $0["name"]?.stringValue } == ["cni0", h.hostVeths.first ?? "?", "eth0"])
        #expect(interfaces.last?["sandbox"]?.stringValue == VerbHarness.podPath)
        #expect(r.json?["ips"]?.arrayValue?.first?["address"]?.stringValue == "10.244.1.2/24")
        #expect(r.json?["ips"]?.arrayValue?.first?["gateway"]?.stringValue == "10.244.1.1")
        #expect(h.leases == ["10.244.1.2"])

        let bridge = try #require(h.node.named("cni0"))
        #expect(bridge.kind == "bridge" && bridge.isUp)
        #expect(h.node.addresses(of: "cni0") == [IPNetwork(cidr: "10.244.1.1/24")!])
        #expect(h.node.sysctls["net.ipv4.ip_forward"] == "1")
        let veth = try #require(h.node.named(h.hostVeths.first ?? ""))
        #expect(veth.master == bridge.index)
        #expect(veth.alias == "bridge-ipam podnet ctr1 eth0")
        let eth0 = try #require(h.pod.named("eth0"))
        #expect(eth0.isUp)
        #expect(h.pod.addresses(of: "eth0") == [IPNetwork(cidr: "10.244.1.2/24")!])
        #expect(try h.pod.routes(family: .v4).map(\.destination.description) == ["0.0.0.0/0"])
        #expect(h.lockIsFree)
    }

    @Test func aFailureConfiguringThePodRemovesTheVethAndReleasesTheLease() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        let r = h.run("ADD")
        #expect(r.exitCode == 1)
        #expect(r.code == 102)
        #expect(r.json?["msg"]?.stringValue?.contains("configure eth0") == true, "the failing operation is named")
        #expect(r.details.contains("Operation not permitted"))
        #expect(!r.details.contains("rollback"), "nothing was left behind")
        #expect(h.hostVeths.isEmpty, "the veth pair was deleted")
        #expect(!h.pod.linkNames.contains("eth0"), "its pod end went with it")
        #expect(h.leases.isEmpty, "the lease was released")
        #expect(h.lockIsFree)
        #expect(h.node.journal.contains { $0.hasPrefix("deleteLink veth") })
    }

    @Test func whatTheRollbackCouldNotUndoIsInTheErrorsDetails() {
        let h = VerbHarness()
        h.pod.failures["configure"] = EPERM
        h.node.failures["deleteLink"] = EBUSY
        let r = h.run("ADD")
        #expect(r.code == 102, "the error is the one that failed ADD, not the rollback's")
        #expect(r.json?["msg"]?.stringValue?.contains("configure eth0") == true)
        let veth = h.hostVeths.first ?? "?"
        #expect(h.hostVeths.count == 1, "the veth could not be deleted")
        #expect(r.details.contains("rollback left behind: host veth \(veth)"), "\(r.details)")
        #expect(r.details.contains("Device or resource busy"))
        #expect(h.leases.isEmpty, "the lease was still released")
        #expect(h.lockIsFree)
    }

    @Test func aFailureAfterTheVethIsTaggedRollsBackToo() {
        let h = VerbHarness()
        h.node.failures["tagBridgePort"] = EINVAL
        let r = h.run("ADD")
        #expect(r.code == 102)
        #expect(h.hostVeths.isEmpty)
        #expect(h.leases.isEmpty)
    }

    @Test func aNetlinkFailureCreatingTheBridgeIs102AndLeasesNothingLasting() {
        let h = VerbHarness()
        h.node.failures["createBridge"] = EPERM
        let r = h.run("ADD")
        #expect(r.code == 102)
        #expect(r.json?["msg"]?.stringValue?.hasPrefix("netlink: createBridge cni0") == true, "\(h.result(of: r))")
        #expect(h.leases.isEmpty)
        #expect(h.lockIsFree)
    }

    @Test func aNodeSocketThatCannotBeOpenedIs102() {
        let h = VerbHarness()
        h.namespaces.nodeFailure = .netlink(NetlinkError("open netlink socket", errno: EMFILE))
        let r = h.run("ADD")
        #expect(r.code == 102)
        #expect(h.leases.isEmpty)
    }

    @Test func aMissingNamespaceIs106AndTouchesNothing() {
        let h = VerbHarness()
        let r = h.run("ADD", netns: "/run/netns/gone")
        #expect(r.code == 106)
        #expect(r.json?["msg"]?.stringValue?.contains("/run/netns/gone") == true)
        #expect(h.node.journal.isEmpty)
        #expect(h.leases.isEmpty)
    }

    @Test func theNodesOwnNamespaceIs106() {
        let h = VerbHarness()
        h.namespaces.nodePaths = ["/proc/1/ns/net"]
        let r = h.run("ADD", netns: "/proc/1/ns/net")
        #expect(r.code == 106)
        #expect(r.json?["msg"]?.stringValue?.contains("node's own") == true)
        #expect(h.leases.isEmpty)
    }

    @Test func anInterfaceThatExistsInThePodIs101AndAllocatesNothing() {
        let h = VerbHarness()
        h.pod.insert(Link(index: 7, name: "eth0", kind: "veth"))
        let r = h.run("ADD")
        #expect(r.code == 101)
        #expect(h.leases.isEmpty)
        #expect(h.hostVeths.isEmpty)
        #expect(h.pod.named("eth0")?.index == 7, "the pod's interface is left alone")
    }

    @Test func anExhaustedRangeIs100AndKeepsTheOtherLeases() {
        let h = VerbHarness()
        // A /30 has two hosts: the gateway and one pod.
        let config = h.config(subnet: "10.244.1.0/30")
        #expect(h.run("ADD", container: "ctr1", config: config).exitCode == 0)
        h.namespaces.pod("/run/netns/pod2")
        let r = h.run("ADD", container: "ctr2", netns: "/run/netns/pod2", config: config)
        #expect(r.code == 100)
        #expect(r.json?["msg"]?.stringValue == "no free address left in range 10.244.1.1-10.244.1.2", "\(h.result(of: r))")
        #expect(h.leases == ["10.244.1.2"])
        #expect(h.hostVeths.count == 1, "only the first pod's veth")
        #expect(h.lockIsFree)
    }

    @Test func aBridgeNameTakenByAnotherDeviceIs103AndAllocatesNothing() {
        let h = VerbHarness()
        h.node.insert(Link(index: 5, name: "cni0", kind: "dummy"))
        let r = h.run("ADD")
        #expect(r.code == 103)
        #expect(h.leases.isEmpty)
    }

    @Test func aConflictingBridgeAddressIs103AndRollsBack() {
        let h = VerbHarness()
        h.node.insert(Link(index: 5, name: "cni0", flags: 1, kind: "bridge"))
        h.node.addAddressDirectly(IPNetwork(cidr: "192.168.7.1/24")!, to: "cni0")
        let r = h.run("ADD")
        #expect(r.code == 103)
        #expect(r.details.contains("forceAddress"))
        #expect(h.leases.isEmpty)
        #expect(h.node.addresses(of: "cni0") == [IPNetwork(cidr: "192.168.7.1/24")!])
    }

    @Test func noFreeHostVethNameAfterEightTriesIs11AndRollsBack() {
        let h = VerbHarness()
        h.node.vethNamesTaken = true
        let r = h.run("ADD")
        #expect(r.code == 11)
        #expect(h.node.journal.filter { $0.hasPrefix("createVethPair") }.count == 8)
        #expect(h.leases.isEmpty)
    }

    @Test func aPodInterfaceThatAnotherADDCreatesMeanwhileIs101AndRollsBack() {
        let h = VerbHarness()
        // After our look-up found no eth0, a concurrent ADD of the same attachment creates it.
        let pod = h.pod
        h.node.beforeCreateVeth = { pod.insert(Link(index: 9, name: "eth0", kind: "veth")) }
        let r = h.run("ADD")
        #expect(r.code == 101)
        #expect(h.leases.isEmpty)
        #expect(h.hostVeths.isEmpty)
        #expect(h.pod.named("eth0")?.index == 9, "theirs is left alone")
    }

    @Test func anIPv6SettingThatCannotBeMadeIs102AndRollsBack() {
        let h = VerbHarness()
        h.pod.failures["prepareIPv6"] = EACCES
        let r = h.run("ADD", config: h.config(subnet: "fd00:10:244:1::/64"))
        #expect(r.code == 102)
        #expect(r.json?["msg"]?.stringValue == "cannot enable IPv6 on eth0 in \(VerbHarness.podPath)")
        #expect(r.details.contains("Permission denied"))
        #expect(h.hostVeths.isEmpty)
        #expect(h.leases.isEmpty)
    }
}

/// A podCIDR change (issue 21 item 5): the subnet file names a new subnet while pods hold
/// addresses of the old one.
@Suite struct PodCIDRChangeTests {
    func subnetFileConfig(_ h: VerbHarness) -> String {
        h.config(ipam: #"{"type":"host-local","subnetFile":"\#(h.scratch.file("podcidr"))","dataDir":"\#(h.scratch.path)"}"#)
    }

    func address(_ run: VerbHarness.Run) -> String? { run.json?["ips"]?.arrayValue?.first?["address"]?.stringValue }

    @Test func newPodsGetTheNewSubnetAndTheOldGatewayStaysUntilItsLastPodIsDeleted() {
        let h = VerbHarness()
        h.namespaces.pod("/run/netns/pod2")
        h.scratch.write("podcidr", "10.244.1.0/24\n")
        let old = h.run("ADD", container: "old", config: subnetFileConfig(h))
        #expect(address(old) == "10.244.1.2/24", "\(h.result(of: old))")
        h.scratch.write("podcidr", "10.244.7.0/24\n")
        let new = h.run("ADD", container: "new", netns: "/run/netns/pod2", config: subnetFileConfig(h))
        #expect(new.exitCode == 0, "\(h.result(of: new))")
        #expect(address(new) == "10.244.7.2/24")
        #expect(Set(h.node.addresses(of: "cni0")) == [IPNetwork(cidr: "10.244.1.1/24")!, IPNetwork(cidr: "10.244.7.1/24")!])
        // The runtime's DEL without prevResult finds the old lease although it is outside the range.
        #expect(h.run("DEL", container: "old", config: subnetFileConfig(h)).exitCode == 0)
        #expect(h.leases == ["10.244.7.2"])
        #expect(h.node.addresses(of: "cni0") == [IPNetwork(cidr: "10.244.7.1/24")!], "the old gateway went with its last pod")
        #expect(h.lockIsFree)
    }

    @Test func anOldGatewayNoPodUsesIsReplacedByTheNextADD() {
        let h = VerbHarness()
        h.scratch.write("podcidr", "10.244.1.0/24\n")
        #expect(h.run("ADD", container: "old", config: subnetFileConfig(h)).exitCode == 0)
        #expect(h.run("DEL", container: "old", config: subnetFileConfig(h)).exitCode == 0)
        h.scratch.write("podcidr", "10.244.7.0/24\n")
        let new = h.run("ADD", container: "new", config: subnetFileConfig(h))
        #expect(new.exitCode == 0, "\(h.result(of: new))")
        #expect(h.node.addresses(of: "cni0") == [IPNetwork(cidr: "10.244.7.1/24")!])
    }

    @Test func anAddressThatWasNeverAGatewayOfOursIsStillAConflict() {
        let h = VerbHarness()
        h.scratch.write("podcidr", "10.244.7.0/24\n")
        h.node.insert(Link(index: 5, name: "cni0", flags: 1, kind: "bridge"))
        h.node.addAddressDirectly(IPNetwork(cidr: "10.244.1.1/24")!, to: "cni0")
        let r = h.run("ADD", config: subnetFileConfig(h))
        #expect(r.code == 103)
        #expect(h.leases.isEmpty)
        #expect(h.node.addresses(of: "cni0") == [IPNetwork(cidr: "10.244.1.1/24")!])
    }
}
