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

private func route(_ i: Int) -> RouteEntry {
    RouteEntry(destination: IPNetwork(cidr: "10.\(i / 256).\(i % 256).0/24")!, gateway: IPAddress("172.16.0.1")!, routeProtocol: 212)
}

private func isAcknowledged(_ message: WireMessage) -> Bool { message.flags & UInt16(NLM_F_ACK) != 0 }

/// Batches: split by room and message count, acknowledged once per datagram, replies read
/// between datagrams, failures attributed to their message.
@Suite struct BatchTests {
    @Test func manyRoutesSplitIntoDatagramsReadOneAtATime() throws {
        let fake = FakeTransport()
        try socket(fake).batch { batch in
            for i in 0..<300 { NetlinkSocket.addRoute(route(i), to: &batch) }
        }
        let datagrams = fake.sent.map(Wire.messages)
        #expect(datagrams.map(\.count) == [128, 128, 44])
        #expect(fake.sent.allSatisfy { $0.count <= NetlinkSocket.maximumMessageSize })
        for messages in datagrams {
            #expect(messages.dropLast().allSatisfy { !isAcknowledged($0) })
            #expect(isAcknowledged(messages.last!))
        }
        #expect(datagrams.flatMap { $0 }.map(\.sequence) == Array(1000..<1300), "every route, in order, once")
        #expect(
            fake.events == ["send", "receive", "send", "receive", "send", "receive"], "each datagram's ack read before the next is sent")
    }

    @Test func largeMessagesSplitByBytes() throws {
        let fake = FakeTransport()
        let payload = [UInt8](repeating: 0xab, count: 20_000)
        try socket(fake).batch { batch in
            for i in 0..<7 {
                batch.add("big \(i)", type: UInt16(RTM_NEWLINK)) { $0.put(UInt16(IFLA_IFALIAS), bytes: payload) }
            }
        }
        #expect(fake.sent.map { Wire.messages($0).count } == [3, 3, 1])
        #expect(fake.sent.allSatisfy { $0.count <= NetlinkSocket.maximumMessageSize })
        #expect(fake.sent.flatMap(Wire.messages).allSatisfy { $0.payload.count == 4 + 20_000 })
    }

    @Test func aMessageTooLargeForAnEmptyDatagramIsACleanError() {
        let fake = FakeTransport()
        let payload = [UInt8](repeating: 1, count: 70_000)
        #expect(throws: NetlinkError("huge", errno: EMSGSIZE, kernelMessage: "the request exceeds the 64 KiB netlink message limit")) {
            try socket(fake).batch { batch in
                NetlinkSocket.addRoute(route(1), to: &batch)
                batch.add("huge", type: UInt16(RTM_NEWLINK)) { m in
                    m.put(header: linkHeader())
                    m.nest(UInt16(IFLA_LINKINFO)) { $0.put(UInt16(IFLA_INFO_DATA), bytes: payload) }
                    m.put(UInt16(IFLA_MTU), u32: 1)
                }
            }
        }
        #expect(fake.sent.isEmpty, "nothing of the batch was sent")
    }

    @Test func anAtomicBatchThatDoesNotFitOneDatagramFails() {
        let fake = FakeTransport()
        let payload = [UInt8](repeating: 1, count: 30_000)
        #expect(throws: NetlinkError.self) {
            try socket(fake).batch(atomic: true) { batch in
                for i in 0..<3 { batch.add("part \(i)", type: UInt16(RTM_NEWLINK)) { $0.put(1, bytes: payload) } }
            }
        }
        #expect(fake.sent.isEmpty)
    }

    @Test func aFailureIsAttributedToItsMessageWithTheKernelsText() {
        let fake = FakeTransport { datagram, _ in
            Kernel.acknowledge(datagram, fail: [1: (EINVAL, "Nexthop has invalid gateway")])
        }
        let error = #expect(throws: NetlinkError.self) {
            try socket(fake).batch { batch in
                for i in 0..<3 { NetlinkSocket.addRoute(route(i), to: &batch) }
            }
        }
        #expect(error == NetlinkError("add route 10.0.1.0/24 via 172.16.0.1", errno: EINVAL, kernelMessage: "Nexthop has invalid gateway"))
    }

    @Test func anErrorAckEchoingTheWholeRequestIsParsedToo() {
        // Without NETLINK_CAP_ACK the kernel echoes the whole request before the TLVs.
        let fake = FakeTransport { datagram, _ in
            let message = Wire.messages(datagram)[0]
            let payload = Wire.i32(-EEXIST) + message.bytes + Wire.attribute(UInt16(NLMSGERR_ATTR_MSG.rawValue), string: "File exists here")
            return [
                Wire.message(
                    type: UInt16(NLMSG_ERROR), flags: UInt16(NLM_F_ACK_TLVS), sequence: message.sequence, port: Kernel.port, payload)
            ]
        }
        let error = #expect(throws: NetlinkError.self) { try socket(fake).execute("create thing", type: UInt16(RTM_NEWLINK)) { _ in } }
        #expect(error?.errno == EEXIST && error?.kernelMessage == "File exists here")
    }

    @Test func toleratedErrorsAreSuccess() throws {
        let fake = FakeTransport { datagram, _ in Kernel.acknowledge(datagram, fail: [0: (ESRCH, nil)]) }
        try socket(fake).batch(tolerate: [ESRCH]) { batch in
            NetlinkSocket.deleteRoute(route(1), to: &batch)
            NetlinkSocket.deleteRoute(route(2), to: &batch)
        }
    }

    @Test func noDatagramIsSentAfterOneThatFailed() {
        let fake = FakeTransport { datagram, index in Kernel.acknowledge(datagram, fail: index == 0 ? [5: (EEXIST, nil)] : [:]) }
        #expect(throws: NetlinkError.self) {
            try socket(fake).batch { batch in
                for i in 0..<300 { NetlinkSocket.addRoute(route(i), to: &batch) }
            }
        }
        #expect(fake.sent.count == 1)
    }

    @Test func batchEachSendsEveryDatagramAndNamesEachRefusedMessage() throws {
        // Failures in the first and the last datagram, two in one datagram.
        let fake = FakeTransport { datagram, index in
            Kernel.acknowledge(
                datagram, fail: index == 0 ? [5: (EEXIST, "File exists"), 7: (ENETUNREACH, nil)] : index == 2 ? [3: (EINVAL, nil)] : [:])
        }
        let failures = try socket(fake).batchEach { batch in
            for i in 0..<300 { NetlinkSocket.addRoute(route(i), to: &batch) }
        }
        #expect(fake.sent.count == 3, "no datagram is held back by an earlier failure")
        #expect(failures.keys.sorted() == [5, 7, 259])
        #expect(failures[5]?.errno == EEXIST && failures[5]?.kernelMessage == "File exists")
        #expect(failures[5]?.operation == "add route 10.0.5.0/24 via 172.16.0.1")
        #expect(failures[259]?.errno == EINVAL)
    }

    @Test func batchEachTakesToleratedErrorsAsSuccess() throws {
        let fake = FakeTransport { datagram, _ in Kernel.acknowledge(datagram, fail: [0: (ESRCH, nil), 1: (EEXIST, nil)]) }
        let failures = try socket(fake).batchEach(tolerate: [ESRCH]) { batch in
            NetlinkSocket.deleteRoute(route(1), to: &batch)
            NetlinkSocket.addRoute(route(2), to: &batch)
        }
        #expect(failures.keys.sorted() == [1])
    }

    @Test func staleRepliesAndOtherPortsAreSkipped() throws {
        let fake = FakeTransport { datagram, _ in
            let message = Wire.messages(datagram)[0]
            // A late error of an earlier request (an old sequence number), then a reply addressed
            // to another socket, then ours.
            return [
                Kernel.error(WireMessage(type: 24, flags: 0, sequence: 17, port: 0, payload: []), errno: EEXIST),
                Wire.message(
                    type: UInt16(NLMSG_ERROR), flags: 0, sequence: message.sequence, port: 99, Wire.i32(-EPERM) + message.bytes.prefix(16)),
            ]
                + Kernel.acknowledge(datagram)
        }
        try socket(fake).execute("set something", type: UInt16(RTM_NEWLINK)) { _ in }
    }

    @Test func aReceiveBufferOverrunIsAnError() {
        final class Overrun: NetlinkTransport {
            let portID: UInt32 = 1
            func send(_ datagram: UnsafeRawBufferPointer) throws(NetlinkError) {}
            func receive(into buffer: UnsafeMutableRawBufferPointer) throws(NetlinkError) -> Int {
                throw NetlinkError("receive netlink datagram", errno: ENOBUFS)
            }
        }
        let socket = NetlinkSocket(transport: Overrun())
        let error = #expect(throws: NetlinkError.self) { try socket.execute("set eth0 up", type: UInt16(RTM_NEWLINK)) { _ in } }
        #expect(error?.operation == "set eth0 up" && error?.errno == ENOBUFS)
    }
}
