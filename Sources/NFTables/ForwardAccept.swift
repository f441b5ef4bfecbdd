#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// Accept rules for the cluster's pod traffic in the node's iptables `FORWARD` chain, as
/// iptables-nft keeps it in nftables (`table ip filter`, `table ip6 filter`, chain `FORWARD`).
///
/// A node whose FORWARD policy is DROP (Docker sets it; some distributions ship it) drops routed
/// pod traffic: pod to another node's pod, and pod to the outside. In nftables every base chain
/// on a hook must accept a packet, so an accept in a table of our own cannot undo that chain's
/// drop: the accept has to be in that chain. Per pod CIDR, two rules, appended (rules others
/// insert at the top, such as kube-proxy's and network policies', still come first):
///
///     -A FORWARD -s 10.244.0.0/16 -m comment --comment "bridge-ipam: pod traffic from 10.244.0.0/16" -j ACCEPT
///     -A FORWARD -d 10.244.0.0/16 -m comment --comment "bridge-ipam: pod traffic to 10.244.0.0/16" -j ACCEPT
///
/// encoded expression for expression as iptables-nft 1.8 writes those lines (payload, cmp, the
/// xt `comment` match, counter, accept), so `iptables-nft -S` lists them as above and
/// `iptables-nft-save`/`-restore` (kube-proxy's iptables mode) read and write the table as
/// before. The tables and chains are never created here: when the chain does not exist,
/// nftables drops nothing on that hook for iptables and there is nothing to add. Only rules
/// whose comment starts with `tag` are ever changed.
public struct ForwardAccept {
    public static let tag = "bridge-ipam: pod traffic "
    public static let table = "filter"
    public static let chain = "FORWARD"

    let socket: NetlinkSocket

    /// Opens a netfilter netlink socket in the calling thread's namespace.
    public init() throws(NetlinkError) { socket = try NetlinkSocket(protocol: NETLINK_NETFILTER) }

    /// Speaks through `socket`, a NETLINK_NETFILTER one (tests give one over a fake transport).
    public init(socket: NetlinkSocket) { self.socket = socket }

    /// One accept rule: traffic from or to a pod CIDR.
    public struct Rule: Equatable, Sendable, CustomStringConvertible {
        public enum Direction: Sendable { case from, to }
        public var network: IPNetwork
        public var direction: Direction

        public init(_ direction: Direction, _ network: IPNetwork) {
            self.direction = direction
            self.network = network.masked
        }

        public var comment: String { ForwardAccept.tag + "\(direction == .from ? "from" : "to") \(network)" }

        /// As `iptables-nft -S FORWARD` prints it.
        public var description: String {
            "-A FORWARD \(direction == .from ? "-s" : "-d") \(network) -m comment --comment \"\(comment)\" -j ACCEPT"
        }
    }

    /// The rules for `cidrs`: from and to each.
    public static func rules(for cidrs: [IPNetwork]) -> [Rule] {
        cidrs.flatMap { [Rule(.from, $0), Rule(.to, $0)] }
    }

    /// What one `ensure` found and did in one family.
    public struct Outcome: Equatable, Sendable {
        /// False when iptables-nft's `filter` table or its FORWARD chain does not exist.
        public var chainExists: Bool
        public var added: [Rule]
        public var removed: Int
    }

    /// A rule of the FORWARD chain as listed: its handle and its comment (from an xt `comment`
    /// match, as iptables-nft writes it, or from nftables' own comment, as `nft` writes it).
    struct Listed {
        var handle: UInt64
        var comment: String?
    }

    static func chain(_ family: IPAddress.Family) -> OwnChain {
        OwnChain(
            family: UInt8(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6), keyword: family == .v4 ? "ip" : "ip6", table: table,
            chain: chain, type: "filter", hook: UInt32(NF_INET_FORWARD.rawValue), priority: 0)
    }

    /// The FORWARD chain's rules in `family`; nil when the table or chain does not exist. The
    /// chain is looked up first: a rule dump filtered by a table or chain that does not exist
    /// is not an error, just empty.
    func listed(_ family: IPAddress.Family) throws(NetlinkError) -> [Listed]? {
        let chain = ForwardAccept.chain(family)
        do {
            _ = try socket.get(
                "look up nftables chain \(chain.keyword) filter FORWARD", type: OwnChain.messageType(NFT_MSG_GETCHAIN)
            ) { m in
                m.put(header: OwnChain.header(family: chain.family))
                m.put(UInt16(NFTA_CHAIN_TABLE.rawValue), string: chain.table)
                m.put(UInt16(NFTA_CHAIN_NAME.rawValue), string: chain.chain)
            }
        } catch  where error.errno == ENOENT {
            return nil
        }
        let messages = try socket.dump(
            "list nftables rules of \(chain.keyword) filter FORWARD", type: OwnChain.messageType(NFT_MSG_GETRULE)
        ) { m in
            m.put(header: OwnChain.header(family: chain.family))
            m.put(UInt16(NFTA_RULE_TABLE.rawValue), string: chain.table)
            m.put(UInt16(NFTA_RULE_CHAIN.rawValue), string: chain.chain)
        }
        return messages.compactMap { message in
            guard let handle = message.attributes.u64BigEndian(UInt16(NFTA_RULE_HANDLE.rawValue)) else { return nil }
            return Listed(handle: handle, comment: ForwardAccept.comment(of: message.attributes))
        }
    }

