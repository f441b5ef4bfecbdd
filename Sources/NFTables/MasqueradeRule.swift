import Addresses

/// What `ipMasq` asks of the node in one address family: traffic from the network's pod subnet
/// leaves with the node's address, unless it goes to an excluded destination (the pod subnets,
/// the cluster CIDR, and whatever the operator lists, typically the node network).
///
/// One rule per pod subnet serves every pod of the network, so neither its cost nor the rule
/// count grows with the number of pods, and DEL needs no nftables change until the network's last
/// pod goes. The exclusions live in an anonymous interval set bound to the rule
/// (`daddr != { a, b, ... }`), so the rule has the same size whatever the exclusion list.
public struct MasqueradeRule: Equatable, Sendable {
    public var network: String
    public var family: IPAddress.Family
    /// The pod subnets of this family; one nftables rule each, all with the same comment.
    public var sources: [IPNetwork]
    /// Masked and deduplicated, in the order given.
    public var excluded: [IPNetwork]

    public init(network: String, family: IPAddress.Family, sources: [IPNetwork], excluded: [IPNetwork]) {
        self.network = network
        self.family = family
        self.sources = sources.map(\.masked).filter { $0.address.family == family }
        var unique: [IPNetwork] = []
        if excluded.count <= 64 {  // the plugin's lists: a scan is cheaper than hashing
            for n in excluded.map(\.masked) where n.address.family == family && !unique.contains(n) { unique.append(n) }
        } else {  // the agent's, one entry per node: thousands
            var seen = Set<IPNetwork>()
            for n in excluded.map(\.masked) where n.address.family == family && seen.insert(n).inserted { unique.append(n) }
        }
        self.excluded = unique
    }

    /// The rules of a network: one per family that has pod subnets.
    public static func rules(network: String, sources: [IPNetwork], excluded: [IPNetwork]) -> [MasqueradeRule] {
        [IPAddress.Family.v4, .v6].compactMap { family in
            let rule = MasqueradeRule(network: network, family: family, sources: sources, excluded: excluded)
            return rule.sources.isEmpty ? nil : rule
        }
    }

    /// The prefix of every comment of this network's rules.
    public static func tagPrefix(network: String) -> String { "bridge-ipam \(network) " }

    /// Tags the rule with its network and a digest of its content, so that a rule whose content
    /// is outdated (e.g. an exclusion was added) is found and replaced. nftables keeps at most
    /// 128 bytes of comment; network names are capped well below that by the config check.
    public var comment: String {
        tag(digesting: "\(sources.map(\.description).joined(separator: ",")) except \(excluded.map(\.description).joined(separator: ","))")
    }

    /// The tag of the same rule with its exclusions in the named set `exclusionSet`: the two
    /// forms of a rule have different tags, so that one replaces the other.
    public func comment(exclusionSet: String) -> String {
        tag(
            digesting:
                "\(sources.map(\.description).joined(separator: ",")) except \(excluded.map(\.description).joined(separator: ",")) in @\(exclusionSet)"
        )
    }

    private func tag(digesting text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return MasqueradeRule.tagPrefix(network: network) + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The longest network name whose tag still fits nftables' comment limit.
    public static let maxNetworkNameLength = 100

    /// The exclusions as the interval set holds them: sorted, overlapping and adjacent networks
    /// merged (the kernel refuses overlapping intervals), each as its first address and the
    /// address after its last (nil when it runs to the end of the address space).
    public var excludedIntervals: [(start: IPAddress, end: IPAddress?)] {
        let sorted = excluded.sorted { $0.network < $1.network }
        var merged: [(start: IPAddress, last: IPAddress)] = []
        for n in sorted {
            if let previous = merged.last, n.network <= previous.last || previous.last.advanced(by: 1) == n.network {
                if n.last > previous.last { merged[merged.count - 1].last = n.last }
            } else {
                merged.append((n.network, n.last))
            }
        }
        return merged.map { ($0.start, $0.last.advanced(by: 1)) }
    }

    /// The same intervals as first and last address, as a named set's update takes them.
    public var excludedRanges: [ClosedRange<IPAddress>] {
        let last: IPAddress = family == .v4 ? .v4(UInt32.max) : .v6(UInt128.max)
        return excludedIntervals.map { $0.start...($0.end?.advanced(by: -1) ?? last) }
    }

    /// `ip` or `ip6`: the nftables family keyword, also the table's family.
    public var familyKeyword: String { family == .v4 ? "ip" : "ip6" }

    /// The rule for one source as `nft list ruleset` shows it, for messages.
    public func nftSyntax(source: IPNetwork) -> String {
        let set = excluded.isEmpty ? "" : " \(familyKeyword) daddr != { \(excluded.map(\.description).joined(separator: ", ")) }"
        return "\(familyKeyword) saddr \(source)\(set) masquerade comment \"\(comment)\""
    }

    /// The same with the exclusions in the table's named set `exclusionSet`.
    public func nftSyntax(source: IPNetwork, exclusionSet: String) -> String {
        "\(familyKeyword) saddr \(source) \(familyKeyword) daddr != @\(exclusionSet) masquerade comment \"\(comment(exclusionSet: exclusionSet))\""
    }
}
