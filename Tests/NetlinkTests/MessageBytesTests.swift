#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNetlinkShim
import Addresses
@testable import Netlink

private let request = UInt16(NLM_F_REQUEST)
private let ack = UInt16(NLM_F_ACK)

private func socket(_ transport: FakeTransport) -> NetlinkSocket {
    NetlinkSocket(transport: transport, firstSequence: 1000)
}

private func mac(_ last: UInt8) -> MACAddress { MACAddress(bytes: [2, 0, 0, 0, 0, last])! }

/// The bytes of each request the plugin sends, against the encoding written out by hand.
@Suite struct MessageBytesTests {
    @Test func vethCreatedWithItsPeerInAnotherNamespace() throws {
        let fake = FakeTransport { datagram, _ in
            let create = Wire.messages(datagram)[0]
            // The kernel echoes the new link, then acknowledges.
            return [Kernel.link(sequence: create.sequence, index: 9, name: "veth0123abcd", peerIndex: 2)] + Kernel.acknowledge(datagram)
        }
        let created = try socket(fake).createVethPair(
            VethPair(
                name: "veth0123abcd", mac: mac(1), peerName: "eth0", peerMAC: mac(2),
                peerNamespaceFD: 7, mtu: 1400, master: 3))
        #expect(created == CreatedVeth(index: 9, peerIndex: 2))
        #expect(fake.sent.count == 1, "no look-up after the echo")
        let expected = Wire.message(
            type: UInt16(RTM_NEWLINK), flags: request | ack | UInt16(NLM_F_ECHO | NLM_F_EXCL | NLM_F_CREATE), sequence: 1000,
            Wire.ifinfomsg(flags: 1, change: 1)  // IFF_UP
                + Wire.attribute(UInt16(IFLA_IFNAME), string: "veth0123abcd")
                + Wire.attribute(UInt16(IFLA_ADDRESS), mac(1).bytes)
                + Wire.attribute(UInt16(IFLA_MTU), u32: 1400)
                + Wire.attribute(UInt16(IFLA_MASTER), u32: 3)
                + Wire.nest(
                    UInt16(IFLA_LINKINFO),
                    Wire.attribute(UInt16(IFLA_INFO_KIND), string: "veth"),
                    Wire.nest(
                        UInt16(IFLA_INFO_DATA),
                        Wire.nest(
                            UInt16(VETH_INFO_PEER),
                            Wire.ifinfomsg(),
                            Wire.attribute(UInt16(IFLA_IFNAME), string: "eth0"),
                            Wire.attribute(UInt16(IFLA_ADDRESS), mac(2).bytes),
                            Wire.attribute(UInt16(IFLA_MTU), u32: 1400),
                            Wire.attribute(UInt16(IFLA_NET_NS_FD), u32: 7)))))
        #expect(fake.sent[0] == expected)
    }

    @Test func vethIndexesLookedUpWhenTheKernelDoesNotEcho() throws {
        let fake = FakeTransport { datagram, index in
            let message = Wire.messages(datagram)[0]
            return index == 0
                ? Kernel.acknowledge(datagram) : [Kernel.link(sequence: message.sequence, index: 9, name: "veth1", peerIndex: 2)]
        }
        let created = try socket(fake).createVethPair(
            VethPair(
                name: "veth1", mac: mac(1), peerName: "eth0", peerMAC: mac(2),
                peerNamespaceFD: nil, mtu: nil, master: nil))
        #expect(created == CreatedVeth(index: 9, peerIndex: 2))
        #expect(fake.sent.count == 2)
        #expect(Wire.messages(fake.sent[1])[0].type == UInt16(RTM_GETLINK))
    }

    @Test func addressAdd() throws {
        let fake = FakeTransport()
        try socket(fake).addAddress(IPNetwork(cidr: "10.244.1.5/24")!, index: 4)
        // Literal bytes too, so that the hand encoder and the builder cannot agree on a wrong layout.
        let golden: [UInt8] = [
            0x30, 0, 0, 0, 0x14, 0, 0x05, 0x06, 0xe8, 0x03, 0, 0, 0, 0, 0, 0,  // len 48, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 1000
            2, 24, 0, 0, 4, 0, 0, 0,  // AF_INET /24, index 4
            8, 0, 2, 0, 10, 244, 1, 5,  // IFA_LOCAL
            8, 0, 1, 0, 10, 244, 1, 5,  // IFA_ADDRESS
            8, 0, 4, 0, 10, 244, 1, 255,  // IFA_BROADCAST
        ]
        #expect(fake.sent == [golden])
        let expected = Wire.message(
            type: UInt16(RTM_NEWADDR), flags: request | ack | UInt16(NLM_F_EXCL | NLM_F_CREATE), sequence: 1000,
            Wire.ifaddrmsg(family: UInt8(AF_INET), prefixLength: 24, index: 4)
                + Wire.attribute(UInt16(IFA_LOCAL), [10, 244, 1, 5])
                + Wire.attribute(UInt16(IFA_ADDRESS), [10, 244, 1, 5])
                + Wire.attribute(UInt16(IFA_BROADCAST), [10, 244, 1, 255]))
        #expect(fake.sent == [expected])
    }

