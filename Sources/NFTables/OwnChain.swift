#if canImport(Glibc)
import Glibc
#endif
import CNFTNL
import Netlink

/// A base chain in a table of bridge-ipam's own (`bridge_ipam` in some family), and the
/// nftables messages every feature that keeps rules there needs: list the chain's rules, create
/// the table and chain, delete a rule by handle, and frame a transaction. The ipMasq rules
/// (`ip`/`ip6` tables, NAT chain) and the macspoofchk rules (`bridge` table, filter chain) differ
/// only in these values and in the rules they add.
struct OwnChain {
    /// NFPROTO_* of the table.
    let family: UInt8
    /// The family as nft names it, for messages (`ip`, `ip6`, `bridge`).
    let keyword: String
    let table: String
    let chain: String
    /// The chain's type (`nat`, `filter`), hook and priority.
    let type: String
    let hook: UInt32
    let priority: Int32

    /// The chain's rules; none when the table or chain does not exist.
    func rules(through socket: NetlinkSocket) throws(NetlinkError) -> [ListedRule] {
        let messages: [NetlinkMessage]
        do {
            messages = try socket.dump("list nftables rules of \(keyword) \(table)", type: OwnChain.messageType(NFT_MSG_GETRULE)) { m in
                m.put(header: OwnChain.header(family: family))
                m.put(UInt16(NFTA_RULE_TABLE.rawValue), string: table)
                m.put(UInt16(NFTA_RULE_CHAIN.rawValue), string: chain)
            }
        } catch  where error.errno == ENOENT {
            return []
        }
        return messages.compactMap { message in
            guard let handle = message.attributes.u64BigEndian(UInt16(NFTA_RULE_HANDLE.rawValue)) else { return nil }
            return ListedRule(
                handle: handle, comment: message.attributes[UInt16(NFTA_RULE_USERDATA.rawValue)].flatMap(OwnChain.comment(inUserData:)))
        }
    }

    /// Creates the table and the chain if missing (NLM_F_CREATE without NLM_F_EXCL).
    func addTableAndChain(to batch: inout NetlinkSocket.Batch) {
        batch.add("create table \(keyword) \(table)", type: OwnChain.messageType(NFT_MSG_NEWTABLE), flags: NLM_F_CREATE) { m in
            m.put(header: OwnChain.header(family: family))
            m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: table)
        }
        batch.add("create chain \(keyword) \(table) \(chain)", type: OwnChain.messageType(NFT_MSG_NEWCHAIN), flags: NLM_F_CREATE) { m in
            m.put(header: OwnChain.header(family: family))
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), chain)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TYPE.rawValue), type)
            nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), hook)
            nftnl_chain_set_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue), priority)
            m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
        }
    }

    func deleteRule(handle: UInt64, to batch: inout NetlinkSocket.Batch) {
        batch.add("delete rule \(keyword) \(handle)", type: OwnChain.messageType(NFT_MSG_DELRULE)) { m in
            m.put(header: OwnChain.header(family: family))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            nftnl_rule_set_u64(r, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    /// A new rule of this chain for `body` to fill with expressions; added at the chain's end.
    func addRule(_ operation: String, to batch: inout NetlinkSocket.Batch, _ body: (OpaquePointer) -> Void) {
        batch.add(operation, type: OwnChain.messageType(NFT_MSG_NEWRULE), flags: NLM_F_CREATE | NLM_F_APPEND) { m in
            m.put(header: OwnChain.header(family: family))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_u32(r, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            body(r)
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    /// Tags a rule with `comment` in its user data, where `nft list` shows it and our listing finds it.
    static func setComment(_ comment: String, on rule: OpaquePointer) {
        let userData = nftnl_udata_buf_alloc(UInt32(NFT_USERDATA_MAXLEN))!
        defer { nftnl_udata_buf_free(userData) }
        _ = nftnl_udata_put_strz(userData, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), comment)
        nftnl_rule_set_data(rule, UInt16(NFTNL_RULE_USERDATA.rawValue), nftnl_udata_buf_data(userData), nftnl_udata_buf_len(userData))
    }

    /// One nftables transaction: it must reach the kernel in a single datagram, so it applies
    /// whole or not at all.
    static func transaction(
        _ operation: String, through socket: NetlinkSocket, _ body: (inout NetlinkSocket.Batch) -> Void
    ) throws(NetlinkError) {
        try socket.batch(atomic: true) { batch in
            batch.add("\(operation): begin", type: UInt16(NFNL_MSG_BATCH_BEGIN), acknowledged: false) { m in
                m.put(header: header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
            }
            body(&batch)
            batch.add("\(operation): end", type: UInt16(NFNL_MSG_BATCH_END), acknowledged: false) { m in
                m.put(header: header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
            }
        }
    }

    static func messageType(_ message: nf_tables_msg_types) -> UInt16 {
        UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(message.rawValue)
    }

    static func header(family: UInt8, resourceID: UInt16 = 0) -> nfgenmsg {
        nfgenmsg(nfgen_family: family, version: UInt8(NFNETLINK_V0), res_id: resourceID.bigEndian)
    }

    /// The comment in a rule's user data: TLVs of (type: u8, length: u8, value).
    static func comment(inUserData bytes: [UInt8]) -> String? {
        var i = 0
        while i + 2 <= bytes.count {
            let type = bytes[i]
            let length = Int(bytes[i + 1])
            guard i + 2 + length <= bytes.count else { return nil }
            if type == UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue) {
                return String(decoding: bytes[(i + 2)..<(i + 2 + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            i += 2 + length
        }
        return nil
    }
}

/// A rule of one of our chains as the kernel lists it.
public struct ListedRule: Equatable, Sendable {
    public var handle: UInt64
    public var comment: String?
}
