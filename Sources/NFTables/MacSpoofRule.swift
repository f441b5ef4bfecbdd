#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// What `macspoofchk` asks of the node for one attachment: frames that enter the bridge from the
/// pod's host veth with any source MAC but the pod interface's are dropped.
///
///     table bridge bridge_ipam {
///         chain macspoof {
///             type filter hook prerouting priority -300; policy accept;
///             iifname "veth1a2b3c4d" ether saddr != 0a:58:0a:f4:01:05 drop comment "bridge-ipam-mac NET 5f0c...";
///         }
///     }
///
/// One rule per attachment, tagged with the network and a digest of (container ID, ifname), so
/// DEL and GC find it without knowing the host veth's name.
public struct MacSpoofRule: Equatable, Sendable {
    public var network: String
    public var hostInterface: String
    public var mac: MACAddress
    public var comment: String

    public init(network: String, containerID: String, ifname: String, hostInterface: String, mac: MACAddress) {
        self.network = network
        self.hostInterface = hostInterface
        self.mac = mac
        self.comment = MacSpoofRule.tag(network: network, containerID: containerID, ifname: ifname)
    }

    /// The prefix of every comment of this network's rules.
    public static func tagPrefix(network: String) -> String { "bridge-ipam-mac \(network) " }

    /// The comment of one attachment's rule: the network and an FNV-1a digest of the attachment
    /// (container IDs can be long; nftables keeps 128 bytes of comment).
    public static func tag(network: String, containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(containerID)\u{0}\(ifname)".utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return tagPrefix(network: network) + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The rule as `nft list ruleset` shows it, for messages.
    public var nftSyntax: String {
        "iifname \"\(hostInterface)\" ether saddr != \(mac) drop comment \"\(comment)\""
    }
}

/// bridge-ipam's bridge-family table, `bridge bridge_ipam`, with the chain `macspoof` that holds
/// the macspoofchk rules, programmed through libnftnl. Separate from the ipMasq table (family
/// ip), so the two features never touch each other's rules. Every change is one transaction.
public final class MacSpoofTable {
    public static let table = "bridge_ipam"
    public static let chain = "macspoof"
    /// Before anything else the bridge does with the frame (nft's "dstnat" slot, as the reference uses).
    static let priority: Int32 = -300
    /// NF_BR_PRE_ROUTING (linux/netfilter_bridge.h).
    static let preRoutingHook: UInt32 = 0

    let socket: NetlinkSocket

