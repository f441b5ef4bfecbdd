import CNI
import Netlink
import NFTables

/// The node's nftables as the verbs use it: ipMasq's rules and macspoofchk's. The real one is
/// `NFTablesFilter`; unit tests give a fake, as for `Namespaces`.
protocol PacketFilter: AnyObject {
    /// Makes a network's masquerade rules present (one transaction when one is missing).
    func ensureMasquerade(_ rules: [MasqueradeRule]) throws(CNIError)
    /// Removes every masquerade rule of the network.
    func removeMasquerade(network: String) throws(CNIError)
    func containsMasquerade(_ rules: [MasqueradeRule]) throws(CNIError) -> Bool

    /// Adds an attachment's macspoofchk rule (creating its table and chain when missing).
    func addSpoofRule(_ rule: MacSpoofRule) throws(CNIError)
    /// Removes the macspoofchk rules whose comment `shouldRemove` picks.
    func removeSpoofRules(where shouldRemove: (String) -> Bool) throws(CNIError)
    /// The comments of the macspoofchk chain's rules.
    func spoofRuleComments() throws(CNIError) -> [String]
}

/// nftables through libnftnl on a netfilter socket per request, as before the seam: the one
/// place where nftables failures become CNI errors (102, naming the operation).
final class NFTablesFilter: PacketFilter {
    private func request<T>(_ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
        do { return try body() } catch {
            throw CNIError(.netlinkFailure, "nftables: \(error.operation) failed", details: error.description)
        }
    }

    func ensureMasquerade(_ rules: [MasqueradeRule]) throws(CNIError) {
        try request { () throws(NetlinkError) in _ = try NFTables().ensure(rules) }
    }

    func removeMasquerade(network: String) throws(CNIError) {
        try request { () throws(NetlinkError) in _ = try NFTables().remove(network: network) }
    }

    func containsMasquerade(_ rules: [MasqueradeRule]) throws(CNIError) -> Bool {
        try request { () throws(NetlinkError) in try NFTables().contains(rules) }
    }

    func addSpoofRule(_ rule: MacSpoofRule) throws(CNIError) {
        try request { () throws(NetlinkError) in try MacSpoofTable().add(rule) }
    }

    func removeSpoofRules(where shouldRemove: (String) -> Bool) throws(CNIError) {
        try request { () throws(NetlinkError) in _ = try MacSpoofTable().remove(where: shouldRemove) }
    }

    func spoofRuleComments() throws(CNIError) -> [String] {
        try request { () throws(NetlinkError) in try MacSpoofTable().rules().compactMap(\.comment) }
    }
}
