import CBuildInfo
import CNI

/// What the binary says about itself to a person (`--version`, `--help`, or run by hand without
/// CNI_COMMAND). Runtimes never see any of it.
enum Usage {
    /// As the reference plugins word it: "CNI bridge-ipam plugin v0.2.0 (git abc1234)" and the
    /// protocol versions.
    static var version: String {
        let commit = String(cString: bridge_ipam_git_commit())
        return "CNI bridge-ipam plugin v\(String(cString: bridge_ipam_version()))\(commit.isEmpty ? "" : " (git \(commit))")\n"
            + "CNI protocol versions supported: \(CNIVersion.supported.map(\.description).joined(separator: ", "))\n"
    }

    static let help = """
        bridge-ipam: a CNI plugin that attaches each pod to the node's bridge through a veth pair
        and gives it an address from the node's pod subnet (the reference bridge and host-local
        plugins in one binary).

        As a CNI plugin, run by the container runtime:
          CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION CNI_CONTAINERID=ID CNI_NETNS=PATH \\
          CNI_IFNAME=NAME CNI_PATH=DIRS [CNI_ARGS=K=V;...] bridge-ipam < network-config.json
          The runtime names the verb and the pod in CNI_* variables and writes the network
          configuration (JSON, e.g. conf/bridge-ipam.conf) on stdin. The plugin prints the result
          of ADD (or the supported versions for VERSION) on stdout and exits 0; on failure it
          prints a CNI error {"cniVersion","code","msg","details"} on stdout and exits 1.
          With "logFile" in the configuration, every invocation is logged there.

        On a node:
          bridge-ipam routes sync --cluster FILE [--node NAME] [--dry-run]
              make this node's routing table hold one route per other node's pod subnet, via
              that node's address (FILE: `kubectl get nodes -o json`, or {"nodes":[...]})
          bridge-ipam --version     the plugin's version and the CNI versions it supports
          bridge-ipam --help        this text

        The node agent, bridge-ipam-agent (a separate binary, run on every node by a DaemonSet),
        writes the node's pod subnet file and keeps the routes between nodes in sync with the
        Kubernetes API.

        README.md: configuration keys, error codes, and a walkthrough that runs the plugin by hand.

        """

    /// For a person who ran the plugin from a terminal without CNI_COMMAND.
    static let byHand = """
        bridge-ipam is a CNI plugin: container runtimes run it with CNI_COMMAND and the other
        CNI_* variables set and the network configuration on stdin. To try it by hand:
          CNI_COMMAND=VERSION bridge-ipam < /dev/null
          CNI_COMMAND=ADD CNI_CONTAINERID=ctr1 CNI_NETNS=/run/netns/pod1 CNI_IFNAME=eth0 \\
            CNI_PATH=/opt/cni/bin bridge-ipam < conf/bridge-ipam.conf
        `bridge-ipam --help` says more.

        """
}
