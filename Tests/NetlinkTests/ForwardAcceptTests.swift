#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNetlinkShim
import CNFTNL
import Addresses
@testable import NFTables
@testable import Netlink

private func net(_ s: String) -> IPNetwork { IPNetwork(cidr: s)! }

/// The FORWARD accepts' listing and transactions against a fake kernel (their encoding is
/// checked against iptables-nft itself in Tests/integration/test-services.sh).
@Suite struct ForwardAcceptTests {
    /// A rule of `ip filter FORWARD` as the kernel lists it, with an xt comment match.
    private func listedRule(sequence: UInt32, handle: UInt64, comment: String) -> [UInt8] {
        var info = Array(comment.utf8)
        info += [UInt8](repeating: 0, count: 256 - info.count)
        let expressions = Wire.nest(
            UInt16(NFTA_RULE_EXPRESSIONS.rawValue),
            Wire.nest(
                UInt16(NFTA_LIST_ELEM.rawValue), Wire.attribute(UInt16(NFTA_EXPR_NAME.rawValue), string: "counter")),
            Wire.nest(
                UInt16(NFTA_LIST_ELEM.rawValue), Wire.attribute(UInt16(NFTA_EXPR_NAME.rawValue), string: "match"),
                Wire.nest(
                    UInt16(NFTA_EXPR_DATA.rawValue), Wire.attribute(UInt16(NFTA_MATCH_NAME.rawValue), string: "comment"),
                    Wire.attribute(UInt16(NFTA_MATCH_REV.rawValue), u32: 0), Wire.attribute(UInt16(NFTA_MATCH_INFO.rawValue), info))))
        let handleBytes = (0..<8).map { UInt8(truncatingIfNeeded: handle >> (56 - 8 * UInt64($0))) }
        return Wire.message(
            type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_NEWRULE.rawValue), flags: UInt16(NLM_F_MULTI),
            sequence: sequence, port: Kernel.port,
            [2, 0, 0, 0] + Wire.attribute(UInt16(NFTA_RULE_HANDLE.rawValue), handleBytes) + expressions)
    }

    /// IPv6 has no `ip6 filter` table in these tests: its chain look-up is ENOENT. IPv4's chain
    /// exists: its look-up is answered with the chain.
    private func chainLookUp(_ datagram: [UInt8]) -> [[UInt8]]? {
        let first = Wire.messages(datagram)[0]
        if first.payload.first == UInt8(NFPROTO_IPV6) { return [Kernel.error(first, errno: ENOENT)] }
        guard first.type & 0xff == UInt16(NFT_MSG_GETCHAIN.rawValue) else { return nil }
        return [
            Wire.message(
                type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_NEWCHAIN.rawValue), flags: 0, sequence: first.sequence,
                port: Kernel.port, [2, 0, 0, 0] + Wire.attribute(UInt16(NFTA_CHAIN_NAME.rawValue), string: "FORWARD"))
        ]
    }

    private func socket(_ fake: FakeTransport) -> NetlinkSocket {
        NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 500)
    }

    @Test func noIptablesNftChainMeansNothingIsAddedOrCreated() throws {
        let fake = FakeTransport { datagram, _ in [Kernel.error(Wire.messages(datagram)[0], errno: ENOENT)] }
        let outcomes = try ForwardAccept(socket: socket(fake)).ensure([net("10.244.0.0/16"), net("fd00:10:244::/56")])
        #expect(outcomes[.v4] == ForwardAccept.Outcome(chainExists: false, added: [], removed: 0))
        #expect(outcomes[.v6]?.chainExists == false)
        #expect(fake.sent.count == 2, "one chain look-up per family, no listing, no transaction")
    }

    @Test func missingRulesAreAppendedInOneTransaction() throws {
        let fake = FakeTransport { [self] datagram, index in
            if let answer = chainLookUp(datagram) { return answer }
            let first = Wire.messages(datagram)[0]
            if index == 1 { return [Kernel.done(sequence: first.sequence)] }  // ip filter FORWARD, empty
            return Kernel.acknowledge(datagram)
        }
        let outcomes = try ForwardAccept(socket: socket(fake)).ensure([net("10.244.0.0/16")])
        #expect(
            outcomes[.v4]?.added.map(\.description) == [
                #"-A FORWARD -s 10.244.0.0/16 -m comment --comment "bridge-ipam: pod traffic from 10.244.0.0/16" -j ACCEPT"#,
                #"-A FORWARD -d 10.244.0.0/16 -m comment --comment "bridge-ipam: pod traffic to 10.244.0.0/16" -j ACCEPT"#,
            ])
        #expect(fake.sent.count == 4, "the v4 chain and its rules, the transaction, the v6 chain (ours there would go)")
        let rules = Wire.messages(fake.sent[2]).filter { $0.type & 0xff == UInt16(NFT_MSG_NEWRULE.rawValue) }
        #expect(rules.count == 2)
        #expect(rules.allSatisfy { $0.flags & UInt16(NLM_F_APPEND | NLM_F_CREATE) == UInt16(NLM_F_APPEND | NLM_F_CREATE) })
        #expect(
            rules.allSatisfy { rule in
                let text = String(decoding: rule.payload.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                return text.contains("filter") && text.contains("FORWARD") && text.contains("bridge-ipam: pod traffic")
            })
        #expect(
            Wire.messages(fake.sent[2]).allSatisfy {
                $0.type & 0xff != UInt16(NFT_MSG_NEWTABLE.rawValue) && $0.type & 0xff != UInt16(NFT_MSG_NEWCHAIN.rawValue)
            }, "no table or chain is created")
    }

    @Test func rulesInPlaceCostOneListingAndForeignOnesAreLeftAlone() throws {
        let fake = FakeTransport { [self] datagram, _ in
            if let answer = chainLookUp(datagram) { return answer }
            let s = Wire.messages(datagram)[0].sequence
            return [
                listedRule(sequence: s, handle: 3, comment: "someone else"),
                listedRule(sequence: s, handle: 4, comment: "bridge-ipam: pod traffic from 10.244.0.0/16"),
                listedRule(sequence: s, handle: 5, comment: "bridge-ipam: pod traffic to 10.244.0.0/16"),
                Kernel.done(sequence: s),
            ]
        }
        let accept = ForwardAccept(socket: socket(fake))
        #expect(try accept.isPresent([net("10.244.0.0/16")]))
        let outcomes = try accept.ensure([net("10.244.0.0/16")])
        #expect(outcomes[.v4] == ForwardAccept.Outcome(chainExists: true, added: [], removed: 0))
        #expect(fake.sent.count == 5, "isPresent: the v4 chain and rules; ensure: those and the v6 chain; no transaction")
    }

    @Test func anOutdatedRuleOfOursIsDeletedByHandle() throws {
        let fake = FakeTransport { [self] datagram, index in
            if let answer = chainLookUp(datagram) { return answer }
            let s = Wire.messages(datagram)[0].sequence
            if index > 1 { return Kernel.acknowledge(datagram) }
            return [
                listedRule(sequence: s, handle: 7, comment: "bridge-ipam: pod traffic from 10.99.0.0/16"),
                listedRule(sequence: s, handle: 8, comment: "someone else"),
                Kernel.done(sequence: s),
            ]
        }
        let outcomes = try ForwardAccept(socket: socket(fake)).ensure([net("10.244.0.0/16")])
        #expect(outcomes[.v4]?.removed == 1)
        #expect(outcomes[.v4]?.added.count == 2)
        let deletes = Wire.messages(fake.sent[2]).filter { $0.type & 0xff == UInt16(NFT_MSG_DELRULE.rawValue) }
        #expect(deletes.count == 1)
    }
}
