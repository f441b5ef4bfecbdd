import Addresses
import CNI
import IPAM
import Netlink
import NFTables

/// macspoofchk: one nftables rule per attachment that drops frames entering the bridge from
/// the pod's host veth with a source MAC other than the pod interface's. Added by ADD (and
/// removed again if ADD fails later), removed by DEL and, for attachments the runtime no longer
/// lists, by GC.
struct MacSpoofCheck {
    let network: String
    let filter: any PacketFilter

    func add(owner: LeaseOwner, hostInterface: String, mac: MACAddress) throws(CNIError) {
        try filter.addSpoofRule(
            MacSpoofRule(
                network: network, containerID: owner.containerID, ifname: owner.ifname,
                hostInterface: hostInterface, mac: mac))
    }

    /// Removes the attachment's rule; succeeds when there is none.
    func remove(owner: LeaseOwner) throws(CNIError) {
        let tag = MacSpoofRule.tag(network: network, containerID: owner.containerID, ifname: owner.ifname)
        try filter.removeSpoofRules { $0 == tag }
    }

    /// GC: removes the network's rules of attachments not in `valid`.
    func removeAll(except valid: [LeaseOwner]) throws(CNIError) {
        let prefix = MacSpoofRule.tagPrefix(network: network)
        let kept = Set(valid.map { MacSpoofRule.tag(network: network, containerID: $0.containerID, ifname: $0.ifname) })
        try filter.removeSpoofRules { $0.hasPrefix(prefix) && !kept.contains($0) }
    }

    func isPresent(owner: LeaseOwner) throws(CNIError) -> Bool {
        let tag = MacSpoofRule.tag(network: network, containerID: owner.containerID, ifname: owner.ifname)
        return try filter.spoofRuleComments().contains(tag)
    }
}
