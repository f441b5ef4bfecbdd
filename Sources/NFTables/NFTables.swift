#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// bridge-ipam's own nftables table, `ip bridge_ipam`, with one NAT chain, `postrouting`,
/// programmed through libnftnl over a netfilter netlink socket. Tables that are not ours are
/// never read or changed. Every change is one nftables transaction (batch), so it applies whole
/// or not at all.
public final class NFTables {
    public static let table = "bridge_ipam"
    public static let chain = "postrouting"

    let socket: NetlinkSocket

    /// A rule of our chain as the kernel lists it.
    public struct ListedRule: Equatable, Sendable {
        public var handle: UInt64
        public var comment: String?
    }

    /// Opens a netfilter netlink socket in the calling thread's namespace.
    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER)
    }

    /// Speaks through `socket`, a NETLINK_NETFILTER one (tests give one over a fake transport).
    public init(socket: NetlinkSocket) {
        self.socket = socket
    }

    /// Rules of our chain; none when the table or chain does not exist.
    public func rules() throws(NetlinkError) -> [ListedRule] {
        let messages: [NetlinkMessage]
        do {
            messages = try socket.dump("list nftables rules of \(NFTables.table)", type: NFTables.messageType(NFT_MSG_GETRULE)) { m in
                m.put(header: NFTables.header(family: UInt8(NFPROTO_IPV4)))
                m.put(UInt16(NFTA_RULE_TABLE.rawValue), string: NFTables.table)
                m.put(UInt16(NFTA_RULE_CHAIN.rawValue), string: NFTables.chain)
            }
        } catch where error.errno == ENOENT {
            return []
        }
        return messages.compactMap { message in
            guard let handle = message.attributes.u64BigEndian(UInt16(NFTA_RULE_HANDLE.rawValue)) else { return nil }
            return ListedRule(handle: handle, comment: message.attributes[UInt16(NFTA_RULE_USERDATA.rawValue)].flatMap(NFTables.comment(inUserData:)))
        }
    }

    /// Whether our chain holds exactly `rule` (one current rule per source).
    public func contains(_ rule: MasqueradeRule) throws(NetlinkError) -> Bool {
        let mine = try rules(of: rule.network)
        return mine.count == rule.sources.count && mine.allSatisfy { $0.comment == rule.comment }
    }

    /// Makes our chain hold `rule`, replacing this network's outdated rules, in one transaction;
    /// no transaction at all when it is already there. Returns whether anything changed.
    @discardableResult
    public func ensure(_ rule: MasqueradeRule) throws(NetlinkError) -> Bool {
        let mine = try rules(of: rule.network)
        if mine.count == rule.sources.count && mine.allSatisfy({ $0.comment == rule.comment }) { return false }
        try transaction("set masquerade rules of \(rule.network)") { batch in
            NFTables.addTable(to: &batch)
            NFTables.addChain(to: &batch)
            for old in mine { NFTables.deleteRule(handle: old.handle, to: &batch) }
            for source in rule.sources { NFTables.addRule(rule, source: source, to: &batch) }
        }
        return true
    }

    private func rules(of network: String) throws(NetlinkError) -> [ListedRule] {
        let prefix = MasqueradeRule.tagPrefix(network: network)
        return try rules().filter { $0.comment?.hasPrefix(prefix) == true }
    }

    /// Removes every rule of `network`; no transaction when there is none. Returns how many.
    @discardableResult
    public func remove(network: String) throws(NetlinkError) -> Int {
        let mine = try rules(of: network)
        guard !mine.isEmpty else { return 0 }
        try transaction("remove masquerade rules of \(network)") { batch in
            for rule in mine { NFTables.deleteRule(handle: rule.handle, to: &batch) }
        }
        return mine.count
    }

    // MARK: - Messages

    /// One nftables transaction: it must reach the kernel in a single datagram.
    private func transaction(_ operation: String, _ body: (inout NetlinkSocket.Batch) -> Void) throws(NetlinkError) {
        try socket.batch(atomic: true) { batch in
            batch.add("\(operation): begin", type: UInt16(NFNL_MSG_BATCH_BEGIN), acknowledged: false) { m in
                m.put(header: NFTables.header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
            }
            body(&batch)
            batch.add("\(operation): end", type: UInt16(NFNL_MSG_BATCH_END), acknowledged: false) { m in
                m.put(header: NFTables.header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
            }
        }
    }

    static func messageType(_ message: nf_tables_msg_types) -> UInt16 {
        UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(message.rawValue)
    }

    static func header(family: UInt8, resourceID: UInt16 = 0) -> nfgenmsg {
        nfgenmsg(nfgen_family: family, version: UInt8(NFNETLINK_V0), res_id: resourceID.bigEndian)
    }

    private static func addTable(to batch: inout NetlinkSocket.Batch) {
        batch.add("create table ip \(table)", type: messageType(NFT_MSG_NEWTABLE), flags: NLM_F_CREATE) { m in
            m.put(header: header(family: UInt8(NFPROTO_IPV4)))
            m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: table)
        }
    }

    private static func addChain(to batch: inout NetlinkSocket.Batch) {
        batch.add("create chain \(chain)", type: messageType(NFT_MSG_NEWCHAIN), flags: NLM_F_CREATE) { m in
            m.put(header: header(family: UInt8(NFPROTO_IPV4)))
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), chain)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TYPE.rawValue), "nat")
            nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), UInt32(NF_INET_POST_ROUTING.rawValue))
            nftnl_chain_set_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue), 100)  // srcnat
            m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
        }
    }

    private static func deleteRule(handle: UInt64, to batch: inout NetlinkSocket.Batch) {
        batch.add("delete rule \(handle)", type: messageType(NFT_MSG_DELRULE)) { m in
            m.put(header: header(family: UInt8(NFPROTO_IPV4)))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            nftnl_rule_set_u64(r, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    /// `ip saddr SOURCE [ip daddr != EXCLUDED]... masquerade comment TAG`
    private static func addRule(_ rule: MasqueradeRule, source: IPNetwork, to batch: inout NetlinkSocket.Batch) {
        batch.add("add rule \(rule.nftSyntax(source: source))", type: messageType(NFT_MSG_NEWRULE), flags: NLM_F_CREATE | NLM_F_APPEND) { m in
            m.put(header: header(family: UInt8(NFPROTO_IPV4)))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_u32(r, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(NFPROTO_IPV4))
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            matchAddress(r, offset: 12, network: source, equal: true)  // ip saddr
            for excluded in rule.excluded { matchAddress(r, offset: 16, network: excluded, equal: false) }  // ip daddr
            nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"))
            let userData = nftnl_udata_buf_alloc(UInt32(NFT_USERDATA_MAXLEN))!
            defer { nftnl_udata_buf_free(userData) }
            _ = nftnl_udata_put_strz(userData, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), rule.comment)
            nftnl_rule_set_data(r, UInt16(NFTNL_RULE_USERDATA.rawValue), nftnl_udata_buf_data(userData), nftnl_udata_buf_len(userData))
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    /// payload (4 bytes of the IPv4 header at `offset`) -> bitwise AND prefix mask -> cmp.
    private static func matchAddress(_ rule: OpaquePointer, offset: UInt32, network: IPNetwork, equal: Bool) {
        let payload = nftnl_expr_alloc("payload")!
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue))
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_LEN), 4)
        nftnl_rule_add_expr(rule, payload)

        let mask = IPNetwork(address: .v4(UInt32.max), prefixLength: network.prefixLength)!.network.bytes
        let bitwise = nftnl_expr_alloc("bitwise")!
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_LEN), 4)
        mask.withUnsafeBytes { _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, 4) }
        [UInt8](repeating: 0, count: 4).withUnsafeBytes { _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, 4) }
        nftnl_rule_add_expr(rule, bitwise)

        let cmp = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_OP), UInt32((equal ? NFT_CMP_EQ : NFT_CMP_NEQ).rawValue))
        network.network.bytes.withUnsafeBytes { _ = nftnl_expr_set(cmp, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, 4) }
        nftnl_rule_add_expr(rule, cmp)
    }

    /// The comment in a rule's user data: TLVs of (type: u8, length: u8, value).
    static func comment(inUserData bytes: [UInt8]) -> String? {
        var i = 0
        while i + 2 <= bytes.count {
            let type = bytes[i], length = Int(bytes[i + 1])
            guard i + 2 + length <= bytes.count else { return nil }
            if type == UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue) {
                return String(decoding: bytes[(i + 2)..<(i + 2 + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            i += 2 + length
        }
        return nil
    }
}
