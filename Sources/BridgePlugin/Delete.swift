import CNI
import Netlink

/// DEL: releases the lease and removes the pod's interface (its veth peer goes with it).
/// Idempotent: a missing lease, interface or namespace is success.
struct Delete {
    let context: Context
    init(_ context: Context) { self.context = context }

    @available(*, noasync)
    func run() throws(CNIError) {
        let environment = context.environment
        // The lease first: it must be released even when the namespace is gone. With ipMasq the
        // network's rule goes with its last lease; until then DEL makes no nftables change.
        // prevResult's addresses, when given, spare reading every lease file (each is checked
        // against its lease's owner); an unreadable prevResult only costs that scan.
        let masquerade = context.config.ipMasq ? Masquerade(config: context.config, filter: context.namespaces.packetFilter()) : nil
        let addresses = context.config.prevResult.flatMap { try? CNIResult.parse($0) }?.ips.map(\.address.address) ?? []
        let released = try context.ipam.delete(owner: context.owner, addresses: addresses, masquerade: masquerade)
        // After a podCIDR change, the old subnet's gateway goes with its last lease.
        if context.config.isGateway && FormerGateways.anyFormer(released, config: context.config) {
            try FormerGateways(config: context.config, namespaces: context.namespaces).retire(after: released)
        }
        if context.config.macSpoofCheck {
            try MacSpoofCheck(network: context.config.name, filter: context.namespaces.packetFilter()).remove(owner: context.owner)
        }
        guard !environment.netns.isEmpty else { return }
        switch try context.namespaces.pod(at: environment.netns) {
        case .opened(let pod): try pod.deleteLink(named: environment.ifname)
        case .missing: return  // the namespace is gone, and its interfaces with it
        case .node: return  // never delete an interface of the node itself
        }
    }
}
