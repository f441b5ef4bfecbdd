import IPAM

/// The alias a host veth carries, naming its attachment, so that GC can find the host ends of
/// attachments the runtime no longer lists (e.g. after a crashed ADD whose pod still exists).
/// Set in the veth's creating request: it costs no round trip.
struct HostVethTag: Equatable {
    let network: String
    let owner: LeaseOwner

    static let prefix = "bridge-ipam"

    /// `bridge-ipam NETWORK CONTAINERID IFNAME`; nil when too long for IFLA_IFALIAS (128 bytes).
    var alias: String? {
        let text = "\(HostVethTag.prefix) \(network) \(owner.containerID) \(owner.ifname)"
        return text.utf8.count < 128 ? text : nil
    }

    init(network: String, owner: LeaseOwner) {
        self.network = network
        self.owner = owner
    }

    init?(alias: String) {
        let parts = alias.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts[0] == HostVethTag.prefix else { return nil }
        self.init(network: parts[1], owner: LeaseOwner(containerID: parts[2], ifname: parts[3]))
    }
}
