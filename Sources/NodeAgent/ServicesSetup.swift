#if canImport(Glibc)
import Glibc
#endif
import Addresses
import Netlink
import NFTables

/// What Services and routed pod traffic need from the node beyond routes, checked at start and
/// at every sync (so a firewall reloaded by hand, or a Docker started later that sets the
/// FORWARD policy to DROP, is repaired within one resync):
///
/// - **br_netfilter.** Without it the bridge's traffic never meets netfilter, and a Service
///   answered by a pod on the same node gets no reply (the plugin turns on its own bridge's
///   switches, but the kernel must have bridge netfilter at all). The agent does not load the
///   module: that needs CAP_SYS_MODULE and the host's /lib/modules in the agent's container,
///   and a module loaded by hand is gone after a reboot. Loading it is the node's provisioning
///   (`/etc/modules-load.d/`, as kubeadm's setup documents it). The agent reports the node not
///   ready instead, naming the module and the fix, and becomes ready once the module is there.
/// - **FORWARD accepts.** With `--cluster-cidr`, pod traffic from and to the cluster CIDRs is
///   accepted in iptables-nft's FORWARD chains (`ForwardAccept`), as flannel does for its network.
public final class ServicesSetup {
    let clusterCIDRs: [IPNetwork]
    private let hasBridgeNetfilter: () -> Bool
    private let forwardAccept: () throws(NetlinkError) -> ForwardAccept
    private var reported: [String: String] = [:]

    /// `hasBridgeNetfilter` and `forwardAccept` are seams for tests; by default the agent's own
    /// namespace (/proc/sys/net/bridge, a netfilter socket opened per sync).
    public init(
        clusterCIDRs: [IPNetwork], hasBridgeNetfilter: @escaping () -> Bool = { access("/proc/sys/net/bridge", F_OK) == 0 },
        forwardAccept: @escaping () throws(NetlinkError) -> ForwardAccept = { () throws(NetlinkError) in try ForwardAccept() }
    ) {
        self.clusterCIDRs = clusterCIDRs
        self.hasBridgeNetfilter = hasBridgeNetfilter
        self.forwardAccept = forwardAccept
    }

    public static let notReadyReason =
        "the kernel has no bridge netfilter (no /proc/sys/net/bridge): Services answered by a pod on this node would get no reply; run `modprobe br_netfilter` on the node and add br_netfilter to /etc/modules-load.d/ (the agent checks again at every resync)"

    /// Repairs what it can; returns whether the node can serve Services (br_netfilter present).
    @discardableResult
    public func reconcile() -> Bool {
        ensureForwardAccepts()
        guard hasBridgeNetfilter() else {
            report("br_netfilter", "not ready: " + ServicesSetup.notReadyReason)
            return false
        }
        clear("br_netfilter")
        return true
    }

    private func ensureForwardAccepts() {
        guard !clusterCIDRs.isEmpty else {
            report(
                "forward",
                "no --cluster-cidr: the FORWARD chains are left alone (on a node whose FORWARD policy is DROP, pod traffic is dropped)")
            return
        }
        let outcomes: [IPAddress.Family: ForwardAccept.Outcome]
        do { outcomes = try forwardAccept().ensure(clusterCIDRs) } catch {
            report("forward", "cannot add the FORWARD accepts for \(cidrList): \(error)")
            return
        }
        clear("forward")
        for family in [IPAddress.Family.v4, .v6] {
            guard let outcome = outcomes[family], clusterCIDRs.contains(where: { $0.address.family == family }) else { continue }
            let table = family == .v4 ? "ip filter" : "ip6 filter"
            if !outcome.chainExists {
                report(
                    "forward \(table)",
                    "no iptables-nft FORWARD chain (nftables table \(table)): nothing to accept pod traffic in; checking again at every resync\(ServicesSetup.legacyNote(family))"
                )
                continue
            }
            report("forward \(table)", "FORWARD accepts for pod traffic are in \(table)")
            for rule in outcome.added { Log.line("\(table): appended \(rule)") }
            if outcome.removed > 0 { Log.line("\(table): removed \(outcome.removed) outdated FORWARD accepts of ours") }
        }
    }

    private var cidrList: String { clusterCIDRs.map(\.description).joined(separator: ", ") }

    /// On a node whose iptables is iptables-legacy, FORWARD lives in x_tables, out of nftables'
    /// reach: its tables appear in /proc/net/ip*_tables_names once used.
    static func legacyNote(_ family: IPAddress.Family) -> String {
        let names = family == .v4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names"
        guard let text = readWholeFile(names), String(decoding: text, as: UTF8.self).split(separator: "\n").contains("filter") else {
            return ""
        }
        let tool = family == .v4 ? "iptables-legacy" : "ip6tables-legacy"
        return
            "; iptables-legacy's filter table is in use (\(names)): if its FORWARD policy is DROP, accept pod traffic there yourself (`\(tool) -A FORWARD -s CIDR -j ACCEPT` and `-d CIDR`)"
    }

    private func report(_ key: String, _ message: String) {
        guard reported[key] != message else { return }
        reported[key] = message
        Log.line(message)
    }

    private func clear(_ key: String) { reported[key] = nil }
}

extension ServicesSetup {
    /// `bridge-ipam-agent --remove-forward-accepts`: takes our FORWARD accepts out of both
    /// families (when uninstalling). Returns the exit status.
    public static func removeForwardAccepts() -> Int32 {
        do {
            let count = try ForwardAccept().removeAll()
            Log.line("removed \(count) FORWARD accepts of ours")
            return 0
        } catch {
            Log.line("cannot remove the FORWARD accepts: \(error)")
            return 1
        }
    }
}
