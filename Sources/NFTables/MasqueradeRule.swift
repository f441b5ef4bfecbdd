import Addresses

/// What `ipMasq` asks of the node: traffic from the network's pod subnet leaves with the node's
/// address, unless it goes to an excluded destination (the pod subnet itself, the cluster CIDR,
/// and whatever the operator lists, typically the node network).
///
/// One rule serves every pod of the network, so neither its cost nor the rule count grows with
/// the number of pods, and DEL needs no nftables change until the network's last pod goes.
public struct MasqueradeRule: Equatable, Sendable {
    public var network: String
    /// The pod subnets (IPv4); one nftables rule each, all with the same comment.
    public var sources: [IPNetwork]
    public var excluded: [IPNetwork]

    public init(network: String, sources: [IPNetwork], excluded: [IPNetwork]) {
        self.network = network
        self.sources = sources.map(\.masked).filter { $0.address.family == .v4 }
        var unique: [IPNetwork] = []
        for n in excluded.map(\.masked) where n.address.family == .v4 && !unique.contains(n) { unique.append(n) }
        self.excluded = unique
    }

    /// The prefix of every comment of this network's rules.
    public static func tagPrefix(network: String) -> String { "bridge-ipam \(network) " }

    /// Tags the rule with its network and a digest of its content, so that a rule whose content
    /// is outdated (e.g. an exclusion was added) is found and replaced. nftables keeps at most
    /// 128 bytes of comment; network names are capped well below that by the config check.
    public var comment: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in "\(sources.map(\.description).joined(separator: ",")) except \(excluded.map(\.description).joined(separator: ","))".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return MasqueradeRule.tagPrefix(network: network) + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The longest network name whose tag still fits nftables' comment limit.
    public static let maxNetworkNameLength = 100

    /// The rule for one source as `nft list ruleset` shows it, for messages.
    public func nftSyntax(source: IPNetwork) -> String {
        "ip saddr \(source)" + excluded.map { " ip daddr != \($0)" }.joined() + " masquerade comment \"\(comment)\""
    }
}
