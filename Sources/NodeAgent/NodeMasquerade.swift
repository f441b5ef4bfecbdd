import Addresses
import JSON
import NFTables
import Netlink

/// Where the masquerade rule lives: the kernel's nftables (`NFTables` on our own table), or a
/// unit test's fake.
public protocol MasqueradeTable: AnyObject {
    /// Makes the table hold exactly `rules`; returns whether anything changed.
    func ensure(_ rules: [MasqueradeRule]) throws(NetlinkError) -> Bool
}

extension NFTables: MasqueradeTable {}

/// The pod network's way out of the cluster (`--masquerade`): traffic from the cluster CIDR to
/// any destination but the cluster CIDR and the nodes' InternalIPs leaves the node with the
/// node's address, so the internet (and the upstream resolver CoreDNS forwards to) can answer.
/// Pod to pod and pod to node (any node) keep the pod's own address.
///
/// The plugin's `ipMasq` cannot do this alone: its exclusions come from the conflist, which is
/// the same on every node and cannot know the cluster's node addresses. The agent knows them
/// from the Node watch, so it keeps one rule per family of the cluster CIDR in a table of its
/// own, `ip bridge_ipam_agent` (`ip6` for an IPv6 cluster CIDR), postrouting at srcnat priority:
///
///     set excluded { type ipv4_addr; flags interval; elements = { 10.244.0.0/16, 192.168.1.2-192.168.1.3 } }
///     ip saddr 10.244.0.0/16 ip daddr != @excluded masquerade
///
/// The cluster CIDRs are the agent's `--cluster-cidr`s (one per family), or else the conflist's
/// `ipam.clusterCIDR`. The exclusions are the table's named interval set `excluded`, filled in
/// messages of a few hundred elements (one anonymous set cannot hold more than some 1,500 node
/// addresses); when a node joins, leaves or changes address, one transaction changes the
/// elements that differ and replaces the rule, tagged with a digest of the content.
public final class NodeMasquerade {
    public static let table = "bridge_ipam_agent"
    /// The named interval set of the exclusions, in each family's table.
    public static let exclusionSet = "excluded"
    /// The rule's network tag (`bridge-ipam cluster DIGEST`).
    static let tag = "cluster"

    public let clusterCIDRs: [IPNetwork]
    let table: any MasqueradeTable
    private var lastError: String?

    public init(clusterCIDRs: [IPNetwork], table: any MasqueradeTable) {
        self.clusterCIDRs = clusterCIDRs
        self.table = table
    }

    /// The rules for a cluster whose nodes have `nodeAddresses`: one per family of the cluster CIDRs.
    public static func rules(clusterCIDRs: [IPNetwork], nodeAddresses: [IPAddress]) -> [MasqueradeRule] {
        let hosts = Set(nodeAddresses).sorted().compactMap { IPNetwork(address: $0, prefixLength: $0.bitWidth) }
        return MasqueradeRule.rules(network: tag, sources: clusterCIDRs, excluded: clusterCIDRs + hosts)
    }

    /// Makes the rules match the nodes' addresses (a listing per family when nothing changed).
    /// Returns whether the rules are in place; a failure is logged once until it changes.
    @discardableResult
    public func reconcile(nodeAddresses: [IPAddress]) -> Bool {
        let rules = NodeMasquerade.rules(clusterCIDRs: clusterCIDRs, nodeAddresses: nodeAddresses)
        let start = Clock.monotonic()
        do {
            if try table.ensure(rules) {
                let excluded = rules.flatMap(\.excluded).count - clusterCIDRs.count
                let milliseconds = Int((Clock.monotonic() - start) * 1000)
                Log.line(
                    "masquerade: traffic from \(clusterCIDRs.map(\.description).joined(separator: " ")) leaves with the node's address unless it goes to the cluster CIDR or one of \(excluded) node addresses (set in \(milliseconds) ms)"
                )
            }
            lastError = nil
            return true
        } catch {
            let message =
                "masquerade: cannot set the rule in table \(NodeMasquerade.table): \(error); retrying at the next change or resync"
            if message != lastError { Log.line(message) }
            lastError = message
            return false
        }
    }

    /// Why the cluster CIDR could not be taken from the conflist.
    public struct ConflistError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The cluster CIDRs the conflist's IPAM names (`ipam.clusterCIDR` of its plugins, or of a
    /// single config): the one place an operator sets the cluster's pod network.
    public static func clusterCIDRs(conflist bytes: [UInt8], path: String) throws(ConflistError) -> [IPNetwork] {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw ConflistError(description: "\(path) is not JSON: \(error)") }
        let configs = value["plugins"]?.arrayValue ?? [value]
        var result: [IPNetwork] = []
        for config in configs {
            guard let text = config["ipam"]?["clusterCIDR"]?.stringValue else { continue }
            guard let cidr = IPNetwork(cidr: text), cidr.isNetworkAddress else {
                throw ConflistError(description: "\(path): ipam.clusterCIDR \"\(text)\" is not a network CIDR")
            }
            if !result.contains(cidr) { result.append(cidr) }
        }
        guard !result.isEmpty else {
            throw ConflistError(description: "\(path) names no ipam.clusterCIDR: --masquerade needs the cluster's pod network there")
        }
        return result
    }
}
