#if canImport(Glibc)
import Glibc
#endif
import Testing
import CNFTNL
import CNetlinkShim
import Addresses
@testable import NFTables
@testable import Netlink

/// The policy table's transactions, read back through libnftnl's own parser: which objects each
/// one creates, changes and deletes, in which order, and each rule's expressions as `nft -d
/// netlink` prints them for the same rule written in nft syntax.
@Suite struct PolicyTableTests {
    /// One message as libnftnl reads it: "NEWRULE ingress/x/a: [ meta load ... ] ...", "NEWSET name", ...
    static func describe(_ m: WireMessage) -> String {
        let bytes = m.bytes
        let kind = Int(m.type & 0xff)
        return bytes.withUnsafeBytes { raw -> String in
            let header = UnsafeMutableRawPointer(mutating: raw.baseAddress!).assumingMemoryBound(to: nlmsghdr.self)
            switch UInt32(kind) {
            case NFT_MSG_NEWRULE.rawValue, NFT_MSG_DELRULE.rawValue:
                let r = nftnl_rule_alloc()!
                defer { nftnl_rule_free(r) }
                _ = nftnl_rule_nlmsg_parse(header, r)
                var text = [CChar](repeating: 0, count: 4096)
                _ = nftnl_rule_snprintf(&text, text.count, r, NFTNL_OUTPUT_DEFAULT.rawValue, 0)
                let lines = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "\n")
                    .map { $0.trimmingCharacters() }
                let chain = String(cString: nftnl_rule_get_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue)))
                let verb = kind == Int(NFT_MSG_NEWRULE.rawValue) ? "rule" : "flush"
                return "\(verb) \(chain)"
                    + (lines.count > 1 ? ": " + lines.dropFirst().filter { $0.hasPrefix("[") }.joined(separator: " ") : "")
            case NFT_MSG_NEWSET.rawValue, NFT_MSG_DELSET.rawValue:
                let s = nftnl_set_alloc()!
                defer { nftnl_set_free(s) }
                _ = nftnl_set_nlmsg_parse(header, s)
                let name = String(cString: nftnl_set_get_str(s, UInt16(NFTNL_SET_NAME.rawValue)))
                return "\(kind == Int(NFT_MSG_NEWSET.rawValue) ? "set" : "delete set") \(name)"
            case NFT_MSG_NEWSETELEM.rawValue, NFT_MSG_DELSETELEM.rawValue:
                return PolicyTableTests.describeElements(m.payload, delete: kind == Int(NFT_MSG_DELSETELEM.rawValue))
            case NFT_MSG_NEWCHAIN.rawValue, NFT_MSG_DELCHAIN.rawValue:
                let c = nftnl_chain_alloc()!
                defer { nftnl_chain_free(c) }
                _ = nftnl_chain_nlmsg_parse(header, c)
                let name = String(cString: nftnl_chain_get_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue)))
                var hook = ""
                if nftnl_chain_is_set(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue)) {
                    hook =
                        " hook \(nftnl_chain_get_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue))) priority \(nftnl_chain_get_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue)))"
                }
                return "\(kind == Int(NFT_MSG_NEWCHAIN.rawValue) ? "chain" : "delete chain") \(name)\(hook)"
            case NFT_MSG_NEWTABLE.rawValue: return "table"
            case NFT_MSG_DELTABLE.rawValue: return "delete table"
            default: return "batch \(m.type)"
            }
        }
    }

    /// Netlink attributes (type without flag bits, value) of `bytes`.
    static func attributes(_ bytes: ArraySlice<UInt8>) -> [(type: UInt16, value: ArraySlice<UInt8>)] {
        var result: [(UInt16, ArraySlice<UInt8>)] = []
        var i = bytes.startIndex
        while i + 4 <= bytes.endIndex {
            let length = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let type = (UInt16(bytes[i + 2]) | UInt16(bytes[i + 3]) << 8) & 0x3fff
            guard length >= 4, i + length <= bytes.endIndex else { break }
            result.append((type, bytes[(i + 4)..<(i + length)]))
            i += (length + 3) & ~3
        }
        return result
    }

    /// A NEWSETELEM/DELSETELEM payload read attribute by attribute (written from nf_tables.h):
    /// "elements SET a )b c:jump CHAIN", `)` marking an interval end.
    static func describeElements(_ payload: [UInt8], delete: Bool) -> String {
        var name = ""
        var elements: [String] = []
        for (type, value) in attributes(payload[4...]) {
            if type == 2 { name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self) }  // NFTA_SET_ELEM_LIST_SET
            guard type == 3 else { continue }  // NFTA_SET_ELEM_LIST_ELEMENTS
            for (_, element) in attributes(value) {  // NFTA_LIST_ELEM
                var text = ""
                var end = false
                var jump = ""
                for (field, content) in attributes(element) {
                    switch field {
                    case 1:  // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
                        text = "\(IPAddress(bytes: Array(attributes(content)[0].value))!)"
                    case 3:  // NFTA_SET_ELEM_FLAGS, big endian
                        end = content.last! & 1 != 0
                    case 2:  // NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT { CODE, CHAIN } }
                        for (v, verdict) in attributes(attributes(content)[0].value) where v == 2 {
                            jump = ":jump " + String(decoding: verdict.prefix { $0 != 0 }, as: UTF8.self)
                        }
                    default: break
                    }
                }
                elements.append((end ? ")" : "") + text + jump)
            }
        }
        return "\(delete ? "delete elements" : "elements") \(name)" + (elements.isEmpty ? "" : " " + elements.joined(separator: " "))
    }

    static func transaction(_ fake: FakeTransport, _ index: Int) -> [String] {
        Wire.messages(fake.sent[index]).dropFirst().dropLast().map(describe)
    }

    static func net(_ s: String) -> ClosedRange<IPAddress> { IPNetwork(cidr: s)!.network...IPNetwork(cidr: s)!.last }
    static func ip(_ s: String) -> ClosedRange<IPAddress> { IPAddress(s)!...IPAddress(s)! }

    /// x/a (10.244.0.10) admits TCP 80-81 from the set x/p/ingress0/v4, UDP 80 from anyone.
    static var content: PolicyTable.Content {
        var c = PolicyTable.Content()
        c.sets["x/p/ingress0/v4"] = PolicyTable.AddressSet(family: .v4, ranges: [ip("10.244.0.11"), net("192.168.0.0/16")])
        c.chains["ingress/x/a"] = [
            PolicyTable.Rule(peers: ("x/p/ingress0/v4", .v4, .source), proto: 6, ports: 80...81, comment: "x/p ingress[0]"),
            PolicyTable.Rule(proto: 17, ports: 80...80, comment: "x/p ingress[1]"),
        ]
        c.ingress[IPAddress("10.244.0.10")!] = "ingress/x/a"
        return c
    }

    @Test func aFreshTableIsOneTransactionWithEverything() throws {
        let fake = FakeTransport { datagram, index in
            if index == 0 { return [Kernel.error(Wire.messages(datagram)[0], errno: ENOENT)] }  // no table yet
            return Kernel.acknowledge(datagram)
        }
        let table = PolicyTable(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 1))
        try table.replace(with: PolicyTableTests.content)
        #expect(fake.sent.count == 2)
        let messages = PolicyTableTests.transaction(fake, 1)
        let conntrack =
            "[ ct load state => reg 1 ] [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ] [ cmp neq reg 1 0x00000000 ] [ immediate reg 0 accept ]"
        let v4 = "[ meta load nfproto => reg 1 ] [ cmp eq reg 1 0x00000002 ]"
        let v6 = "[ meta load nfproto => reg 1 ] [ cmp eq reg 1 0x0000000a ]"
        let neighbours =
            "\(v6) [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x0000003a ] [ payload load 1b @ transport header + 0 => reg 1 ] [ cmp gte reg 1 0x00000085 ] [ cmp lte reg 1 0x00000089 ] [ immediate reg 0 accept ]"
        #expect(
            messages == [
                "table",
                "set egress_v4", "set egress_v6", "set ingress_v4", "set ingress_v6",
                "chain egress hook 2 priority 0",
                "rule egress: \(conntrack)",
                "rule egress: \(neighbours)",
                "rule egress: \(v4) [ payload load 4b @ network header + 12 => reg 1 ] [ lookup reg 1 set egress_v4 dreg 0 ]",
                "rule egress: \(v6) [ payload load 16b @ network header + 8 => reg 1 ] [ lookup reg 1 set egress_v6 dreg 0 ]",
                "chain egress_to_node hook 1 priority 0",
                "rule egress_to_node: \(conntrack)",
                "rule egress_to_node: \(neighbours)",
                "rule egress_to_node: \(v4) [ payload load 4b @ network header + 12 => reg 1 ] [ lookup reg 1 set egress_v4 dreg 0 ]",
                "rule egress_to_node: \(v6) [ payload load 16b @ network header + 8 => reg 1 ] [ lookup reg 1 set egress_v6 dreg 0 ]",
                "chain ingress hook 2 priority 10",
                "rule ingress: \(conntrack)",
                "rule ingress: \(neighbours)",
                "rule ingress: \(v4) [ payload load 4b @ network header + 16 => reg 1 ] [ lookup reg 1 set ingress_v4 dreg 0 ]",
                "rule ingress: \(v6) [ payload load 16b @ network header + 24 => reg 1 ] [ lookup reg 1 set ingress_v6 dreg 0 ]",
                "set x/p/ingress0/v4",
                // Each range: its first address and, flagged as an end, the one after its last.
                "elements x/p/ingress0/v4 10.244.0.11 )10.244.0.12 192.168.0.0 )192.169.0.0",
                "chain ingress/x/a",
                // As `nft -d netlink` shows `ip saddr @x/p/ingress0/v4 tcp dport 80-81 accept`.
                "rule ingress/x/a: \(v4) [ payload load 4b @ network header + 12 => reg 1 ] [ lookup reg 1 set x/p/ingress0/v4 ] [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000006 ] [ payload load 2b @ transport header + 2 => reg 1 ] [ cmp gte reg 1 0x00005000 ] [ cmp lte reg 1 0x00005100 ] [ immediate reg 0 accept ]",
                "rule ingress/x/a: [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000011 ] [ payload load 2b @ transport header + 2 => reg 1 ] [ cmp eq reg 1 0x00005000 ] [ immediate reg 0 accept ]",
                "rule ingress/x/a: [ immediate reg 0 drop ]",
                "elements ingress_v4 10.244.0.10:jump ingress/x/a",
            ])
    }

    @Test func anExistingTableIsReplacedInTheSameTransaction() throws {
        let fake = FakeTransport()
        fake.respond = { datagram, index in
            // The table exists: the get is answered with a NEWTABLE message and an ack.
            if index == 0 {
                let request = Wire.messages(datagram)[0]
                return [Wire.message(type: request.type, flags: 0, sequence: request.sequence, port: 0, [1, 0, 0, 0])]
            }
            return Kernel.acknowledge(datagram)
        }
        let table = PolicyTable(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 1))
        try table.replace(with: PolicyTable.Content())
        let messages = PolicyTableTests.transaction(fake, 1)
        #expect(Array(messages.prefix(2)) == ["delete table", "table"])
    }

    func applied(_ content: PolicyTable.Content) throws -> (PolicyTable, FakeTransport) {
        let fake = FakeTransport { datagram, index in
            if index == 0 { return [Kernel.error(Wire.messages(datagram)[0], errno: ENOENT)] }
            return Kernel.acknowledge(datagram)
        }
        let table = PolicyTable(socket: NetlinkSocket(transport: fake, protocol: NETLINK_NETFILTER, firstSequence: 1))
        try table.replace(with: content)
        return (table, fake)
    }

    @Test func aPeerThatStartsChangesOneSetElement() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        var next = PolicyTableTests.content
        next.sets["x/p/ingress0/v4"]!.ranges.insert(PolicyTableTests.ip("10.244.1.20"), at: 1)
        #expect(try table.update(to: next) == 1)
        #expect(PolicyTableTests.transaction(fake, 2) == ["elements x/p/ingress0/v4 10.244.1.20 )10.244.1.21"])
        #expect(try table.update(to: next) == 0, "nothing differs: nothing is sent")
        #expect(fake.sent.count == 3)
    }

    @Test func aChangedRangeIsDeletedThenAdded() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        var next = PolicyTableTests.content
        next.sets["x/p/ingress0/v4"]!.ranges = [PolicyTableTests.ip("10.244.0.11"), PolicyTableTests.net("192.168.0.0/15")]
        try table.update(to: next)
        #expect(
            PolicyTableTests.transaction(fake, 2) == [
                "delete elements x/p/ingress0/v4 192.168.0.0 )192.169.0.0", "elements x/p/ingress0/v4 192.168.0.0 )192.170.0.0",
            ])
    }

    @Test func aChangedChainIsFlushedAndRefilled() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        var next = PolicyTableTests.content
        next.chains["ingress/x/a"]!.removeFirst()
        try table.update(to: next)
        #expect(
            PolicyTableTests.transaction(fake, 2) == [
                "flush ingress/x/a",
                "rule ingress/x/a: [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000011 ] [ payload load 2b @ transport header + 2 => reg 1 ] [ cmp eq reg 1 0x00005000 ] [ immediate reg 0 accept ]",
                "rule ingress/x/a: [ immediate reg 0 drop ]",
            ])
    }

    @Test func aPodNoLongerIsolatedLosesItsChainAfterItsMapEntry() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        try table.update(to: PolicyTable.Content())
        #expect(
            PolicyTableTests.transaction(fake, 2) == [
                "delete elements ingress_v4 10.244.0.10:jump ingress/x/a",
                "flush ingress/x/a",
                "delete chain ingress/x/a",
                "delete set x/p/ingress0/v4",
            ])
    }

    @Test func aNewPodGetsItsChainBeforeItsMapEntry() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        var next = PolicyTableTests.content
        next.chains["ingress/x/b"] = [PolicyTable.Rule(peers: ("x/p/ingress0/v4", .v4, .source), comment: "x/p ingress[0]")]
        next.ingress[IPAddress("10.244.0.12")!] = "ingress/x/b"
        try table.update(to: next)
        #expect(
            PolicyTableTests.transaction(fake, 2) == [
                "chain ingress/x/b",
                "rule ingress/x/b: [ meta load nfproto => reg 1 ] [ cmp eq reg 1 0x00000002 ] [ payload load 4b @ network header + 12 => reg 1 ] [ lookup reg 1 set x/p/ingress0/v4 ] [ immediate reg 0 accept ]",
                "rule ingress/x/b: [ immediate reg 0 drop ]",
                "elements ingress_v4 10.244.0.12:jump ingress/x/b",
            ])
    }

    @Test func aFailedUpdateRebuildsTheWholeTableNextTime() throws {
        let (table, fake) = try applied(PolicyTableTests.content)
        fake.respond = { datagram, _ in Kernel.acknowledge(datagram, fail: [1: (EINVAL, "bad")]) }
        var next = PolicyTableTests.content
        next.sets["x/p/ingress0/v4"]!.ranges = []
        #expect(throws: NetlinkError.self) { try table.update(to: next) }
        #expect(table.applied == nil)
        fake.respond = { datagram, index in
            index == 3 ? [Kernel.error(Wire.messages(datagram)[0], errno: ENOENT)] : Kernel.acknowledge(datagram)
        }
        try table.update(to: next)
        #expect(PolicyTableTests.transaction(fake, 4).first == "table", "the whole table again")
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
