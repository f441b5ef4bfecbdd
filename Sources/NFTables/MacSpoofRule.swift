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

    static let ownChain = OwnChain(
        family: UInt8(NFPROTO_BRIDGE), keyword: "bridge", table: table, chain: chain, type: "filter", hook: preRoutingHook,
        priority: priority)

    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER)
    }

    /// Rules of our chain; none when the table or chain does not exist.
    public func rules() throws(NetlinkError) -> [ListedRule] {
        try MacSpoofTable.ownChain.rules(through: socket)
    }

    /// Adds the rule (creating table and chain when missing) in one transaction. Read-free, so
    /// ADD pays one round trip.
    public func add(_ rule: MacSpoofRule) throws(NetlinkError) {
        try transaction("add macspoofchk rule for \(rule.hostInterface)") { batch in
            MacSpoofTable.ownChain.addTableAndChain(to: &batch)
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
            for rule in doomed { MacSpoofTable.ownChain.deleteRule(handle: rule.handle, to: &batch) }
        }
        return doomed.count
    }

    // MARK: - Messages

    private func transaction(_ operation: String, _ body: (inout NetlinkSocket.Batch) -> Void) throws(NetlinkError) {
        try OwnChain.transaction(operation, through: socket, body)
    }

    /// meta iifname -> cmp eq NAME; payload ether saddr -> cmp neq MAC; immediate drop.
    private static func addRule(_ rule: MacSpoofRule, to batch: inout NetlinkSocket.Batch) {
        ownChain.addRule("add rule \(rule.nftSyntax)", to: &batch) { r in

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
            OwnChain.setComment(rule.comment, on: r)
        }
    }

    private static func addCompare(_ rule: OpaquePointer, data: [UInt8], equal: Bool) {
        let cmp = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_OP), UInt32((equal ? NFT_CMP_EQ : NFT_CMP_NEQ).rawValue))
        data.withUnsafeBytes { _ = nftnl_expr_set(cmp, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        nftnl_rule_add_expr(rule, cmp)
    }
}
