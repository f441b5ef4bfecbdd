import Testing
import Addresses
@testable import ClusterRoutes

private func node(_ name: String, _ ips: [String], _ cidrs: [String]) -> ClusterNode {
    ClusterNode(name: name, addresses: ips.map { IPAddress($0)! }, podCIDRs: cidrs.map { IPNetwork(cidr: $0)! })
}

private let me = node("a", ["192.168.1.2"], ["10.244.0.0/24"])
private let local = LocalNode(node: me, connected: [net("192.168.1.2/24")])
private let sameSubnet = node("b", ["192.168.1.3"], ["10.244.1.0/24"])
private let otherSubnet = node("c", ["192.168.2.3"], ["10.244.2.0/24"])

@Suite struct NetworkPlanTests {
    @Test func autoIsDirectOnLinkAndTunnelledElsewhere() {
        let plan = DesiredNetwork(local: local, peers: [me, sameSubnet, otherSubnet], mode: .auto)
        #expect(
            plan.routes[net("10.244.1.0/24")]
                == DesiredRoute(destination: net("10.244.1.0/24"), gateway: ip("192.168.1.3"), tunnel: false, node: "b"))
        #expect(
            plan.routes[net("10.244.2.0/24")]
                == DesiredRoute(destination: net("10.244.2.0/24"), gateway: ip("10.244.2.0"), tunnel: true, node: "c"))
        let mac = MACAddress("0e:62:c0:a8:02:03")!
        #expect(plan.neighbours == [ip("10.244.2.0"): Owned(mac, node: "c")])
        #expect(plan.forwarding == [mac: Owned(ip("192.168.2.3"), node: "c")])
        #expect(plan.problems.isEmpty)
    }

    @Test func directAndVXLANForceOneWay() {
        let direct = DesiredNetwork(local: local, peers: [sameSubnet, otherSubnet], mode: .direct)
        #expect(direct.routes.values.allSatisfy { !$0.tunnel } && direct.forwarding.isEmpty)
        let vxlan = DesiredNetwork(local: local, peers: [sameSubnet, otherSubnet], mode: .vxlan)
        #expect(vxlan.routes.values.allSatisfy(\.tunnel) && vxlan.forwarding.count == 2)
    }

    @Test func aDualStackPeerWithOnlyAnIPv4AddressKeepsItsIPv4Route() {
        let half = node("d", ["192.168.1.4"], ["10.244.3.0/24", "fd00:10:244:3::/64"])
        let direct = DesiredNetwork(local: local, peers: [half], mode: .direct)
        #expect(direct.routes.keys.map(\.description) == ["10.244.3.0/24"])
        #expect(direct.problems["d"]?.contains("no IPv6 InternalIP") == true)
        // In auto mode its IPv6 pods go through the IPv4 tunnel instead.
        let auto = DesiredNetwork(local: local, peers: [half], mode: .auto)
        #expect(auto.routes[net("fd00:10:244:3::/64")]?.gateway == ip("fd00:10:244:3::"))
        #expect(auto.routes[net("fd00:10:244:3::/64")]?.tunnel == true)
        #expect(auto.routes[net("10.244.3.0/24")]?.tunnel == false)
        #expect(auto.problems.isEmpty)
    }

    @Test func overlappingPeersAreLeftOutAloneNamed() {
        let x = node("x", ["192.168.1.5"], ["10.244.7.0/24"])
        let y = node("y", ["192.168.1.6"], ["10.244.7.128/25"])
        let plan = DesiredNetwork(local: local, peers: [sameSubnet, x, y, otherSubnet], mode: .auto)
        #expect(Set(plan.routes.keys) == [net("10.244.1.0/24"), net("10.244.2.0/24")])
        #expect(plan.problems["x"] == "podCIDR 10.244.7.0/24 of node x overlaps podCIDR 10.244.7.128/25 of node y; it gets no route")
        #expect(plan.problems["y"]?.contains("overlaps podCIDR 10.244.7.0/24 of node x") == true)
    }

    @Test func aPeerOverlappingThisNodeIsTheOnlyOneLeftOut() {
        let z = node("z", ["192.168.1.7"], ["10.244.0.128/25"])
        let plan = DesiredNetwork(local: local, peers: [me, z, sameSubnet], mode: .auto)
        #expect(plan.problems.keys.sorted() == ["z"])
        #expect(plan.routes.count == 1)
    }

    @Test func overlapsAreFoundAmongThousandsInOneSortedPass() {
        var peers = (1..<5000).map { i in node("n\(i)", ["192.168.\(i / 250).\(i % 250 + 2)"], ["10.\(i / 256).\(i % 256).0/24"]) }
        peers.append(node("dup", ["192.168.100.1"], ["10.0.77.0/24"]))
        let plan = DesiredNetwork(local: local, peers: peers, mode: .auto)
        #expect(plan.problems.keys.sorted() == ["dup", "n77"])
        #expect(plan.routes.count == 4998)
    }

    @Test func changesAreLinearByKeyAndOrdered() {
        let plan = DesiredNetwork(local: local, peers: [sameSubnet, otherSubnet], mode: .auto)
        var installed = InstalledNetwork()
        installed.routes[net("10.244.1.0/24")] = InstalledRoute(gateway: ip("192.168.1.9"), tunnel: false)
        installed.routes[net("10.244.9.0/24")] = InstalledRoute(gateway: ip("10.244.9.0"), tunnel: true)
        installed.neighbours[ip("10.244.9.0")] = MACAddress("0e:62:c0:a8:02:09")!
        installed.forwarding[MACAddress("0e:62:c0:a8:02:09")!] = ip("192.168.2.9")
        let changes = plan.changes(from: installed).map(\.description)
        #expect(
            changes == [
                "route removed 10.244.9.0/24 via 10.244.9.0 (vxlan)",
                "neighbour removed 10.244.9.0 lladdr 0e:62:c0:a8:02:09",
                "fdb removed 0e:62:c0:a8:02:09 dst 192.168.2.9",
                "fdb set 0e:62:c0:a8:02:03 dst 192.168.2.3 (c)",
                "neighbour set 10.244.2.0 lladdr 0e:62:c0:a8:02:03 (c)",
                "route added 10.244.2.0/24 via 10.244.2.0 (vxlan) (c)",
                "route replaced 10.244.1.0/24 via 192.168.1.3 (b), was via 192.168.1.9",
            ])
    }

    @Test func vtepMACsAreDerivedFromTheUnderlayAddress() {
        #expect(OverlaySettings.vtepMAC(for: ip("192.168.2.10")).description == "0e:62:c0:a8:02:0a")
        let v6 = OverlaySettings.vtepMAC(for: ip("fd00::1"))
        #expect(
            v6.bytes[0] == 0x0e && v6 == OverlaySettings.vtepMAC(for: ip("fd00::1")) && v6 != OverlaySettings.vtepMAC(for: ip("fd00::2")))
    }
}