    /// A rule of our chain as the kernel lists it.
    public struct ListedRule: Equatable, Sendable {
        public var handle: UInt64
        public var comment: String?
    }

    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER)
    }

    /// Rules of our chain; none when the table or chain does not exist.
    public func rules() throws(NetlinkError) -> [ListedRule] {
        let messages: [NetlinkMessage]
        do {
            messages = try socket.dump(
                "list nftables rules of bridge \(MacSpoofTable.table)", type: MacSpoofTable.messageType(NFT_MSG_GETRULE)
            ) { m in
                m.put(header: MacSpoofTable.header(family: UInt8(NFPROTO_BRIDGE)))
                m.put(UInt16(NFTA_RULE_TABLE.rawValue), string: MacSpoofTable.table)
                m.put(UInt16(NFTA_RULE_CHAIN.rawValue), string: MacSpoofTable.chain)
            }
        } catch  where error.errno == ENOENT {
            return []
        }
        return messages.compactMap { message in
            guard let handle = message.attributes.u64BigEndian(UInt16(NFTA_RULE_HANDLE.rawValue)) else { return nil }
            return ListedRule(
                handle: handle,
                comment: message.attributes[UInt16(NFTA_RULE_USERDATA.rawValue)].flatMap(MacSpoofTable.comment(inUserData:)))
        }
    }

    /// Adds the rule (creating table and chain when missing) in one transaction. Read-free, so
    /// ADD pays one round trip.
    public func add(_ rule: MacSpoofRule) throws(NetlinkError) {
        try transaction("add macspoofchk rule for \(rule.hostInterface)") { batch in
            MacSpoofTable.addTable(to: &batch)
            MacSpoofTable.addChain(to: &batch)
            MacSpoofTable.addRule(rule, to: &batch)
        }
    }

    /// Removes the rules whose comment `shouldRemove` picks; no transaction when there is none.
    /// Returns how many.
    @discardableResult
    public func remove(where shouldRemove: (String) -> Bool) throws(NetlinkError) -> Int {
        let doomed = try rules().filter { $0.comment.map(shouldRemove) ?? false }
        guard !doomed.isEmpty else { return 0 }
        try transaction("remove \(doomed.count) macspoofchk rule(s)") { batch in
            for rule in doomed { MacSpoofTable.deleteRule(handle: rule.handle, to: &batch) }
        }
        return doomed.count
    }

    // MARK: - Messages

    /// One nftables transaction: it must reach the kernel in a single datagram.
    private func transaction(_ operation: String, _ body: (inout NetlinkSocket.Batch) -> Void) throws(NetlinkError) {
        try socket.batch(atomic: true) { batch in
            batch.add("\(operation): begin", type: UInt16(NFNL_MSG_BATCH_BEGIN), acknowledged: false) { m in
                m.put(header: MacSpoofTable.header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
            }
            body(&batch)
            batch.add("\(operation): end", type: UInt16(NFNL_MSG_BATCH_END), acknowledged: false) { m in
                m.put(header: MacSpoofTable.header(family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES)))
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
        batch.add("create table bridge \(table)", type: messageType(NFT_MSG_NEWTABLE), flags: NLM_F_CREATE) { m in
            m.put(header: header(family: UInt8(NFPROTO_BRIDGE)))
            m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: table)
        }
    }

    private static func addChain(to batch: inout NetlinkSocket.Batch) {
        batch.add("create chain \(chain)", type: messageType(NFT_MSG_NEWCHAIN), flags: NLM_F_CREATE) { m in
            m.put(header: header(family: UInt8(NFPROTO_BRIDGE)))
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), chain)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TYPE.rawValue), "filter")
            nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), preRoutingHook)
            nftnl_chain_set_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue), priority)
            m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
        }
    }

    private static func deleteRule(handle: UInt64, to batch: inout NetlinkSocket.Batch) {
        batch.add("delete rule \(handle)", type: messageType(NFT_MSG_DELRULE)) { m in
            m.put(header: header(family: UInt8(NFPROTO_BRIDGE)))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            nftnl_rule_set_u64(r, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    /// meta iifname -> cmp eq NAME; payload ether saddr -> cmp neq MAC; immediate drop.
    private static func addRule(_ rule: MacSpoofRule, to batch: inout NetlinkSocket.Batch) {
        batch.add("add rule \(rule.nftSyntax)", type: messageType(NFT_MSG_NEWRULE), flags: NLM_F_CREATE | NLM_F_APPEND) { m in
            m.put(header: header(family: UInt8(NFPROTO_BRIDGE)))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_u32(r, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(NFPROTO_BRIDGE))
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)

            let meta = nftnl_expr_alloc("meta")!
            nftnl_expr_set_u32(meta, UInt16(NFTNL_EXPR_META_KEY), UInt32(NFT_META_IIFNAME.rawValue))
            nftnl_expr_set_u32(meta, UInt16(NFTNL_EXPR_META_DREG), UInt32(NFT_REG_1.rawValue))
            nftnl_rule_add_expr(r, meta)
            // Interface names compare as IFNAMSIZ bytes, zero-padded (as nft does for an exact name).
            var name = Array(rule.hostInterface.utf8.prefix(Int(IFNAMSIZ) - 1))
            name += [UInt8](repeating: 0, count: Int(IFNAMSIZ) - name.count)
            addCompare(r, data: name, equal: true)

            let payload = nftnl_expr_alloc("payload")!
            nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_DREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_LL_HEADER.rawValue))
            nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), 6)  // source MAC
            nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_LEN), 6)
            nftnl_rule_add_expr(r, payload)
            addCompare(r, data: rule.mac.bytes, equal: false)

            let verdict = nftnl_expr_alloc("immediate")!
            nftnl_expr_set_u32(verdict, UInt16(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
            nftnl_expr_set_u32(verdict, UInt16(NFTNL_EXPR_IMM_VERDICT), UInt32(NF_DROP))
            nftnl_rule_add_expr(r, verdict)

            let userData = nftnl_udata_buf_alloc(UInt32(NFT_USERDATA_MAXLEN))!
            defer { nftnl_udata_buf_free(userData) }
            _ = nftnl_udata_put_strz(userData, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), rule.comment)
            nftnl_rule_set_data(r, UInt16(NFTNL_RULE_USERDATA.rawValue), nftnl_udata_buf_data(userData), nftnl_udata_buf_len(userData))
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    private static func addCompare(_ rule: OpaquePointer, data: [UInt8], equal: Bool) {
        let cmp = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_OP), UInt32((equal ? NFT_CMP_EQ : NFT_CMP_NEQ).rawValue))
        data.withUnsafeBytes { _ = nftnl_expr_set(cmp, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        nftnl_rule_add_expr(rule, cmp)
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
