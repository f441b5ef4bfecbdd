import CNI
import Netlink

/// Services on a bridge node: kube-proxy DNATs a Service address to a pod, and when that pod
/// sits on the same bridge as the client, its reply crosses the bridge without ever meeting
/// netfilter unless the bridge hands its frames to the `ip`/`ip6` hooks. The reply is then never
/// un-DNATed and the client drops it (DNS fails on the node where CoreDNS runs). The plugin turns
/// on its own bridge's switches (`Bridge.ensure`); these are the verbs' checks of them.
enum BridgeNetfilterCheck {
    /// CHECK: what is wrong with the bridge's switches, or nil. A kernel that reports none has
    /// no bridge netfilter at all; STATUS names that.
    static func problem(with bridge: Link) -> String? {
        guard let netfilter = bridge.bridgeNetfilter, netfilter != .on else { return nil }
        return "bridge \(bridge.name) does not pass its traffic to netfilter (\(netfilter))"
    }

    static let checkDetails = "Services answered by a pod on this node fail without it; an ADD turns it back on"

    /// STATUS: code 50 when the kernel filters no bridged traffic (br_netfilter not loaded).
    static func unavailable(on node: any NamespaceNetwork) -> CNIError? {
        guard !node.hasBridgeNetfilter() else { return nil }
        return CNIError(
            .notAvailable, "the kernel does not filter bridged traffic: br_netfilter is not loaded (no /proc/sys/net/bridge)",
            details:
                "Services answered by a pod on this node would get no reply; load it with `modprobe br_netfilter` and keep it loaded across reboots with `echo br_netfilter > /etc/modules-load.d/br_netfilter.conf`"
        )
    }
}
