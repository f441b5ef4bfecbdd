import Addresses
import CNI
import IPAM
import SystemIO

/// A podCIDR change without a hand on the node (issue 21 item 5). When the node's subnet file
/// names a new subnet, the bridge still carries the old subnet's gateway, and pods that hold old
/// addresses route through it. So:
///
/// - ADD puts the new gateway on the bridge beside the old one instead of failing with code 103:
///   an IPv4 address that conflicts with the gateway is a *former gateway* when it is the gateway
///   of a subnet this network served (recorded in the lease directory by the ADD that put it on
///   the bridge, or, for bridges set up before the record existed, when leases still lie in its
///   subnet). It stays
///   while leases lie in its subnet, and is removed when none do. Anything else on the bridge is
///   still a conflict (code 103, or replaced with `forceAddress`), as in the reference plugin.
/// - DEL releases leases by owner, wherever they lie; when it released an address outside every
///   current range, the former gateway whose subnet held it goes (address and record) once no
///   lease is left in that subnet. The decisions are made under the lease lock, so an ADD or
///   DEL running at the same time sees either the gateway and its leases or neither.
///
/// Old pods keep their address, their route via the old gateway, and with it the node and the
/// node's other pods; routes from other nodes to the old subnet are the agent's, which follows
/// the Node objects, so those go with the change.
struct FormerGateways {
    let config: NetworkConfig
    /// Where DEL reaches the bridge (opened only when a former subnet's lease was released).
    var namespaces: (any Namespaces)?

    /// What to do with an address on the bridge that conflicts with one of `current` gateways.
    enum Verdict: Equatable {
        /// A former gateway whose subnet still holds leases: it stays, the new one goes beside it.
        case keep
        /// A former gateway nobody uses: removed.
        case retire
        /// Not ours: code 103 as before (or replaced with `forceAddress`).
        case conflict
    }

    /// Records a gateway just put on the bridge (see `LeaseStore.recordGateway`): rare, once per
    /// subnet and bridge, so it takes the lease lock again rather than costing every ADD a look.
    /// Best effort: without the record, a former gateway is still known by its leases.
    func record(_ gateway: IPNetwork) {
        guard config.ipam.isBuiltIn else { return }
        try? config.ipam.withLeases(network: config.name) { (store) throws(CNIError) in store.recordGateway(gateway) }
    }

    /// Decides under the lease lock (ADD calls it outside the lock, only when a conflict exists).
    func verdict(on address: IPNetwork) throws(CNIError) -> Verdict {
        let subnet = address.masked
        guard config.ipam.isBuiltIn, !currentSubnets.contains(where: { $0.overlaps(subnet) }) else { return .conflict }
        return try config.ipam.withLeases(network: config.name) { (store) throws(CNIError) -> Verdict in
            let inUse: Bool
            do throws(SystemError) { inUse = try store.hasLease(in: subnet) } catch { throw .store(error) }
            if inUse { return .keep }
            guard store.isRecordedGateway(address) else { return .conflict }
            store.forgetGateway(address)
            return .retire
        }
    }

    /// After DEL released `released`: when one of them lies outside every current range, removes
    /// the bridge address of each former subnet that held one and now holds no lease, under the
    /// lease lock (taken again: this is the rare path; the common one allocates nothing here).
    func retire(after released: [IPAddress]) throws(CNIError) {
        guard FormerGateways.anyFormer(released, config: config) else { return }
        let current = currentSubnets
        let former = released.filter { ip in !current.contains { $0.contains(ip) } }
        guard let node = try namespaces?.node(), let bridge = try node.link(named: config.bridge) else { return }
        try config.ipam.withLeases(network: config.name) { (store) throws(CNIError) in
            for address in try node.addresses(index: bridge.index) {
                let gateway = address.network
                guard former.contains(where: gateway.contains), !current.contains(where: { $0.overlaps(gateway.masked) }) else { continue }
                let inUse: Bool
                do throws(SystemError) { inUse = try store.hasLease(in: gateway.masked) } catch { throw .store(error) }
                if inUse { continue }
                try node.deleteAddress(gateway, index: bridge.index)
                store.forgetGateway(gateway)
            }
        }
    }

    /// Whether one of `released` lies outside every current subnet (a loop: DEL asks every time).
    static func anyFormer(_ released: [IPAddress], config: NetworkConfig) -> Bool {
        let sets = config.ipam.rangeSets
        // No ranges: the subnet file is missing (DEL tolerates that), so nothing is "former".
        if sets.isEmpty { return false }
        for ip in released {
            var inside = false
            for set in sets {
                for range in set.ranges where range.subnet.contains(ip) { inside = true }
            }
            if !inside { return true }
        }
        return false
    }

    private var currentSubnets: [IPNetwork] { config.ipam.rangeSets.flatMap { $0.ranges.map(\.subnet) } }
}
