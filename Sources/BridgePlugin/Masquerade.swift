import Addresses
import CNI
import NFTables

/// ipMasq: the network's masquerade rules (IPv4 and IPv6), set up on ADD and removed with the
/// network's last lease. Both happen under the lease lock, so a concurrent ADD never loses its rule to a DEL.
struct Masquerade {
    let config: NetworkConfig
    let filter: any PacketFilter

    /// The rules this config asks for, one per family with pod subnets: each pod subnet,
    /// excluding the pod subnets, the cluster CIDR and `ipMasqExclude` of its family.
    var rules: [MasqueradeRule] {
        let subnets = config.ipam.rangeSets.flatMap { $0.ranges.map(\.subnet) }
        let excluded = subnets + (config.ipam.clusterCIDR.map { [$0] } ?? []) + config.ipMasqExclude
        return MasqueradeRule.rules(network: config.name, sources: subnets, excluded: excluded)
    }

    /// Makes the rules present (a read only, once they are).
    func ensure() throws(CNIError) { try filter.ensureMasquerade(rules) }

    /// Removes the network's rules (the caller found no lease left, under the lease lock).
    func remove() throws(CNIError) { try filter.removeMasquerade(network: config.name) }

    func isPresent() throws(CNIError) -> Bool { try filter.containsMasquerade(rules) }
}