    @Test func routeAdd() throws {
        let fake = FakeTransport()
        try socket(fake).batch { batch in
            NetlinkSocket.addRoute(
                RouteEntry(destination: IPNetwork(cidr: "0.0.0.0/0")!, gateway: IPAddress("10.244.1.1")!, outputInterface: 4),
                to: &batch)
            NetlinkSocket.addRoute(
                RouteEntry(destination: IPNetwork(cidr: "10.9.0.0/16")!, gateway: IPAddress("172.16.0.9")!, routeProtocol: 212),
                replace: true, to: &batch)
        }
        let main = UInt8(RT_TABLE_MAIN.rawValue)
        let expected =
            Wire.message(
                type: UInt16(RTM_NEWROUTE), flags: request | UInt16(NLM_F_EXCL | NLM_F_CREATE), sequence: 1000,
                Wire.rtmsg(
                    family: UInt8(AF_INET), dstLength: 0, table: main, protocol: UInt8(RTPROT_BOOT),
                    scope: UInt8(RT_SCOPE_UNIVERSE.rawValue), type: UInt8(RTN_UNICAST))
                    + Wire.attribute(UInt16(RTA_TABLE.rawValue), u32: UInt32(main))
                    + Wire.attribute(UInt16(RTA_GATEWAY.rawValue), [10, 244, 1, 1])
                    + Wire.attribute(UInt16(RTA_OIF.rawValue), u32: 4))
            + Wire.message(
                type: UInt16(RTM_NEWROUTE), flags: request | ack | UInt16(NLM_F_REPLACE | NLM_F_CREATE), sequence: 1001,
                Wire.rtmsg(
                    family: UInt8(AF_INET), dstLength: 16, table: main, protocol: 212,
                    scope: UInt8(RT_SCOPE_UNIVERSE.rawValue), type: UInt8(RTN_UNICAST))
                    + Wire.attribute(UInt16(RTA_TABLE.rawValue), u32: UInt32(main))
                    + Wire.attribute(UInt16(RTA_DST.rawValue), [10, 9, 0, 0])
                    + Wire.attribute(UInt16(RTA_GATEWAY.rawValue), [172, 16, 0, 9]))
        #expect(fake.sent == [expected], "one datagram; only its last message asks for an ack")
    }

    @Test func aliasAndHairpinShareADatagram() throws {
        let fake = FakeTransport()
        try socket(fake).batch { batch in
            NetlinkSocket.setAlias(index: 9, name: "veth1", alias: "bridge-ipam podnet ctr eth0", to: &batch)
            NetlinkSocket.setBridgePort(index: 9, name: "veth1", BridgePortSettings(hairpin: true), to: &batch)
        }
        let expected =
            Wire.message(
                type: UInt16(RTM_NEWLINK), flags: request, sequence: 1000,
                Wire.ifinfomsg(index: 9) + Wire.attribute(UInt16(IFLA_IFALIAS), string: "bridge-ipam podnet ctr eth0"))
            + Wire.message(
                type: UInt16(RTM_SETLINK), flags: request | ack, sequence: 1001,
                Wire.ifinfomsg(family: UInt8(AF_BRIDGE), index: 9)
                    + Wire.nest(UInt16(IFLA_PROTINFO), Wire.attribute(UInt16(IFLA_BRPORT_MODE), [1])))
        #expect(fake.sent == [expected])
    }

