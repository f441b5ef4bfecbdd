// swift-tools-version:6.0
import PackageDescription

// Layers, bottom up:
//   CNetlinkShim  C: libmnl plus the few things Swift cannot call (macros, GNU-only setns)
//   Addresses     IP addresses and networks, shared by the layers above
//   SystemIO      whole-file reads with a size cap, writes, the errno-carrying SystemError, trimming
//   Netlink       typed links / addresses / routes / sysctls / namespaces over libmnl
//   CNFTNL        libnftnl (system library); NFTables: the ipMasq and macspoofchk rules through it
//   JSON          a small JSON value type (keeps Foundation out of the plugin: ~0.6 ms per run)
//   IPAM          host-local compatible allocation and on-disk leases; no netlink
//   CNI           the spec's environment, config, result and error types
//   BridgePlugin  ADD / DEL / CHECK / VERSION / GC / STATUS
//   ClusterRoutes the cluster's nodes and this node's plan toward them (routes, VXLAN entries), no I/O
//   RouteKernel   that plan applied over netlink (routes of protocol 212, the VXLAN device and entries)
//   RoutesCommand `bridge-ipam routes sync`: one route per other node's pod subnet
//   CBuildInfo    C: the version and git commit fixed at build time
//   CProcessStart C: argv for the Swift runtime without its /proc/self/maps scan at start-up
//   bridge-ipam   a thin main: the CNI plugin, or the node command when given arguments
//   CCurl         C: libcurl, with typed wrappers for its variadic calls
//   NetworkPolicy NetworkPolicy semantics: pods, namespaces, policies decoded; a node's rules as data
//   CYAML         libyaml (system library), for kubeconfigs; linked statically in release builds
//   NodeAgent     the Kubernetes node agent: list + watch Nodes, subnet file, routes (ClusterRoutes),
//                 the cluster's masquerade rule (NFTables)
//   bridge-ipam-agent  its main; a program of its own, so the plugin links none of it
let package = Package(
    name: "bridge-ipam",
    products: [
        .executable(name: "bridge-ipam", targets: ["bridge-ipam"]),
        .executable(name: "bridge-ipam-agent", targets: ["bridge-ipam-agent"]),
    ],
    targets: [
        .target(
            name: "CNetlinkShim",
            linkerSettings: [.linkedLibrary("mnl")]
        ),
        .systemLibrary(name: "CNFTNL", providers: [.apt(["libnftnl-dev"])]),
        .target(name: "CBuildInfo"),
        .target(name: "Addresses"),
        .target(name: "SystemIO"),
        .target(name: "Netlink", dependencies: ["CNetlinkShim", "Addresses", "SystemIO"]),
        .target(name: "NFTables", dependencies: ["CNFTNL", "Addresses", "Netlink"], linkerSettings: [.linkedLibrary("nftnl")]),
        .target(name: "JSON"),
        .target(name: "IPAM", dependencies: ["Addresses", "SystemIO"]),
        .target(name: "CNI", dependencies: ["Addresses", "JSON", "IPAM", "SystemIO"]),
        .target(name: "BridgePlugin", dependencies: ["Addresses", "CNI", "IPAM", "JSON", "Netlink", "NFTables", "SystemIO"]),
        .target(name: "ClusterRoutes", dependencies: ["Addresses", "JSON"]),
        .target(name: "RouteKernel", dependencies: ["Addresses", "ClusterRoutes", "Netlink"]),
        .target(name: "RoutesCommand", dependencies: ["Addresses", "ClusterRoutes", "RouteKernel", "Netlink", "SystemIO"]),
        // Linked only into the executable: hands argv to the Swift runtime (see argv.c).
        .target(name: "CProcessStart"),
        .executableTarget(
            name: "bridge-ipam", dependencies: ["BridgePlugin", "RoutesCommand", "CNI", "CBuildInfo", "CProcessStart", "SystemIO"]),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "NetworkPolicy", dependencies: ["Addresses", "JSON"]),
        .systemLibrary(name: "CYAML", providers: [.apt(["libyaml-dev"])]),
        .target(
            name: "NodeAgent",
            dependencies: [
                "Addresses", "CCurl", "ClusterRoutes", "RouteKernel", "CYAML", "JSON", "Netlink", "NetworkPolicy", "NFTables", "SystemIO",
            ]),
        .executableTarget(name: "bridge-ipam-agent", dependencies: ["NodeAgent", "Netlink", "CBuildInfo"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "SystemIOTests", dependencies: ["SystemIO"]),
        .testTarget(name: "AddressesTests", dependencies: ["Addresses"]),
        .testTarget(name: "IPAMTests", dependencies: ["Addresses", "IPAM", "SystemIO"]),
        .testTarget(name: "ClusterRoutesTests", dependencies: ["Addresses", "ClusterRoutes"]),
        .testTarget(name: "NFTablesTests", dependencies: ["Addresses", "NFTables", "Netlink"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Addresses", "CNetlinkShim", "CNFTNL", "Netlink", "NFTables"]),
        .testTarget(name: "CNITests", dependencies: ["Addresses", "CNI", "JSON", "IPAM"]),
        .testTarget(name: "BridgePluginTests", dependencies: ["BridgePlugin", "Addresses", "CNI", "IPAM", "JSON", "Netlink", "SystemIO"]),
        .testTarget(
            name: "NodeAgentTests",
            dependencies: ["NodeAgent", "ClusterRoutes", "Addresses", "JSON", "NetworkPolicy", "NFTables", "Netlink", "SystemIO"]),
        .testTarget(name: "NetworkPolicyTests", dependencies: ["NetworkPolicy", "Addresses", "JSON"]),
    ]
)
