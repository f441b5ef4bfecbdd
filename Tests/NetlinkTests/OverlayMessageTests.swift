#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNetlinkShim
import Addresses
@testable import Netlink

private let request = UInt16(NLM_F_REQUEST)
private let ack = UInt16(NLM_F_ACK)
private let vtep = MACAddress("0e:62:c0:a8:02:0a")!

private func ndmsg(family: Int32, index: Int32, state: UInt16, flags: UInt8) -> [UInt8] {
    [UInt8(family), 0] + Wire.u16(0) + Wire.i32(index) + Wire.u16(state) + [flags, 0]
}

/// The VXLAN device, neighbour and FDB requests of the node agent's overlay, against the
/// encoding written out by hand.
@Suite struct OverlayMessageTests {
    @Test func aVXLANDeviceWithLearningOffBoundToItsUnderlay() throws {
        let fake = FakeTransport()
        try NetlinkSocket(transport: fake, firstSequence: 1000).createVXLAN(
            name: "bipam.1", mac: vtep, mtu: 1450, VXLANSettings(vni: 1, port: 8472, underlayIndex: 2, local: IPAddress("192.168.2.10")!))
        let expected = Wire.message(
            type: UInt16(RTM_NEWLINK), flags: request | ack | UInt16(NLM_F_EXCL | NLM_F_CREATE), sequence: 1000,
            Wire.ifinfomsg(flags: 1, change: 1)
                + Wire.attribute(UInt16(IFLA_IFNAME), string: "bipam.1")
                + Wire.attribute(UInt16(IFLA_ADDRESS), vtep.bytes)
                + Wire.attribute(UInt16(IFLA_MTU), u32: 1450)
                + Wire.nest(
                    UInt16(IFLA_LINKINFO),
                    Wire.attribute(UInt16(IFLA_INFO_KIND), string: "vxlan"),
                    Wire.nest(
                        UInt16(IFLA_INFO_DATA),
                        Wire.attribute(UInt16(IFLA_VXLAN_ID), u32: 1),
                        Wire.attribute(UInt16(IFLA_VXLAN_LINK), u32: 2),
                        Wire.attribute(UInt16(IFLA_VXLAN_LOCAL), [192, 168, 2, 10]),
                        Wire.attribute(UInt16(IFLA_VXLAN_PORT), [0x21, 0x18]),  // 8472, network order
                        Wire.attribute(UInt16(IFLA_VXLAN_LEARNING), [0]))))
        #expect(fake.sent[0] == expected)
    }

    @Test func aPermanentNeighbourAndAnFDBEntryOfTheDeviceItself() throws {
        let fake = FakeTransport()
        let failures = try NetlinkSocket(transport: fake, firstSequence: 1000).batchEach { batch in
            NetlinkSocket.setNeighbour(NeighbourEntry(index: 9, address: IPAddress("10.244.2.0")!, mac: vtep), to: &batch)
            NetlinkSocket.setForwardingEntry(ForwardingEntry(index: 9, mac: vtep, destination: IPAddress("192.168.2.10")!), to: &batch)
        }
        #expect(failures.isEmpty)
        let messages = Wire.messages(fake.sent[0])
        let replace = UInt16(NLM_F_CREATE | NLM_F_REPLACE)
        #expect(
            messages[0].bytes
                == Wire.message(
                    type: UInt16(RTM_NEWNEIGH), flags: request | replace, sequence: 1000,
                    ndmsg(family: AF_INET, index: 9, state: UInt16(NUD_PERMANENT), flags: 0)
                        + Wire.attribute(UInt16(NDA_DST), [10, 244, 2, 0]) + Wire.attribute(UInt16(NDA_LLADDR), vtep.bytes)))
        #expect(
            messages[1].bytes
                == Wire.message(
                    type: UInt16(RTM_NEWNEIGH), flags: request | ack | replace, sequence: 1001,
                    ndmsg(family: AF_BRIDGE, index: 9, state: UInt16(NUD_PERMANENT), flags: UInt8(NTF_SELF))
                        + Wire.attribute(UInt16(NDA_LLADDR), vtep.bytes) + Wire.attribute(UInt16(NDA_DST), [192, 168, 2, 10])))
    }

    @Test func anOnlinkRouteThroughTheDevice() throws {
        let fake = FakeTransport()
        try NetlinkSocket(transport: fake, firstSequence: 1000).batch { batch in
            NetlinkSocket.addRoute(
                RouteEntry(
                    destination: IPNetwork(cidr: "10.244.2.0/24")!, gateway: IPAddress("10.244.2.0")!, outputInterface: 9,
                    routeProtocol: 212,
                    onLink: true), to: &batch)
        }
        let payload = Wire.messages(fake.sent[0])[0].payload
        #expect(payload[4] == 254 && payload[5] == 212, "main table, protocol 212")
        #expect(Wire.u32(UInt32(RTNH_F_ONLINK)) == Array(payload[8..<12]), "rtm_flags: RTNH_F_ONLINK")
    }
}