    @Test func paddingIsZeroEvenWhereTheBufferHeldOtherBytes() throws {
        let fake = FakeTransport()
        let socket = socket(fake)
        try socket.execute("fill", type: UInt16(RTM_NEWLINK)) { $0.put(1, bytes: [UInt8](repeating: 0xff, count: 1000)) }
        try socket.execute("short ones", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: 1))
            m.put(UInt16(IFLA_CARRIER), u8: 1)
            m.put(UInt16(IFLA_IFNAME), string: "ab")
            m.nest(UInt16(IFLA_LINKINFO)) { $0.put(UInt16(IFLA_INFO_KIND), bytes: [7]) }
        }
        #expect(
            fake.sent[1]
                == Wire.message(
                    type: UInt16(RTM_NEWLINK), flags: request | ack, sequence: 1001,
                    Wire.ifinfomsg(index: 1) + Wire.attribute(UInt16(IFLA_CARRIER), [1]) + Wire.attribute(UInt16(IFLA_IFNAME), string: "ab")
                        + Wire.nest(UInt16(IFLA_LINKINFO), Wire.attribute(UInt16(IFLA_INFO_KIND), [7]))))
    }

    @Test func podLinkUpAndArpNotify() throws {
        let fake = FakeTransport()
        try socket(fake).batch { batch in
            NetlinkSocket.setLink(index: 2, name: "eth0", up: true, to: &batch)
            NetlinkSocket.setIPv4Setting(.arpNotify, value: 1, index: 2, name: "eth0", to: &batch)
        }
        let expected =
            Wire.message(type: UInt16(RTM_NEWLINK), flags: request, sequence: 1000, Wire.ifinfomsg(index: 2, flags: 1, change: 1))
            + Wire.message(
                type: UInt16(RTM_NEWLINK), flags: request | ack, sequence: 1001,
                Wire.ifinfomsg(index: 2)
                    + Wire.nest(
                        UInt16(IFLA_AF_SPEC),
                        Wire.nest(
                            UInt16(AF_INET),
                            Wire.nest(UInt16(IFLA_INET_CONF), Wire.attribute(UInt16(IPV4_DEVCONF_ARP_NOTIFY), u32: 1)))))
        #expect(fake.sent == [expected])
    }

    @Test func lookUpByName() throws {
        let fake = FakeTransport { datagram, _ in
            [Kernel.link(sequence: Wire.messages(datagram)[0].sequence, index: 5, name: "cni0")]
        }
        let link = try socket(fake).link(named: "cni0")
        #expect(link?.index == 5 && link?.name == "cni0" && link?.mtu == 1500)
        let expected = Wire.message(
            type: UInt16(RTM_GETLINK), flags: request, sequence: 1000,
            Wire.ifinfomsg() + Wire.attribute(UInt16(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
                + Wire.attribute(UInt16(IFLA_IFNAME), string: "cni0"))
        #expect(fake.sent == [expected])
    }

    @Test func bridgeCreatedWithItsNetfilterSwitchesInTheSameRequest() throws {
        let fake = FakeTransport()
        try socket(fake).createBridge(name: "cni0", mac: mac(1), mtu: nil, netfilter: .on)
        let expected = Wire.message(
            type: UInt16(RTM_NEWLINK), flags: request | ack | UInt16(NLM_F_EXCL | NLM_F_CREATE), sequence: 1000,
            Wire.ifinfomsg(flags: 1, change: 1)
                + Wire.attribute(UInt16(IFLA_IFNAME), string: "cni0")
                + Wire.attribute(UInt16(IFLA_ADDRESS), mac(1).bytes)
                + Wire.nest(
                    UInt16(IFLA_LINKINFO),
                    Wire.attribute(UInt16(IFLA_INFO_KIND), string: "bridge"),
                    Wire.nest(
                        UInt16(IFLA_INFO_DATA),
                        Wire.attribute(UInt16(IFLA_BR_NF_CALL_IPTABLES), [1]),
                        Wire.attribute(UInt16(IFLA_BR_NF_CALL_IP6TABLES), [1]))))
        #expect(fake.sent == [expected])
    }

    @Test func bridgeNetfilterSetOnAnExistingBridge() throws {
        let fake = FakeTransport()
        try socket(fake).setBridgeNetfilter(index: 5, name: "cni0", .on)
        // Literal bytes: IFLA_BR_NF_CALL_IPTABLES is 36, IP6TABLES 37, each a u8 padded to 8 bytes.
        let golden: [UInt8] = [
            0x44, 0, 0, 0, 0x10, 0, 0x05, 0, 0xe8, 0x03, 0, 0, 0, 0, 0, 0,  // len 68, RTM_NEWLINK, REQUEST|ACK, seq 1000
            0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // ifinfomsg: AF_UNSPEC, index 5, no flags
            0x24, 0, 0x12, 0x80,  // IFLA_LINKINFO (18), nested, 36 bytes
            0x0b, 0, 1, 0, 0x62, 0x72, 0x69, 0x64, 0x67, 0x65, 0, 0,  // IFLA_INFO_KIND "bridge"
            0x14, 0, 0x02, 0x80,  // IFLA_INFO_DATA, nested, 20 bytes
            5, 0, 36, 0, 1, 0, 0, 0,  // IFLA_BR_NF_CALL_IPTABLES 1
            5, 0, 37, 0, 1, 0, 0, 0,  // IFLA_BR_NF_CALL_IP6TABLES 1
        ]
        #expect(fake.sent == [golden])
    }

    @Test func aBridgesSwitchesAreReadFromItsLinkInfo() throws {
        let fake = FakeTransport { datagram, _ in
            let payload =
                Wire.ifinfomsg(index: 5, flags: 1) + Wire.attribute(UInt16(IFLA_IFNAME), string: "cni0")
                + Wire.nest(
                    UInt16(IFLA_LINKINFO), Wire.attribute(UInt16(IFLA_INFO_KIND), string: "bridge"),
                    Wire.nest(
                        UInt16(IFLA_INFO_DATA), Wire.attribute(UInt16(IFLA_BR_STP_STATE), u32: 0),
                        Wire.attribute(UInt16(IFLA_BR_NF_CALL_IPTABLES), [1]), Wire.attribute(UInt16(IFLA_BR_NF_CALL_IP6TABLES), [0])))
            return [
                Wire.message(type: UInt16(RTM_NEWLINK), flags: 0, sequence: Wire.messages(datagram)[0].sequence, port: Kernel.port, payload)
            ]
        }
        let link = try socket(fake).link(named: "cni0")
        #expect(link?.bridgeNetfilter == BridgeNetfilter(iptables: true, ip6tables: false))
    }
}
