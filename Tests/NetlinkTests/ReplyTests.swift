#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNetlinkShim
import Addresses
@testable import Netlink

private func socket(_ transport: FakeTransport) -> NetlinkSocket {
    NetlinkSocket(transport: transport, firstSequence: 1000)
}

private let multi = UInt16(NLM_F_MULTI)
private let interrupted = UInt16(NLM_F_MULTI | NLM_F_DUMP_INTR)

/// Replies: dumps over several datagrams, interrupted dumps, errors, attributes.
@Suite struct ReplyTests {
    @Test func aDumpSplitOverDatagrams() throws {
        let fake = FakeTransport { datagram, _ in
            let seq = Wire.messages(datagram)[0].sequence
            return [
                Kernel.link(sequence: seq, flags: multi, index: 1, name: "lo")
                    + Kernel.link(sequence: seq, flags: multi, index: 2, name: "eth0"),
                Kernel.link(sequence: seq, flags: multi, index: 3, name: "cni0"),
                Kernel.done(sequence: seq),
            ]
        }
        let links = try socket(fake).links()
        #expect(links.map(\.name) == ["lo", "eth0", "cni0"])
        #expect(links.map(\.index) == [1, 2, 3])
        let request = Wire.messages(fake.sent[0])[0]
        #expect(request.type == UInt16(RTM_GETLINK) && request.flags == UInt16(NLM_F_REQUEST | NLM_F_DUMP))
    }

    @Test func anInterruptedDumpIsStartedAgain() throws {
        let fake = FakeTransport { datagram, index in
            let seq = Wire.messages(datagram)[0].sequence
            if index == 0 {
                // The table changed while it was read: the kernel flags the messages after the change.
                return [
                    Kernel.link(sequence: seq, flags: multi, index: 1, name: "lo"),
                    Kernel.link(sequence: seq, flags: interrupted, index: 7, name: "gone") + Kernel.done(sequence: seq, flags: interrupted),
                ]
            }
            return [Kernel.link(sequence: seq, flags: multi, index: 1, name: "lo") + Kernel.done(sequence: seq)]
        }
        #expect(try socket(fake).links().map(\.name) == ["lo"])
        #expect(fake.sent.count == 2)
    }

    @Test func aDumpInterruptedEveryTimeFailsClearly() {
        let fake = FakeTransport { datagram, _ in
            let seq = Wire.messages(datagram)[0].sequence
            return [Kernel.link(sequence: seq, flags: interrupted, index: 1, name: "lo") + Kernel.done(sequence: seq, flags: interrupted)]
        }
        let error = #expect(throws: NetlinkError.self) { try socket(fake).links() }
        #expect(error?.errno == EAGAIN && error?.operation == "list links")
        #expect(fake.sent.count == NetlinkSocket.dumpAttempts)
    }

    @Test func aDumpThatEndsInAnErrorThrowsIt() {
        let fake = FakeTransport { datagram, _ in
            let seq = Wire.messages(datagram)[0].sequence
            return [
                Wire.message(
                    type: UInt16(NLMSG_DONE), flags: UInt16(NLM_F_MULTI | NLM_F_ACK_TLVS), sequence: seq, port: Kernel.port,
                    Wire.i32(-ENOENT) + Wire.attribute(UInt16(NLMSGERR_ATTR_MSG.rawValue), string: "No such table"))
            ]
        }
        let error = #expect(throws: NetlinkError.self) { try socket(fake).links() }
        #expect(error == NetlinkError("list links", errno: ENOENT, kernelMessage: "No such table"))
    }

    @Test func aMissingLinkIsNil() throws {
        let fake = FakeTransport { datagram, _ in [Kernel.error(Wire.messages(datagram)[0], errno: ENODEV)] }
        #expect(try socket(fake).link(named: "nothing") == nil)
    }

    @Test func attributesAreReadInHostOrderIncludingNests() {
        let bytes =
            Wire.attribute(UInt16(IFLA_MTU), u32: 0x0102_0304)
            + Wire.nest(UInt16(IFLA_LINKINFO), Wire.attribute(UInt16(IFLA_INFO_KIND), string: "veth"))
            + Wire.attribute(UInt16(IFLA_IFNAME), string: "eth0")
            + [9, 0]  // a truncated attribute header at the end is ignored
        let attributes = Attributes(bytes[...])
        #expect(attributes.u32(UInt16(IFLA_MTU)) == 0x0102_0304)
        #expect(attributes.nested(UInt16(IFLA_LINKINFO))?.string(UInt16(IFLA_INFO_KIND)) == "veth")
        #expect(attributes.string(UInt16(IFLA_IFNAME)) == "eth0")
        // From a slice that does not start at index 0.
        let shifted = ([0xff, 0xff, 0xff, 0xff] + bytes)[4...]
        #expect(Attributes(shifted).string(UInt16(IFLA_IFNAME)) == "eth0")
    }

    @Test func echoedRepliesOfABatchAreReturned() throws {
        let fake = FakeTransport { datagram, _ in
            let seq = Wire.messages(datagram)[0].sequence
            return [Kernel.link(sequence: seq, index: 9, name: "veth1", peerIndex: 3)] + Kernel.acknowledge(datagram)
        }
        let replies = try socket(fake).batchWithReplies { $0.add("create", type: UInt16(RTM_NEWLINK), flags: NLM_F_ECHO) { _ in } }
        #expect(replies.map { Link($0).peerIndex } == [3])
    }
}
