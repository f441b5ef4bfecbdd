#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
import Netlink
import Addresses

/// The node bridge: created when missing, brought up, and given the pods' gateway addresses.
struct Bridge {
    let node: any NamespaceNetwork
    let config: NetworkConfig

    /// The bridge if it exists, refusing a device of that name that is not a bridge. Read-only:
    /// ADD calls it before allocating, so a misnamed bridge changes nothing on the node.
    func inspect() throws(CNIError) -> Link? {
        guard let link = try node.link(named: config.bridge) else { return nil }
        guard link.kind == "bridge" else {
            throw CNIError(
                .bridgeConflict,
                "\(link.name) exists but is not a bridge (it is \(link.kind.map { "a \($0)" } ?? "a device without link kind"))",
                details: "set \"bridge\" in the config to another name, or remove \(link.name)")
        }
        return link
    }

    /// The bridge after making sure it exists and is up (and promiscuous with `promiscMode`).
    /// `existing` is what `inspect` found.
    func ensure(existing: Link?) throws(CNIError) -> Link {
        if let existing { return try repair(existing) }
        // False: another ADD created it between our look-up and our request; we use theirs.
        _ = try node.createBridge(name: config.bridge, mac: .random(), mtu: config.mtu.map(UInt32.init), netfilter: .on)
        guard let link = try inspect() else {
            throw CNIError(.bridgeConflict, "bridge \(config.bridge) vanished right after it was created")
        }
        return try repair(link)
    }

    /// Brings an existing (adopted) bridge up and turns its bridge netfilter on where it is off.
    /// Both are read from the look-up `inspect` made anyway, so a bridge that is already right
    /// costs no request here. A kernel without bridge netfilter reports no switches (nil):
    /// nothing to set there, and STATUS says why Services cannot work.
    private func repair(_ link: Link) throws(CNIError) -> Link {
        let wantPromiscuous = config.promiscMode && !link.isPromiscuous
        if !link.isUp || wantPromiscuous {
            try node.setLink(index: link.index, name: link.name, up: true, promiscuous: wantPromiscuous ? true : nil)
        }
        if let netfilter = link.bridgeNetfilter, netfilter != .on {
            try node.setBridgeNetfilter(index: link.index, name: link.name, .on)
        }
        return link
    }

    /// Puts each gateway on the bridge (with the subnet's prefix). An IPv4 bridge address other
    /// than ours is replaced with `forceAddress` and an error otherwise, as the reference does.
    /// IPv6 gateways skip duplicate address detection: the bridge is ours, IPAM reserves the
    /// gateway address so no pod can hold it, and DAD would keep a fresh node's first pods from
    /// their gateway for about 2 s (the bridge's first port brings its carrier up, then DAD runs).
    /// A former pod subnet's gateway (a podCIDR change, see `FormerGateways`) stays beside the new
    /// one while pods use it, and goes when none does.
    func ensureGateways(_ gateways: [IPNetwork], on bridge: Link) throws(CNIError) {
        guard !gateways.isEmpty else { return }
        let existing = try node.addresses(index: bridge.index)
        for gateway in gateways {
            if existing.contains(where: { $0.network == gateway }) { continue }
            let conflicting = existing.filter {
                $0.network.address.family == gateway.address.family && !gateways.contains($0.network)
                    && (gateway.address.family == .v4 || $0.network.overlaps(gateway))
            }
            for other in conflicting {
                if config.forceAddress {
                    try node.deleteAddress(other.network, index: bridge.index)
                    continue
                }
                switch try FormerGateways(config: config).verdict(on: other.network) {
                case .keep: continue
                case .retire: try node.deleteAddress(other.network, index: bridge.index)
                case .conflict:
                    throw CNIError(
                        .bridgeConflict, "bridge \(bridge.name) already has address \(other.network), not the gateway \(gateway)",
                        details: "set \"forceAddress\": true to replace it, or use another bridge")
                }
            }
            try node.addAddress(gateway, index: bridge.index, options: AddressOptions(skipDuplicateDetection: true), tolerateExisting: true)
            FormerGateways(config: config).record(gateway)
        }
        try node.enableForwarding(
            ipv4: gateways.contains { $0.address.family == .v4 }, ipv6: gateways.contains { $0.address.family == .v6 })
    }
}
