#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// NetworkPolicy enforcement's own table, `inet bridge_ipam_policy`, programmed through
/// libnftnl: named interval sets of peer addresses, a regular chain per isolated pod and
/// direction, verdict maps from a local pod's address to its chain, and three base chains that
/// consult the maps (see `PolicyTable.Content`). The node agent hands it the whole wanted
/// content; `update` sends only the difference from what it last applied, as one transaction.
public final class PolicyTable {
    public static let table = "bridge_ipam_policy"
    static let family = UInt8(NFPROTO_INET)

    /// Everything the table holds besides its fixed base chains and maps.
    public struct Content: Equatable, Sendable {
        public var sets: [String: AddressSet] = [:]
        public var chains: [String: [Rule]] = [:]
        /// Local pod address -> the chain its incoming (`ingress`) / outgoing (`egress`) connections jump to.
        public var ingress: [IPAddress: String] = [:]
        public var egress: [IPAddress: String] = [:]
        public init() {}
    }

    public struct AddressSet: Equatable, Sendable {
        public var family: IPAddress.Family
        /// Sorted, non-overlapping, non-adjacent.
        public var ranges: [ClosedRange<IPAddress>]
        public init(family: IPAddress.Family, ranges: [ClosedRange<IPAddress>]) {
            self.family = family
            self.ranges = ranges
        }
    }

    /// `[ip saddr|daddr @peers] [meta l4proto P [th dport A-B]] accept comment "..."`
    public struct Rule: Equatable, Sendable {
        public enum Side: Sendable { case source, destination }
        /// The peer set and which address of the packet it is matched against.
        public var peers: (set: String, family: IPAddress.Family, side: Side)?
        public var proto: UInt8?
        public var ports: ClosedRange<UInt16>?
        public var comment: String
        public init(
            peers: (set: String, family: IPAddress.Family, side: Side)? = nil, proto: UInt8? = nil, ports: ClosedRange<UInt16>? = nil,
            comment: String
        ) {
            self.peers = peers
            self.proto = proto
            self.ports = ports
            self.comment = comment
        }
        public static func == (l: Rule, r: Rule) -> Bool {
            l.peers?.set == r.peers?.set && l.peers?.family == r.peers?.family && l.peers?.side == r.peers?.side && l.proto == r.proto
                && l.ports == r.ports && l.comment == r.comment
        }
    }

    let socket: NetlinkSocket
    /// What the kernel holds, as far as we know: nil until the first `replace`.
    public private(set) var applied: Content?

