#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNI
import Netlink
import NFTables

/// ipMasq: the network's masquerade rule, set up on ADD and removed with the network's last
/// lease. Both happen under the lease lock, so a concurrent ADD never loses its rule to a DEL.
struct Masquerade {
    let config: NetworkConfig

    /// The rule this config asks for: each IPv4 pod subnet, excluding the pod subnets, the
    /// cluster CIDR and `ipMasqExclude`.
    var rule: MasqueradeRule {
        let subnets = config.ipam.rangeSets.flatMap { $0.ranges.map(\.subnet) }.filter { $0.address.family == .v4 }
        let excluded = subnets + (config.ipam.clusterCIDR.map { [$0] } ?? []) + config.ipMasqExclude
        return MasqueradeRule(network: config.name, sources: subnets, excluded: excluded)
    }

    /// Makes the rule present (a read only, once it is).
    func ensure() throws(CNIError) {
        _ = try nftables { () throws(NetlinkError) in try NFTables().ensure(rule) }
        // A seam for the crash test: dies here as a plugin killed mid-ADD would, lease and rule made.
        if let step = getenv("BRIDGE_IPAM_TEST_ABORT_AT"), String(cString: step) == "masquerade" { abort() }
    }

    /// Removes the network's rules (the caller found no lease left, under the lease lock).
    func remove() throws(CNIError) {
        try nftables { () throws(NetlinkError) in _ = try NFTables().remove(network: config.name) }
    }

    func isPresent() throws(CNIError) -> Bool {
        try nftables { () throws(NetlinkError) in try NFTables().contains(rule) }
    }

    private func nftables<T>(_ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
        do { return try body() } catch {
            throw CNIError(.netlinkFailure, "nftables: \(error.operation) failed", details: error.description)
        }
    }
}
