#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// bridge-ipam's own nftables tables, `ip bridge_ipam` and `ip6 bridge_ipam` (the plugin's
/// ipMasq rules), or another table name of ours (the node agent keeps its masquerade rule in
/// `bridge_ipam_agent`), each with one NAT chain, `postrouting`, programmed through libnftnl over
/// a netfilter netlink socket. Tables that are not ours are never read or changed. Every change
/// is one nftables transaction (batch), so it applies whole or not at all.
public final class NFTables {
    /// The plugin's table.
    public static let table = "bridge_ipam"
    public static let chain = "postrouting"

    let socket: NetlinkSocket
    /// The table this instance reads and changes, in both families.
    public let table: String
    /// Anonymous sets are named by the kernel; within a transaction they are told apart by id.
    private var nextSetID: UInt32 = 0

    /// When set (the node agent's table), the exclusions live in this named interval set of the
    /// table, one per family, which the rule looks up (`daddr != @excluded`), instead of an
    /// anonymous set per rule: thousands of node addresses need several element messages, and a
    /// node joining or leaving then changes one element, not the whole set.
    public let exclusionSet: String?
    /// What this instance last wrote in each family with a named exclusion set. A class, nil
    /// for the plugin: its ADD does not pay for the dictionary's generic type metadata.
    private var applied: AppliedExclusions?

    /// The rule's comment and the set's intervals last written in each family. While the listed
    /// rules still carry that comment, a change is sent as the difference.
    private final class AppliedExclusions {
        var families: [IPAddress.Family: (comment: String, ranges: [ClosedRange<IPAddress>])] = [:]
    }

    /// The largest transaction with a named exclusion set: 8 MiB, some 100,000 IPv6 intervals.
    public static let namedSetTransactionLimit = 8 << 20

