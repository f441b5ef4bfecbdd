import Addresses
import ClusterRoutes

/// The agent's command line.
public struct AgentOptions: Equatable, Sendable {
    public var kubeconfig: String?
    public var nodeName: String?
    public var subnetFile = "/run/bridge-ipam/podcidr"
    public var installCNI: (binDir: String, confDir: String)?
    public var cniPlugin: String?
    public var cniConflist = "/etc/bridge-ipam/10-bridge-ipam.conflist"
    public var resync = 60.0
    public var readyFile: String?
    public var backoffMax = 30.0
    public var watchTimeout = 300
    /// Masquerade traffic leaving the cluster CIDRs (`--cluster-cidr`, else the conflist's
    /// `ipam.clusterCIDR`; see `NodeMasquerade`).
    public var masquerade = false
    /// Enforce NetworkPolicy for this node's pods (`PolicyAgent`).
    public var networkPolicy = false
    public var routing = RoutingMode.auto
    public var metricsAddress: String?
    public var listPageSize = 500
    /// Pod traffic from and to these is accepted in the node's FORWARD chains (`ServicesSetup`).
    public var clusterCIDRs: [IPNetwork] = []

    public init() {}

    public static func == (l: AgentOptions, r: AgentOptions) -> Bool {
        l.kubeconfig == r.kubeconfig && l.nodeName == r.nodeName && l.subnetFile == r.subnetFile
            && l.installCNI?.binDir == r.installCNI?.binDir && l.installCNI?.confDir == r.installCNI?.confDir
            && l.cniPlugin == r.cniPlugin && l.cniConflist == r.cniConflist && l.resync == r.resync
            && l.readyFile == r.readyFile && l.backoffMax == r.backoffMax && l.watchTimeout == r.watchTimeout
            && l.networkPolicy == r.networkPolicy
            && l.routing == r.routing
            && l.metricsAddress == r.metricsAddress && l.listPageSize == r.listPageSize
            && l.clusterCIDRs == r.clusterCIDRs && l.masquerade == r.masquerade
    }

    public static let usage = """
        usage: bridge-ipam-agent --version
               bridge-ipam-agent [--kubeconfig FILE] [--node NAME] [--subnet-file PATH]
                                 [--install-cni BIN_DIR CONF_DIR [--cni-plugin FILE] [--cni-conflist FILE]]
                                 [--resync SECONDS] [--ready-file PATH] [--backoff-max SECONDS] [--watch-timeout SECONDS]
                                 [--network-policy]
                                 [--routing auto|direct|vxlan]
                                 [--metrics-address HOST:PORT] [--list-page-size N]
                                 [--masquerade]
                                 [--cluster-cidr CIDR]...
               bridge-ipam-agent --remove-forward-accepts
          --kubeconfig   API server and credentials (default: the in-cluster service account)
          --node         this node's name (default: $NODE_NAME)
          --subnet-file  where this node's podCIDRs are written for ipam.subnetFile (default /run/bridge-ipam/podcidr)
          --install-cni  copy the plugin (--cni-plugin, default: bridge-ipam beside this program) into BIN_DIR at
                         start, and the conflist (--cni-conflist, default /etc/bridge-ipam/10-bridge-ipam.conflist)
                         into CONF_DIR once the subnet file is written
          --resync       seconds between full repairs of the routing table (default 60)
          --ready-file   created once the node is listed and its subnet file written (for a readiness probe)
          --backoff-max  longest wait between reconnection attempts, seconds (default 30)
          --watch-timeout seconds a watch request may last before it is renewed (default 300)
          --network-policy enforce NetworkPolicy for this node's pods (table inet bridge_ipam_policy); without
                         it the table is left as it is
          --routing      how other nodes' pods are reached: auto (default) a direct route when the node's
                         InternalIP is on one of this node's links, VXLAN (device bipam.1, VNI 1, UDP 8472)
                         otherwise; direct: routes only; vxlan: the tunnel for every node
          --metrics-address  serve /healthz, /readyz and /metrics on HOST:PORT ([::1]:PORT, :PORT for all)
          --list-page-size   Nodes per page of the initial list (limit/continue; default 500)
          --cluster-cidr the cluster's pod CIDR (once per family): pod traffic from and to it is accepted in
                         iptables-nft's FORWARD chain (a node whose FORWARD policy is DROP forwards it)
          --remove-forward-accepts  remove those FORWARD accepts and exit
          --masquerade   traffic from the cluster CIDRs (--cluster-cidr, else the conflist's ipam.clusterCIDR) to anywhere
                         but them and the nodes' InternalIPs leaves with the node's address (nftables table bridge_ipam_agent)
        """

    public struct UsageError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses the arguments (without the program name); `environment` supplies NODE_NAME.
    public static func parse(_ arguments: [String], environment: [String: String]) throws(UsageError) -> AgentOptions {
        var options = AgentOptions()
        var rest = arguments[...]
        func value(_ flag: String) throws(UsageError) -> String {
            guard let v = rest.popFirst(), !v.isEmpty else { throw UsageError(message: "\(flag) needs a value") }
            return v
        }
        func seconds(_ flag: String) throws(UsageError) -> Double {
            let text = try value(flag)
            guard let s = Double(text), s > 0, s < 1e6 else { throw UsageError(message: "\(flag) \(text): not a number of seconds") }
            return s
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--kubeconfig": options.kubeconfig = try value(flag)
            case "--node": options.nodeName = try value(flag)
            case "--subnet-file": options.subnetFile = try value(flag)
            case "--install-cni": options.installCNI = (try value(flag), try value(flag))
            case "--cni-plugin": options.cniPlugin = try value(flag)
            case "--cni-conflist": options.cniConflist = try value(flag)
            case "--resync": options.resync = try seconds(flag)
            case "--ready-file": options.readyFile = try value(flag)
            case "--backoff-max": options.backoffMax = try seconds(flag)
            case "--watch-timeout": options.watchTimeout = max(1, Int(try seconds(flag)))
            case "--masquerade": options.masquerade = true
            case "--network-policy": options.networkPolicy = true
            case "--routing":
                let text = try value(flag)
                guard let mode = RoutingMode(rawValue: text) else { throw UsageError(message: "--routing \(text): auto, direct or vxlan") }
                options.routing = mode
            case "--metrics-address":
                let address = try value(flag)
                guard address.contains(":") else { throw UsageError(message: "--metrics-address \(address): not HOST:PORT") }
                options.metricsAddress = address
            case "--list-page-size":
                let text = try value(flag)
                guard let n = Int(text), n > 0, n <= 100_000 else { throw UsageError(message: "--list-page-size \(text): not 1 to 100000") }
                options.listPageSize = n
            case "--cluster-cidr":
                let text = try value(flag)
                guard let cidr = IPNetwork(cidr: text) else { throw UsageError(message: "\(flag) \(text): not a CIDR") }
                options.clusterCIDRs.append(cidr.masked)
            default: throw UsageError(message: "unknown argument \(flag)")
            }
        }
        if options.nodeName == nil, let name = environment["NODE_NAME"], !name.isEmpty { options.nodeName = name }
        guard options.nodeName != nil else { throw UsageError(message: "the node's name is needed: --node NAME or $NODE_NAME") }
        return options
    }
}
