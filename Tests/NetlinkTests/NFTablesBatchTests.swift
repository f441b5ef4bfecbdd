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

    /// The node agent's masquerade rule excludes every node's address, and libnftnl writes a
    /// set's elements without checking room: `ensure` must refuse a rule whose set would not fit
    /// one datagram (E2BIG, nothing built or sent) and send every rule that fits.
    @Test(arguments: [IPAddress.Family.v4, .v6])
    func anExclusionSetTooLargeForOneDatagramIsRefusedBeforeItIsBuilt(family: IPAddress.Family) throws {
        func attempt(_ nodes: Int) -> (sent: [[UInt8]], error: NetlinkError?) {
            let fake = kernel { Kernel.acknowledge($0) }
            let tables = NFTables(
                socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500), table: "bridge_ipam_agent")
            let cluster = IPNetwork(cidr: family == .v4 ? "10.244.0.0/16" : "fd00:10:244::/56")!
            let base: IPAddress = family == .v4 ? .v4(0xC0A8_0000) : IPAddress("fd00:192:168::")!
            let hosts = (0..<nodes).map { IPNetwork(address: base.advanced(by: 2 * $0)!, prefixLength: base.bitWidth)! }
            let rule = MasqueradeRule(network: "cluster", family: family, sources: [cluster], excluded: [cluster] + hosts)
            do throws(NetlinkError) { _ = try tables.ensure([rule]) } catch { return (fake.sent, error) }
            return (fake.sent, nil)
        }
        // The largest node count accepted, found by bisection (each attempt is cheap).
        var low = 1
        var high = 5000
        while low < high {
            let middle = (low + high + 1) / 2
            if attempt(middle).error == nil { low = middle } else { high = middle - 1 }
        }
        #expect(low >= (family == .v4 ? 1500 : 900), "\(low) non-adjacent node addresses fit")
        let largest = attempt(low)
        #expect(largest.sent.count == 2 && largest.sent[1].count <= NetlinkSocket.maximumMessageSize, "one datagram of at most 64 KiB")
        let refused = attempt(low + 1)
        #expect(refused.error?.errno == E2BIG)
        #expect(refused.sent.count == 1, "only the listing: nothing of the transaction was built or sent")
        let huge = attempt(20000)
        #expect(huge.error?.errno == E2BIG, "far past the limit: refused, not written past the buffer")
    }

    /// With a named exclusion set (the agent's table), 5,000 scattered node addresses go in
    /// element messages of a few hundred each, in one transaction; an unchanged rule costs only
    /// the listing; a node joining or leaving sends one element and the rule's replacement.
    @Test(arguments: [IPAddress.Family.v4, .v6])
    func aNamedExclusionSetTakesThousandsOfNodesAndChangesByDifference(family: IPAddress.Family) throws {
        final class Listed { var comment: String? }
        let listed = Listed()
        let fake = FakeTransport { datagram, _ in
            let request = Wire.messages(datagram)[0]
            guard request.type == nftablesSubsystem << 8 | 7 else { return Kernel.acknowledge(datagram) }  // GETRULE
            guard let comment = listed.comment else { return [Kernel.error(request, errno: ENOENT)] }
            let userData = [0, UInt8(comment.utf8.count + 1)] + Array(comment.utf8) + [0]  // comment TLV
            let rule = Wire.message(
                type: request.type, flags: UInt16(NLM_F_MULTI), sequence: request.sequence, port: Kernel.port,
                [family == .v4 ? ipv4 : 10, 0, 0, 0] + Wire.attribute(3, [0, 0, 0, 0, 0, 0, 0, 9]) + Wire.attribute(7, userData))
            return [rule, Kernel.done(sequence: request.sequence)]
        }
        let tables = NFTables(
            socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500), table: "bridge_ipam_agent",
            exclusionSet: "excluded")
        let cluster = IPNetwork(cidr: family == .v4 ? "10.244.0.0/16" : "fd00:10:244::/56")!
        let base: IPAddress = family == .v4 ? .v4(0xC0A8_0000) : IPAddress("fd00:192:168::")!
        func rule(_ nodes: [Int]) -> MasqueradeRule {
            let hosts = nodes.map { IPNetwork(address: base.advanced(by: 3 * $0)!, prefixLength: base.bitWidth)! }
            return MasqueradeRule(network: "cluster", family: family, sources: [cluster], excluded: [cluster] + hosts)
        }
        func types(_ datagram: [UInt8]) -> [UInt16] {
            Wire.messages(datagram).dropFirst().dropLast().map { $0.type & 0xff }
        }
        let (newTable, newRule, delRule, newSet, newElements, delElements): (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (
            0, 6, 8, 9, 12, 14
        )

        let all = rule(Array(0..<5000))
        #expect(try tables.ensure([all]))
        #expect(fake.sent.count == 2, "the listing, then one transaction in one datagram")
        let first = types(fake.sent[1])
        #expect(fake.sent[1].count > NetlinkSocket.maximumMessageSize, "larger than one message: \(fake.sent[1].count) bytes")
        #expect(first.filter { $0 == newTable }.count == 1 && first.filter { $0 == newSet }.count == 1)
        #expect(first.filter { $0 == delElements }.count == 1, "the set is emptied (a flush) before it is filled")
        #expect(first.filter { $0 == newElements }.count == (5001 + 249) / 250, "250 intervals a message")
        #expect(first.filter { $0 == newRule }.count == 1 && !first.contains(delRule))

        listed.comment = all.comment(exclusionSet: "excluded")
        #expect(try !tables.ensure([all]))
        #expect(fake.sent.count == 3, "unchanged: the listing only")

        let joined = rule(Array(0..<5001))
        #expect(try tables.ensure([joined]))
        #expect(types(fake.sent[4]) == [newElements, delRule, newRule], "a node joins: one element, the rule replaced")
        #expect(fake.sent[4].count < 1024)

        listed.comment = joined.comment(exclusionSet: "excluded")
        #expect(try tables.ensure([rule(Array(1..<5001))]))
        #expect(types(fake.sent[6]) == [delElements, delRule, newRule], "a node leaves: one element deleted")
        #expect(Wire.messages(fake.sent[6]).allSatisfy { $0.bytes.count <= NetlinkSocket.maximumMessageSize })
    }

    @Test func aFailedCommitReportedOnTheBatchHeaderEndsTheWait() {
        // When the commit fails, the kernel reports it against the batch's first message.
        let fake = kernel { [Kernel.error(Wire.messages($0)[0], errno: ENOMEM)] }
        let tables = NFTables(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500))
        let error = #expect(throws: NetlinkError.self) { try tables.ensure([rule]) }
        #expect(error?.errno == ENOMEM)
    }
}