    /// The comment of a listed rule: an xt `comment` match's text, else the rule's user data.
    static func comment(of rule: Attributes) -> String? {
        for element in rule.nested(UInt16(NFTA_RULE_EXPRESSIONS.rawValue))?.nestedEach(UInt16(NFTA_LIST_ELEM.rawValue)) ?? [] {
            guard element.string(UInt16(NFTA_EXPR_NAME.rawValue)) == "match",
                let data = element.nested(UInt16(NFTA_EXPR_DATA.rawValue)),
                data.string(UInt16(NFTA_MATCH_NAME.rawValue)) == "comment",
                let info = data[UInt16(NFTA_MATCH_INFO.rawValue)]
            else { continue }
            return String(decoding: info.prefix { $0 != 0 }, as: UTF8.self)
        }
        return rule[UInt16(NFTA_RULE_USERDATA.rawValue)].flatMap(OwnChain.comment(inUserData:))
    }

    /// Whether every rule for `cidrs` is in place (families whose chain does not exist count as
    /// in place: nothing drops there). Two requests per family: the chain, its rules.
    public func isPresent(_ cidrs: [IPNetwork]) throws(NetlinkError) -> Bool {
        for family in [IPAddress.Family.v4, .v6] {
            let wanted = ForwardAccept.rules(for: cidrs).filter { $0.network.address.family == family }
            guard !wanted.isEmpty, let listed = try listed(family) else { continue }
            let comments = Set(listed.compactMap(\.comment))
            if wanted.contains(where: { !comments.contains($0.comment) }) { return false }
        }
        return true
    }

    /// Makes each family's FORWARD chain hold exactly the rules for `cidrs` among ours: missing
    /// ones appended, ours for other CIDRs (and duplicates) removed, in one transaction per
    /// family, and none when all is in place (a chain look-up and a listing per family). Families with no CIDR
    /// lose our rules.
    public func ensure(_ cidrs: [IPNetwork]) throws(NetlinkError) -> [IPAddress.Family: Outcome] {
        var outcomes: [IPAddress.Family: Outcome] = [:]
        for family in [IPAddress.Family.v4, .v6] {
            let wanted = ForwardAccept.rules(for: cidrs).filter { $0.network.address.family == family }
            guard let listed = try listed(family) else {
                outcomes[family] = Outcome(chainExists: false, added: [], removed: 0)
                continue
            }
            var seen: Set<String> = []
            var stale: [UInt64] = []
            for rule in listed {
                guard let comment = rule.comment, comment.hasPrefix(ForwardAccept.tag) else { continue }
                if wanted.contains(where: { $0.comment == comment }) && seen.insert(comment).inserted { continue }
                stale.append(rule.handle)
            }
            let missing = wanted.filter { !seen.contains($0.comment) }
            outcomes[family] = Outcome(chainExists: true, added: missing, removed: stale.count)
            guard !missing.isEmpty || !stale.isEmpty else { continue }
            let chain = ForwardAccept.chain(family)
            try OwnChain.transaction("accept pod traffic in \(chain.keyword) filter FORWARD", through: socket) { batch in
                for handle in stale { chain.deleteRule(handle: handle, to: &batch) }
                for rule in missing { ForwardAccept.add(rule, to: chain, batch: &batch) }
            }
        }
        return outcomes
    }

    /// Removes every rule of ours from both families' FORWARD chains. Returns how many.
    @discardableResult
    public func removeAll() throws(NetlinkError) -> Int {
        var count = 0
        for family in [IPAddress.Family.v4, .v6] {
            let ours = (try listed(family) ?? []).filter { $0.comment?.hasPrefix(ForwardAccept.tag) == true }
            guard !ours.isEmpty else { continue }
            let chain = ForwardAccept.chain(family)
            try OwnChain.transaction("remove pod traffic accepts from \(chain.keyword) filter FORWARD", through: socket) { batch in
                for rule in ours { chain.deleteRule(handle: rule.handle, to: &batch) }
            }
            count += ours.count
        }
        return count
    }

    /// `-s|-d NETWORK -m comment --comment C -j ACCEPT`, as iptables-nft 1.8 encodes it: a prefix
    /// of whole bytes loads only those bytes (no mask), any other loads the address and masks it.
    static func add(_ rule: Rule, to chain: OwnChain, batch: inout NetlinkSocket.Batch) {
        chain.addRule("append \(rule) (\(chain.keyword))", to: &batch) { r in
            let network = rule.network
            let family = network.address.family
            let offset: UInt32 = family == .v4 ? (rule.direction == .from ? 12 : 16) : (rule.direction == .from ? 8 : 24)
            AddressMatch.match(r, offset: offset, network: network, wholeBytesUnmasked: true)

            // xt_comment_info: the comment in a 256-byte, NUL-padded field. libnftnl keeps this
            // buffer (no copy) and frees it with the expression, so it is malloc'd and handed over.
            let match = nftnl_expr_alloc("match")!
            nftnl_expr_set_str(match, UInt16(NFTNL_EXPR_MT_NAME), "comment")
            nftnl_expr_set_u32(match, UInt16(NFTNL_EXPR_MT_REV), 0)
            let info = calloc(256, 1)!.assumingMemoryBound(to: UInt8.self)
            for (i, byte) in rule.comment.utf8.prefix(255).enumerated() { info[i] = byte }
            _ = nftnl_expr_set(match, UInt16(NFTNL_EXPR_MT_INFO), info, 256)
            nftnl_rule_add_expr(r, match)

            nftnl_rule_add_expr(r, nftnl_expr_alloc("counter"))
            let verdict = nftnl_expr_alloc("immediate")!
            nftnl_expr_set_u32(verdict, UInt16(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
            nftnl_expr_set_u32(verdict, UInt16(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NF_ACCEPT))
            nftnl_rule_add_expr(r, verdict)
        }
    }
}