    /// Opens a netfilter netlink socket in the calling thread's namespace.
    public init(table: String = NFTables.table) throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER)
        self.table = table
        exclusionSet = nil
    }

    /// Our table `table`, its exclusions in the named set `exclusionSet`; the socket can send a
    /// transaction of the whole set.
    public init(table: String, exclusionSet: String) throws(NetlinkError) {
        socket = try NetlinkSocket(protocol: NETLINK_NETFILTER, sendBuffer: NFTables.namedSetTransactionLimit)
        socket.maximumTransactionSize = NFTables.namedSetTransactionLimit
        self.table = table
        self.exclusionSet = exclusionSet
        applied = AppliedExclusions()
    }

    /// Speaks through `socket`, a NETLINK_NETFILTER one (tests give one over a fake transport).
    public init(socket: NetlinkSocket, table: String = NFTables.table, exclusionSet: String? = nil) {
        self.socket = socket
        self.table = table
        self.exclusionSet = exclusionSet
        if exclusionSet != nil {
            socket.maximumTransactionSize = NFTables.namedSetTransactionLimit
            applied = AppliedExclusions()
        }
    }

    static func protocolFamily(_ family: IPAddress.Family) -> UInt8 {
        UInt8(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)
    }

    static func keyword(_ family: IPAddress.Family) -> String { family == .v4 ? "ip" : "ip6" }

    /// Our NAT chain in `family`: postrouting, at srcnat priority.
    func chain(_ family: IPAddress.Family) -> OwnChain {
        OwnChain(
            family: NFTables.protocolFamily(family), keyword: NFTables.keyword(family), table: table, chain: NFTables.chain, type: "nat",
            hook: UInt32(NF_INET_POST_ROUTING.rawValue), priority: 100)
    }

    /// Rules of our chain in `family`; none when the table or chain does not exist. Each listed
    /// rule is small (the exclusions are in a set), so listing works whatever their number.
    public func rules(family: IPAddress.Family) throws(NetlinkError) -> [ListedRule] {
        try chain(family).rules(through: socket)
    }

    /// Whether our chains hold exactly `rules` (one current rule per source).
    public func contains(_ rules: [MasqueradeRule]) throws(NetlinkError) -> Bool {
        for rule in rules where !(try isCurrent(rule, listed: self.rules(of: rule.network, family: rule.family))) { return false }
        return true
    }

    private func isCurrent(_ rule: MasqueradeRule, listed: [ListedRule]) -> Bool {
        // The tag is computed only when there is a rule to compare (an ADD that creates the
        // rule does not pay for formatting its addresses).
        guard listed.count == rule.sources.count, !listed.isEmpty else { return listed.count == rule.sources.count }
        let comment: String
        if let exclusionSet { comment = rule.comment(exclusionSet: exclusionSet) } else { comment = rule.comment }
        return listed.allSatisfy { $0.comment == comment }
    }

    /// Makes our chains hold `rules`, replacing this network's outdated rules of the same
    /// families, in one transaction; no transaction at all when they are already there (one
    /// listing per family). Returns whether anything changed.
    @discardableResult
    public func ensure(_ rules: [MasqueradeRule]) throws(NetlinkError) -> Bool {
        var outdated: [(rule: MasqueradeRule, listed: [ListedRule])] = []
        for rule in rules {
            let listed = try self.rules(of: rule.network, family: rule.family)
            if !isCurrent(rule, listed: listed) { outdated.append((rule, listed)) }
        }
        guard !outdated.isEmpty else { return false }
        if let exclusionSet {
            try ensure(outdated, exclusionSet: exclusionSet)
            return true
        }
        // libnftnl writes a set's elements without checking room: a transaction that could
        // outgrow its datagram is refused before anything is built.
        let bytes = outdated.reduce(0) { $0 + NFTables.exclusionBytes($1.rule) }
        guard bytes <= NFTables.exclusionBudget else {
            throw NetlinkError(
                "set masquerade rules of \(rules[0].network)", errno: E2BIG,
                kernelMessage:
                    "their exclusion sets (\(outdated.map { $0.rule.excludedIntervals.count }.reduce(0, +)) intervals, about \(bytes) bytes) do not fit one nftables transaction of \(NetlinkSocket.maximumMessageSize / 1024) KiB"
            )
        }
        nextSetID = 0
        try transaction("set masquerade rules of \(rules[0].network)") { batch in
            for (rule, listed) in outdated {
                let own = chain(rule.family)
                own.addTableAndChain(to: &batch)
                for old in listed { own.deleteRule(handle: old.handle, to: &batch) }
                for source in rule.sources { addRule(rule, source: source, to: &batch) }
            }
        }
        return true
    }

    /// Replaces outdated rules whose exclusions live in the named set `name`, in one transaction.
    /// When the listed rules are the ones this instance wrote last, the set changes by the
    /// intervals that differ; otherwise (first call, or someone else's change) the set is
    /// created if missing, emptied and filled.
    private func ensure(_ outdated: [(rule: MasqueradeRule, listed: [ListedRule])], exclusionSet name: String) throws(NetlinkError) {
        let known = applied ?? AppliedExclusions()
        var written = known.families
        try transaction("set masquerade rules of \(outdated[0].rule.network)") { batch in
            for (rule, listed) in outdated {
                let own = chain(rule.family)
                let set = IntervalSet(
                    table: table, tableFamily: NFTables.protocolFamily(rule.family), keyword: NFTables.keyword(rule.family), name: name,
                    family: rule.family)
                let ranges = rule.excludedRanges
                if let last = known.families[rule.family], !listed.isEmpty, listed.allSatisfy({ $0.comment == last.comment }) {
                    set.update(from: last.ranges, to: ranges, &batch)
                } else {
                    own.addTableAndChain(to: &batch)
                    set.add(to: &batch)
                    set.flush(to: &batch)
                    set.elements(ranges, delete: false, to: &batch)
                }
                for old in listed { own.deleteRule(handle: old.handle, to: &batch) }
                for source in rule.sources { addRule(rule, source: source, exclusionSet: name, to: &batch) }
                written[rule.family] = (rule.comment(exclusionSet: name), ranges)
            }
        }
        known.families = written
        applied = known
    }

    /// What a rule's exclusion sets take in a transaction (one set per source): per interval a
    /// start and an end element (each a list-element nest, a key nest and the address; the end
    /// also a flags attribute: 40 bytes for IPv4, 64 for IPv6), plus the set's own messages.
    static func exclusionBytes(_ rule: MasqueradeRule) -> Int {
        let perInterval = rule.family == .v4 ? 40 : 64
        return rule.sources.count * (256 + rule.excludedIntervals.count * perInterval)
    }

    /// The room for exclusion sets in one transaction: the datagram less the table, chain and
    /// rule messages around them. About 1,580 IPv4 or 990 IPv6 intervals in one rule.
    static let exclusionBudget = NetlinkSocket.maximumMessageSize - 2048

    private func rules(of network: String, family: IPAddress.Family) throws(NetlinkError) -> [ListedRule] {
        let prefix = MasqueradeRule.tagPrefix(network: network)
        return try rules(family: family).filter { $0.comment?.hasPrefix(prefix) == true }
    }

    /// Removes every rule of `network` in both families (their anonymous sets go with them); no
    /// transaction when there is none. Returns how many.
    @discardableResult
    public func remove(network: String) throws(NetlinkError) -> Int {
        var mine: [(family: IPAddress.Family, rule: ListedRule)] = []
        for family in [IPAddress.Family.v4, .v6] {
            mine += try rules(of: network, family: family).map { (family, $0) }
        }
        guard !mine.isEmpty else { return 0 }
        try transaction("remove masquerade rules of \(network)") { batch in
            for (family, rule) in mine { chain(family).deleteRule(handle: rule.handle, to: &batch) }
        }
        return mine.count
    }

    // MARK: - Messages

    private func transaction(_ operation: String, _ body: (inout NetlinkSocket.Batch) -> Void) throws(NetlinkError) {
        try OwnChain.transaction(operation, through: socket, body)
    }

    /// Where the source and destination addresses sit in the network header.
    static func addressOffsets(_ family: IPAddress.Family) -> (source: UInt32, destination: UInt32, length: UInt32) {
        family == .v4 ? (12, 16, 4) : (8, 24, 16)
    }

    /// `SADDR SOURCE DADDR != @SET masquerade comment TAG`, the set a named one of the table.
    private func addRule(_ rule: MasqueradeRule, source: IPNetwork, exclusionSet: String, to batch: inout NetlinkSocket.Batch) {
        let offsets = NFTables.addressOffsets(rule.family)
        chain(rule.family).addRule("add rule \(rule.nftSyntax(source: source, exclusionSet: exclusionSet))", to: &batch) { r in
            AddressMatch.match(r, offset: offsets.source, network: source)  // saddr
            AddressMatch.loadPayload(r, offset: offsets.destination, length: offsets.length)  // daddr
            let lookup = nftnl_expr_alloc("lookup")!
            nftnl_expr_set_u32(lookup, UInt16(NFTNL_EXPR_LOOKUP_SREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_str(lookup, UInt16(NFTNL_EXPR_LOOKUP_SET), exclusionSet)
            nftnl_expr_set_u32(lookup, UInt16(NFTNL_EXPR_LOOKUP_FLAGS), NFT_LOOKUP_F_INV.rawValue)
            nftnl_rule_add_expr(r, lookup)
            nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"))
            OwnChain.setComment(rule.comment(exclusionSet: exclusionSet), on: r)
        }
    }

    /// `SADDR SOURCE DADDR != { EXCLUDED... } masquerade comment TAG`: an anonymous interval set
    /// (created in the same transaction, deleted by the kernel with the rule), then the rule.
    private func addRule(_ rule: MasqueradeRule, source: IPNetwork, to batch: inout NetlinkSocket.Batch) {
        let family = rule.family
        let offsets = NFTables.addressOffsets(family)
        let intervals = rule.excludedIntervals
        nextSetID += 1
        let setID = nextSetID
        let setName = "__set%d"
        if !intervals.isEmpty {
            let set = nftnl_set_alloc()!
            defer { nftnl_set_free(set) }
            nftnl_set_set_str(set, UInt16(NFTNL_SET_TABLE.rawValue), table)
            nftnl_set_set_str(set, UInt16(NFTNL_SET_NAME.rawValue), setName)
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(NFTables.protocolFamily(family)))
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_ID.rawValue), setID)
            let flags = NFT_SET_ANONYMOUS.rawValue | NFT_SET_CONSTANT.rawValue | NFT_SET_INTERVAL.rawValue
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_FLAGS.rawValue), flags)
            // nft's datatypes ipv4_addr (7) and ipv6_addr (8), so that `nft list` shows addresses.
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_TYPE.rawValue), family == .v4 ? 7 : 8)
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_LEN.rawValue), offsets.length)
            batch.add(
                "create the exclusion set of \(rule.nftSyntax(source: source))", type: OwnChain.messageType(NFT_MSG_NEWSET),
                flags: NLM_F_CREATE
            ) { m in
                m.put(header: OwnChain.header(family: NFTables.protocolFamily(family)))
                m.withHeader { nftnl_set_nlmsg_build_payload($0, set) }
            }
            // An interval is its first address, and the address after its last flagged as an end.
            for interval in intervals {
                NFTables.addElement(interval.start, end: false, to: set)
                if let end = interval.end { NFTables.addElement(end, end: true, to: set) }
            }
            batch.add(
                "fill the exclusion set (\(intervals.count) intervals)", type: OwnChain.messageType(NFT_MSG_NEWSETELEM), flags: NLM_F_CREATE
            ) { m in
                m.put(header: OwnChain.header(family: NFTables.protocolFamily(family)))
                m.withHeader { nftnl_set_elems_nlmsg_build_payload($0, set) }
            }
        }
        chain(family).addRule("add rule \(rule.nftSyntax(source: source))", to: &batch) { r in
            AddressMatch.match(r, offset: offsets.source, network: source)  // saddr
            if !intervals.isEmpty {
                AddressMatch.loadPayload(r, offset: offsets.destination, length: offsets.length)  // daddr
                let lookup = nftnl_expr_alloc("lookup")!
                nftnl_expr_set_u32(lookup, UInt16(NFTNL_EXPR_LOOKUP_SREG), UInt32(NFT_REG_1.rawValue))
                nftnl_expr_set_str(lookup, UInt16(NFTNL_EXPR_LOOKUP_SET), setName)
                nftnl_expr_set_u32(lookup, UInt16(NFTNL_EXPR_LOOKUP_SET_ID), setID)
                nftnl_expr_set_u32(lookup, UInt16(NFTNL_EXPR_LOOKUP_FLAGS), NFT_LOOKUP_F_INV.rawValue)
                nftnl_rule_add_expr(r, lookup)
            }
            nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"))
            OwnChain.setComment(rule.comment, on: r)
        }
    }

    private static func addElement(_ key: IPAddress, end: Bool, to set: OpaquePointer) {
        let element = nftnl_set_elem_alloc()!
        key.bytes.withUnsafeBytes { _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count)) }
        if end { nftnl_set_elem_set_u32(element, UInt16(NFTNL_SET_ELEM_FLAGS), NFT_SET_ELEM_INTERVAL_END.rawValue) }
        nftnl_set_elem_add(set, element)  // the set owns it from here
    }
}