    /// A netfilter socket in the calling thread's namespace, able to send a transaction of the
    /// whole table at once (a few MiB for thousands of pods).
    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER, sendBuffer: PolicyTable.transactionLimit)
        socket.maximumTransactionSize = PolicyTable.transactionLimit
    }

    public init(socket: NetlinkSocket) {
        self.socket = socket
        socket.maximumTransactionSize = PolicyTable.transactionLimit
    }

    public static let transactionLimit = 32 << 20

    // MARK: - Applying

    /// Replaces the whole table (ours alone) with `content` in one transaction: the old table,
    /// if any, is deleted and the new one built, so there is no moment without enforcement.
    public func replace(with content: Content) throws(NetlinkError) {
        var hadTable = true
        do {
            _ = try socket.get("get table inet \(PolicyTable.table)", type: PolicyTable.type(NFT_MSG_GETTABLE)) { m in
                m.put(header: OwnChain.header(family: PolicyTable.family))
                m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: PolicyTable.table)
            }
        } catch  where error.errno == ENOENT {
            hadTable = false
        }
        try OwnChain.transaction("replace table inet \(PolicyTable.table)", through: socket) { batch in
            if hadTable {
                batch.add("delete table inet \(PolicyTable.table)", type: PolicyTable.type(NFT_MSG_DELTABLE)) { m in
                    m.put(header: OwnChain.header(family: PolicyTable.family))
                    m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: PolicyTable.table)
                }
            }
            PolicyTable.buildSkeleton(&batch)
            PolicyTable.build(from: nil, to: content, &batch)
        }
        applied = content
    }

    /// Changes the table from what was last applied to `content`; the whole table when nothing
    /// was applied yet. Returns the number of messages sent (0: nothing differed).
    @discardableResult
    public func update(to content: Content) throws(NetlinkError) -> Int {
        guard let old = applied else {
            try replace(with: content)
            return -1
        }
        guard old != content else { return 0 }
        var count = 0
        do {
            try OwnChain.transaction("update table inet \(PolicyTable.table)", through: socket) { batch in
                count = PolicyTable.build(from: old, to: content, &batch)
            }
        } catch {
            // What the kernel holds is unknown now: the next call rebuilds the whole table.
            applied = nil
            throw error
        }
        applied = content
        return count
    }

    /// Forgets what was applied, so that the next `update` replaces the whole table.
    public func forget() { applied = nil }

    /// Removes the table (nothing is enforced afterwards). No error when it is not there.
    public func remove() throws(NetlinkError) {
        try OwnChain.transaction("delete table inet \(PolicyTable.table)", through: socket) { batch in
            batch.add("create table inet \(PolicyTable.table)", type: PolicyTable.type(NFT_MSG_NEWTABLE), flags: NLM_F_CREATE) { m in
                m.put(header: OwnChain.header(family: PolicyTable.family))
                m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: PolicyTable.table)
            }
            batch.add("delete table inet \(PolicyTable.table)", type: PolicyTable.type(NFT_MSG_DELTABLE)) { m in
                m.put(header: OwnChain.header(family: PolicyTable.family))
                m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: PolicyTable.table)
            }
        }
        applied = nil
    }

    // MARK: - The fixed part

    static func mapName(_ side: Rule.Side, _ family: IPAddress.Family) -> String {
        "\(side == .destination ? "ingress" : "egress")_\(family == .v4 ? "v4" : "v6")"
    }

    /// The table, the four verdict maps and the base chains:
    /// ```
    /// chain egress  { type filter hook forward priority filter; ct state established,related accept
    ///                 icmpv6 type 133-137 accept; ip saddr vmap @egress_v4; ip6 saddr vmap @egress_v6 }
    /// chain egress_to_node { type filter hook input priority filter; the same }
    /// chain ingress { type filter hook forward priority filter + 10; ct state established,related accept
    ///                 ip daddr vmap @ingress_v4; ip6 daddr vmap @ingress_v6 }
    /// ```
    static func buildSkeleton(_ batch: inout NetlinkSocket.Batch) {
        batch.add("create table inet \(table)", type: type(NFT_MSG_NEWTABLE), flags: NLM_F_CREATE) { m in
            m.put(header: OwnChain.header(family: family))
            m.put(UInt16(NFTA_TABLE_NAME.rawValue), string: table)
        }
        for side in [Rule.Side.source, .destination] {
            for f in [IPAddress.Family.v4, .v6] {
                addSet(mapName(side, f), family: f, map: true, &batch)
            }
        }
        let bases: [(name: String, hook: nf_inet_hooks, priority: Int32, side: Rule.Side)] = [
            ("egress", NF_INET_FORWARD, 0, .source), ("egress_to_node", NF_INET_LOCAL_IN, 0, .source),
            ("ingress", NF_INET_FORWARD, 10, .destination),
        ]
        for base in bases {
            batch.add("create chain inet \(table) \(base.name)", type: type(NFT_MSG_NEWCHAIN), flags: NLM_F_CREATE) { m in
                m.put(header: OwnChain.header(family: family))
                let c = nftnl_chain_alloc()!
                defer { nftnl_chain_free(c) }
                nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
                nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), base.name)
                nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TYPE.rawValue), "filter")
                nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), UInt32(base.hook.rawValue))
                nftnl_chain_set_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue), base.priority)
                nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
                m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
            }
            addRule(chain: base.name, "ct state established,related accept", &batch) { r in
                Expr.ctStateEstablishedOrRelated(r)
                Expr.verdict(r, NF_ACCEPT)
            }
            // IPv6 neighbour discovery is not tracked by conntrack: without this, a pod isolated
            // for ingress would never hear its neighbours' advertisements on the bridge.
            addRule(chain: base.name, "icmpv6 type 133-137 accept (neighbour discovery)", &batch) { r in
                Expr.nfproto(r, .v6)
                Expr.l4proto(r, 58)
                Expr.payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, offset: 0, length: 1)
                Expr.cmp(r, NFT_CMP_GTE, [133])
                Expr.cmp(r, NFT_CMP_LTE, [137])
                Expr.verdict(r, NF_ACCEPT)
            }
            for f in [IPAddress.Family.v4, .v6] {
                let map = mapName(base.side, f)
                addRule(chain: base.name, "\(f == .v4 ? "ip" : "ip6") \(base.side == .source ? "saddr" : "daddr") vmap @\(map)", &batch) {
                    r in
                    Expr.nfproto(r, f)
                    Expr.address(r, f, base.side)
                    Expr.lookup(r, set: map, verdictMap: true)
                }
            }
        }
    }

    // MARK: - Differences

    /// Adds the messages that turn `old` (nothing: a fresh table) into `new`, in an order the
    /// kernel accepts within one transaction: new sets and chains before the rules and map
    /// elements that name them; references dropped before what they referred to is deleted.
    /// Returns how many messages it added.
    @discardableResult
    static func build(from old: Content?, to new: Content, _ batch: inout NetlinkSocket.Batch) -> Int {
        let before = batch.count
        let oldSets = old?.sets ?? [:]
        let oldChains = old?.chains ?? [:]
        // 1. New sets with their elements; changed sets by the ranges that differ.
        for name in new.sets.keys.sorted() {
            let set = new.sets[name]!
            if let previous = oldSets[name], previous.family == set.family {
                guard previous != set else { continue }
                namedSet(name, family: set.family).update(from: previous.ranges, to: set.ranges, &batch)
            } else {
                if oldSets[name] != nil { deleteObject(set: name, &batch) }
                addSet(name, family: set.family, map: false, &batch)
                if !set.ranges.isEmpty { elements(name, set.family, set.ranges, delete: false, &batch) }
            }
        }
        // 2. New chains.
        for name in new.chains.keys.sorted() where oldChains[name] == nil { addChain(name, &batch) }
        // 3. Map entries that go or change.
        for (side, oldMap, newMap) in [
            (Rule.Side.destination, old?.ingress ?? [:], new.ingress), (.source, old?.egress ?? [:], new.egress),
        ] {
            let gone = oldMap.filter { newMap[$0.key] != $0.value }.sorted { $0.key < $1.key }
            if !gone.isEmpty { mapElements(side, gone, delete: true, &batch) }
        }
        // 4. Chains whose rules changed: flushed and refilled; removed chains flushed.
        for name in oldChains.keys.sorted() where new.chains[name] != oldChains[name] { flushChain(name, &batch) }
        for name in new.chains.keys.sorted() where new.chains[name] != oldChains[name] {
            for rule in new.chains[name]! { addRule(rule, chain: name, &batch) }
            addRule(chain: name, "drop", &batch) { Expr.verdict($0, NF_DROP) }
        }
        // 5. Map entries that are new or changed.
        for (side, oldMap, newMap) in [
            (Rule.Side.destination, old?.ingress ?? [:], new.ingress), (.source, old?.egress ?? [:], new.egress),
        ] {
            let added = newMap.filter { oldMap[$0.key] != $0.value }.sorted { $0.key < $1.key }
            if !added.isEmpty { mapElements(side, added, delete: false, &batch) }
        }
        // 6. What nothing refers to any more.
        for name in oldChains.keys.sorted() where new.chains[name] == nil { deleteObject(chain: name, &batch) }
        for name in oldSets.keys.sorted() where new.sets[name] == nil { deleteObject(set: name, &batch) }
        return batch.count - before
    }

    // MARK: - Messages

    static func type(_ message: nf_tables_msg_types) -> UInt16 { OwnChain.messageType(message) }

    static func addChain(_ name: String, _ batch: inout NetlinkSocket.Batch) {
        batch.add("create chain inet \(table) \(name)", type: type(NFT_MSG_NEWCHAIN), flags: NLM_F_CREATE) { m in
            m.put(header: OwnChain.header(family: family))
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), name)
            m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
        }
    }

    /// DELRULE with the chain and no handle removes every rule of the chain.
    static func flushChain(_ name: String, _ batch: inout NetlinkSocket.Batch) {
        batch.add("flush chain inet \(table) \(name)", type: type(NFT_MSG_DELRULE)) { m in
            m.put(header: OwnChain.header(family: family))
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), name)
            m.withHeader { nftnl_rule_nlmsg_build_payload($0, r) }
        }
    }

    static func deleteObject(chain name: String, _ batch: inout NetlinkSocket.Batch) {
        batch.add("delete chain inet \(table) \(name)", type: type(NFT_MSG_DELCHAIN)) { m in
            m.put(header: OwnChain.header(family: family))
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), name)
            m.withHeader { nftnl_chain_nlmsg_build_payload($0, c) }
        }
    }

    static func deleteObject(set name: String, _ batch: inout NetlinkSocket.Batch) {
        batch.add("delete set inet \(table) \(name)", type: type(NFT_MSG_DELSET)) { m in
            m.put(header: OwnChain.header(family: family))
            let s = nftnl_set_alloc()!
            defer { nftnl_set_free(s) }
            nftnl_set_set_str(s, UInt16(NFTNL_SET_TABLE.rawValue), table)
            nftnl_set_set_str(s, UInt16(NFTNL_SET_NAME.rawValue), name)
            m.withHeader { nftnl_set_nlmsg_build_payload($0, s) }
        }
    }

    /// A set or map of this table holding addresses of `f`.
    static func namedSet(_ name: String, family f: IPAddress.Family) -> IntervalSet {
        IntervalSet(table: table, tableFamily: family, keyword: "inet", name: name, family: f)
    }

    static func addSet(_ name: String, family f: IPAddress.Family, map: Bool, _ batch: inout NetlinkSocket.Batch) {
        namedSet(name, family: f).add(map: map, to: &batch)
    }

    static func elements(
        _ name: String, _ f: IPAddress.Family, _ ranges: [ClosedRange<IPAddress>], delete: Bool, _ batch: inout NetlinkSocket.Batch
    ) {
        namedSet(name, family: f).elements(ranges, delete: delete, to: &batch)
    }

    /// Adds or deletes `address : jump CHAIN` entries of the verdict maps of `side`.
    static func mapElements(
        _ side: Rule.Side, _ entries: [(key: IPAddress, value: String)], delete: Bool, _ batch: inout NetlinkSocket.Batch
    ) {
        for f in [IPAddress.Family.v4, .v6] {
            let mine = entries.filter { $0.key.family == f }
            var start = 0
            while start < mine.count {
                let chunk = mine[start..<min(mine.count, start + IntervalSet.elementsPerMessage)]
                start += chunk.count
                let map = mapName(side, f)
                batch.add(
                    "\(delete ? "delete" : "add") \(chunk.count) elements of map inet \(table) \(map)",
                    type: type(delete ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM), flags: delete ? 0 : NLM_F_CREATE
                ) { m in
                    m.put(header: OwnChain.header(family: family))
                    let s = namedSet(map, family: f).newSet()
                    defer { nftnl_set_free(s) }
                    for entry in chunk {
                        IntervalSet.addElement(entry.key.bytes, to: s) { e in
                            nftnl_set_elem_set_u32(e, UInt16(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: NFT_JUMP.rawValue))
                            nftnl_set_elem_set_str(e, UInt16(NFTNL_SET_ELEM_CHAIN), entry.value)
                        }
                    }
                    m.withHeader { nftnl_set_elems_nlmsg_build_payload($0, s) }
                }
            }
        }
    }

    static func addRule(chain: String, _ text: String, _ batch: inout NetlinkSocket.Batch, _ body: (OpaquePointer) -> Void) {
        batch.add("add rule inet \(table) \(chain) \(text)", type: type(NFT_MSG_NEWRULE), flags: NLM_F_CREATE | NLM_F_APPEND) { m in
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

    static func addRule(_ rule: Rule, chain: String, _ batch: inout NetlinkSocket.Batch) {
        addRule(chain: chain, rule.nftSyntax, &batch) { r in
            if let peers = rule.peers {
                Expr.nfproto(r, peers.family)
                Expr.address(r, peers.family, peers.side)
                Expr.lookup(r, set: peers.set, verdictMap: false)
            }
            if let proto = rule.proto {
                Expr.l4proto(r, proto)
                if let ports = rule.ports { Expr.destinationPorts(r, ports) }
            }
            Expr.verdict(r, NF_ACCEPT)
            OwnChain.setComment(String(rule.comment.utf8.prefix(120))!, on: r)
        }
    }
}

extension PolicyTable.Rule {
    /// The rule as `nft list` shows it, for messages.
    public var nftSyntax: String {
        var parts: [String] = []
        if let peers {
            parts.append("\(peers.family == .v4 ? "ip" : "ip6") \(peers.side == .source ? "saddr" : "daddr") @\(peers.set)")
        }
        if let proto {
            parts.append("meta l4proto \(proto)")
            if let ports {
                parts.append(ports.count == 1 ? "th dport \(ports.lowerBound)" : "th dport \(ports.lowerBound)-\(ports.upperBound)")
            }
        }
        parts.append("accept")
        return parts.joined(separator: " ")
    }
}

/// The expressions our rules are made of, each as `nft -d netlink` shows it.
enum Expr {
    /// `[ meta load nfproto => reg 1 ] [ cmp eq reg 1 F ]`
    static func nfproto(_ r: OpaquePointer, _ f: IPAddress.Family) {
        meta(r, NFT_META_NFPROTO)
        cmp(r, NFT_CMP_EQ, [UInt8(f == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)])
    }

    /// `[ meta load l4proto => reg 1 ] [ cmp eq reg 1 P ]`
    static func l4proto(_ r: OpaquePointer, _ proto: UInt8) {
        meta(r, NFT_META_L4PROTO)
        cmp(r, NFT_CMP_EQ, [proto])
    }

    static func meta(_ r: OpaquePointer, _ key: nft_meta_keys) {
        let e = nftnl_expr_alloc("meta")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_META_KEY), key.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_META_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_rule_add_expr(r, e)
    }

    static func cmp(_ r: OpaquePointer, _ op: nft_cmp_ops, _ data: [UInt8]) {
        let e = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CMP_OP), op.rawValue)
        data.withUnsafeBytes { _ = nftnl_expr_set(e, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        nftnl_rule_add_expr(r, e)
    }

    static func payload(_ r: OpaquePointer, _ base: nft_payload_bases, offset: UInt32, length: UInt32) {
        let e = nftnl_expr_alloc("payload")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_LEN), length)
        nftnl_rule_add_expr(r, e)
    }

    /// `[ payload load 4b @ network header + 12|16 => reg 1 ]` (16b @ 8|24 for IPv6)
    static func address(_ r: OpaquePointer, _ f: IPAddress.Family, _ side: PolicyTable.Rule.Side) {
        let offsets = NFTables.addressOffsets(f)
        payload(r, NFT_PAYLOAD_NETWORK_HEADER, offset: side == .source ? offsets.source : offsets.destination, length: offsets.length)
    }

    /// `[ payload load 2b @ transport header + 2 => reg 1 ]`, then `cmp eq`, or `cmp gte` and `cmp lte`.
    static func destinationPorts(_ r: OpaquePointer, _ ports: ClosedRange<UInt16>) {
        payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, length: 2)
        let bigEndian = { (p: UInt16) -> [UInt8] in [UInt8(p >> 8), UInt8(p & 0xff)] }
        if ports.count == 1 {
            cmp(r, NFT_CMP_EQ, bigEndian(ports.lowerBound))
        } else {
            cmp(r, NFT_CMP_GTE, bigEndian(ports.lowerBound))
            cmp(r, NFT_CMP_LTE, bigEndian(ports.upperBound))
        }
    }

    /// `[ lookup reg 1 set NAME ]`, or for a verdict map `[ lookup reg 1 set NAME dreg 0 ]`.
    static func lookup(_ r: OpaquePointer, set: String, verdictMap: Bool) {
        let e = nftnl_expr_alloc("lookup")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOOKUP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOOKUP_SET), set)
        if verdictMap { nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOOKUP_DREG), UInt32(NFT_REG_VERDICT.rawValue)) }
        nftnl_rule_add_expr(r, e)
    }

    /// `[ ct load state => reg 1 ] [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ] [ cmp neq reg 1 0x00000000 ]`
    static func ctStateEstablishedOrRelated(_ r: OpaquePointer) {
        let ct = nftnl_expr_alloc("ct")!
        nftnl_expr_set_u32(ct, UInt16(NFTNL_EXPR_CT_KEY), NFT_CT_STATE.rawValue)
        nftnl_expr_set_u32(ct, UInt16(NFTNL_EXPR_CT_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_rule_add_expr(r, ct)
        // The state is a host-order bit mask: ESTABLISHED (2) | RELATED (4).
        let mask = withUnsafeBytes(of: UInt32(6)) { Array($0) }
        let zero = [UInt8](repeating: 0, count: 4)
        let bitwise = nftnl_expr_alloc("bitwise")!
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_LEN), 4)
        mask.withUnsafeBytes { _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, 4) }
        zero.withUnsafeBytes { _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, 4) }
        nftnl_rule_add_expr(r, bitwise)
        cmp(r, NFT_CMP_NEQ, zero)
    }

    /// `[ immediate reg 0 accept|drop ]`
    static func verdict(_ r: OpaquePointer, _ verdict: Int32) {
        let e = nftnl_expr_alloc("immediate")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: verdict))
        nftnl_rule_add_expr(r, e)
    }
}