@Suite struct NodeNetworkTests {
    @Test func syncSetsUpTheTunnelAndEveryEntryThenNothingMore() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.2/24"])
        let network = NodeNetwork(mode: .auto, kernel: kernel)
        let first = network.sync(me: me, peers: [sameSubnet, otherSubnet])
        #expect(first.podMTU == 1450 && first.tunnelRecreated && first.failures.isEmpty)
        #expect(kernel.tunnel?.addresses == [net("10.244.0.0/32")] && kernel.tunnel?.mtu == 1450 && kernel.tunnel?.underlayIndex == 2)
        #expect(kernel.state.routes.count == 2 && kernel.state.neighbours.count == 1 && kernel.state.forwarding.count == 1)
        let second = network.sync(me: me, peers: [sameSubnet, otherSubnet])
        #expect(second.applied.isEmpty && !second.tunnelRecreated)
    }

    @Test func aNodeThatLeavesTakesItsThreeEntries() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.2/24"])
        let network = NodeNetwork(mode: .auto, kernel: kernel)
        _ = network.sync(me: me, peers: [sameSubnet, otherSubnet])
        _ = network.sync(me: me, peers: [sameSubnet])
        #expect(kernel.state.routes.keys.map(\.description) == ["10.244.1.0/24"])
        #expect(kernel.state.neighbours.isEmpty && kernel.state.forwarding.isEmpty)
    }

    @Test func aRefusedEntryFailsAloneNamingItsNode() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.2/24"])
        kernel.refuse = { change in
            if case .addRoute(let r) = change, r.node == "b" { return "File exists" }
            return nil
        }
        let outcome = NodeNetwork(mode: .auto, kernel: kernel).sync(me: me, peers: [sameSubnet, otherSubnet])
        #expect(outcome.failures == ["b": ["route added 10.244.1.0/24 via 192.168.1.3 (b): File exists"]])
        #expect(kernel.state.routes[net("10.244.2.0/24")] != nil, "the other node's route is applied")
    }

    @Test func aPeerMovingOnLinkTradesItsTunnelEntriesForADirectRoute() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.2/24"])
        let network = NodeNetwork(mode: .auto, kernel: kernel)
        _ = network.sync(me: me, peers: [otherSubnet])
        #expect(kernel.state.routes[net("10.244.2.0/24")]?.tunnel == true)
        let moved = node("c", ["192.168.1.9"], ["10.244.2.0/24"])
        let outcome = network.sync(me: me, peers: [moved])
        #expect(kernel.state.routes[net("10.244.2.0/24")] == InstalledRoute(gateway: ip("192.168.1.9"), tunnel: false))
        #expect(kernel.state.neighbours.isEmpty && kernel.state.forwarding.isEmpty)
        #expect(outcome.applied.count == 3)
    }

    @Test func directModeKeepsTheUnderlayMTUAndRemovesTheTunnel() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.2/24"])
        _ = NodeNetwork(mode: .vxlan, kernel: kernel).sync(me: me, peers: [sameSubnet])
        #expect(kernel.tunnel != nil)
        let outcome = NodeNetwork(mode: .direct, kernel: kernel).sync(me: me, peers: [sameSubnet])
        #expect(outcome.podMTU == 1500 && kernel.tunnel == nil)
        #expect(kernel.state.routes[net("10.244.1.0/24")]?.tunnel == false)
    }

    @Test func anIPv6UnderlayCostsSeventyBytes() {
        let v6me = node("a", ["fd00::2"], ["fd00:10:244::/64"])
        let kernel = FakeNetworkKernel(addresses: ["fd00::2/64"])
        let outcome = NodeNetwork(mode: .vxlan, kernel: kernel).sync(me: v6me, peers: [node("b", ["fd00::3"], ["fd00:10:244:1::/64"])])
        #expect(outcome.podMTU == 1430)
        #expect(kernel.tunnel?.local == ip("fd00::2") && kernel.tunnel?.addresses == [net("fd00:10:244::/128")])
    }

    @Test func withoutItsAddressOnALinkTheNodeSaysSoAndKeepsDirectRoutes() {
        let kernel = FakeNetworkKernel(addresses: ["192.168.1.9/24"])
        let outcome = NodeNetwork(mode: .auto, kernel: kernel).sync(me: me, peers: [sameSubnet, otherSubnet])
        #expect(outcome.localProblem?.contains("192.168.1.2 is on none of its links") == true)
        #expect(kernel.state.routes.keys.map(\.description) == ["10.244.1.0/24"])
    }
}
