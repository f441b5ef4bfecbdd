#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNetlinkShim
import Addresses
import NFTables
@testable import Netlink

// From linux/netfilter/nfnetlink.h and netfilter.h, written out.
private let batchBegin: UInt16 = 0x10  // NFNL_MSG_BATCH_BEGIN
private let batchEnd: UInt16 = 0x11  // NFNL_MSG_BATCH_END
private let nftablesSubsystem: UInt16 = 10  // NFNL_SUBSYS_NFTABLES
private let ipv4: UInt8 = 2  // NFPROTO_IPV4

/// The framing of an nftables transaction (its rules' content is NFTables' own business).
@Suite struct NFTablesBatchTests {
    /// The rule listing finds no table (ENOENT), so `ensure` sends a transaction.
    private func kernel(transaction: @escaping ([UInt8]) -> [[UInt8]]) -> FakeTransport {
        FakeTransport { datagram, index in
            if index == 0 { return [Kernel.error(Wire.messages(datagram)[0], errno: ENOENT)] }
            return transaction(datagram)
        }
    }

    private let rule = MasqueradeRule(
        network: "podnet", family: .v4, sources: [IPNetwork(cidr: "10.244.1.0/24")!], excluded: [IPNetwork(cidr: "10.244.0.0/16")!])

    @Test func aTransactionIsOneDatagramFramedByBeginAndEnd() throws {
        let fake = kernel { Kernel.acknowledge($0) }
        let tables = NFTables(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500))
        #expect(try tables.ensure([rule]))
        #expect(fake.sent.count == 2, "the listing, then the whole transaction in one datagram")
        let messages = Wire.messages(fake.sent[1])
        let begin = messages.first!
        let end = messages.last!
        // nfgenmsg: family AF_UNSPEC, version 0, res_id NFNL_SUBSYS_NFTABLES in network order.
        #expect(begin.bytes == Wire.message(type: batchBegin, flags: UInt16(NLM_F_REQUEST), sequence: begin.sequence, [0, 0, 0, 10]))
        #expect(end.bytes == Wire.message(type: batchEnd, flags: UInt16(NLM_F_REQUEST), sequence: end.sequence, [0, 0, 0, 10]))
        let inner = messages.dropFirst().dropLast()
        #expect(inner.count >= 5, "table, chain, the exclusion set, its elements and the rule")
        #expect(inner.allSatisfy { $0.type >> 8 == nftablesSubsystem && $0.payload.first == ipv4 })
        #expect(inner.dropLast().allSatisfy { $0.flags & UInt16(NLM_F_ACK) == 0 })
        #expect(inner.last!.flags & UInt16(NLM_F_ACK) != 0, "the last change asks for the ack that ends the transaction")
        #expect(messages.map(\.sequence) == Array(messages[0].sequence..<(messages[0].sequence + UInt32(messages.count))))
    }

    @Test func aFailedCommitReportedOnTheBatchHeaderEndsTheWait() {
        // When the commit fails, the kernel reports it against the batch's first message.
        let fake = kernel { [Kernel.error(Wire.messages($0)[0], errno: ENOMEM)] }
        let tables = NFTables(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500))
        let error = #expect(throws: NetlinkError.self) { try tables.ensure([rule]) }
        #expect(error?.errno == ENOMEM)
    }
}
