#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNI
import Netlink
import NFTables

/// ipMasq: the network's masquerade rules (IPv4 and IPv6), set up on ADD and removed with the
/// network's last lease. Both happen under the lease lock, so a concurrent ADD never loses its rule to a DEL.
struct Masquerade {
    let config: NetworkConfig

    /// The rules this config asks for, one per family with pod subnets: each pod subnet,
    /// excluding the pod subnets, the cluster CIDR and `ipMasqExclude` of its family.
    var rules: [MasqueradeRule] {
        let subnets = config.ipam.rangeSets.flatMap { $0.ranges.map(\.subnet) }
        let excluded = subnets + (config.ipam.clusterCIDR.map { [$0] } ?? []) + config.ipMasqExclude
        return MasqueradeRule.rules(network: config.name, sources: subnets, excluded: excluded)
    }

    /// Makes the rules present (a read only, once they are).
    func ensure() throws(CNIError) {
        let rules = self.rules
        _ = try nftables { () throws(NetlinkError) in try NFTables().ensure(rules) }
    }

    /// Removes the network's rules (the caller found no lease left, under the lease lock).
    func remove() throws(CNIError) {
        try nftables { () throws(NetlinkError) in _ = try NFTables().remove(network: config.name) }
    }

    func isPresent() throws(CNIError) -> Bool {
        let rules = self.rules
        return try nftables { () throws(NetlinkError) in try NFTables().contains(rules) }
    }

    private func nftables<T>(_ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
        do { return try body() } catch {
            throw CNIError(.netlinkFailure, "nftables: \(error.operation) failed", details: error.description)
        }
    }
}
