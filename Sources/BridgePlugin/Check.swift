import CNI
import IPAM
import Netlink
import NFTables
import Addresses

/// CHECK: the attachment still looks as `prevResult` says: the pod interface with its MAC,
/// addresses and routes, the lease, the bridge, and the host veth on it with the port flags the
/// config asks for.
struct Check {
    let context: Context
    init(_ context: Context) { self.context = context }

    func failed(_ msg: String, details: String = "") -> CNIError { CNIError(.checkFailed, msg, details: details) }

    @available(*, noasync)
    func run() throws(CNIError) {
        try context.require(.v0_4_0, for: "CHECK")
        let config = context.config
        let environment = context.environment
        guard let prev = config.prevResult else {
            throw CNIError(.invalidConfig, "invalid network configuration: CHECK needs prevResult")
        }
        let expected = try CNIResult.parse(prev)
        guard let podIndex = expected.interfaces.firstIndex(where: { $0.name == environment.ifname && $0.sandbox != nil }) else {
            throw failed("prevResult has no interface \(environment.ifname) inside a sandbox")
        }
        let podInterface = expected.interfaces[podIndex]
        let podIPs = expected.ips.filter { $0.interface == podIndex }
        guard !podIPs.isEmpty || config.ipam.isLayer2Only else { throw failed("prevResult has no address for \(environment.ifname)") }

        let pod: any NamespaceNetwork
        switch try context.namespaces.pod(at: environment.netns) {
        case .opened(let opened): pod = opened
        case .missing(let error): throw error
        case .node: throw CNIError(.invalidNamespace, "CNI_NETNS \(environment.netns) is the node's own network namespace")
        }
        let node = try context.namespaces.node()

        // The pod side.
        guard let link = try pod.link(named: environment.ifname) else {
            throw failed("interface \(environment.ifname) not found in \(environment.netns)")
        }
        if !podInterface.mac.isEmpty, let mac = link.mac, mac != MACAddress(podInterface.mac) {
            throw failed("interface \(environment.ifname) has MAC \(mac), prevResult says \(podInterface.mac)")
        }
        let addresses = try pod.addresses(index: link.index)
        for ip in podIPs where !addresses.contains(where: { $0.network == ip.address }) {
            throw failed(
                "address \(ip.address) missing on \(environment.ifname)",
                details: "found: \(addresses.map(\.network.description).joined(separator: ", "))")
        }
        for family in [IPAddress.Family.v4, .v6] {
            let wanted = expected.routes.filter { $0.dst.address.family == family }
            guard !wanted.isEmpty else { continue }
            let table = try pod.routes(family: family)
            for route in wanted where !table.contains(where: { $0.destination == route.dst && (route.gw == nil || $0.gateway == route.gw) })
            {
                throw failed("route \(route.dst)\(route.gw.map { " via \($0)" } ?? "") missing in \(environment.netns)")
            }
        }

        // The lease.
        if config.ipam.isBuiltIn {
            try config.ipam.withLeases(network: config.name) { (store) throws(CNIError) in
                for ip in podIPs {
                    guard let owner = store.owner(of: ip.address.address) else {
                        throw failed("no lease for \(ip.address.address) in \(store.directory)")
                    }
                    guard owner.containerID == environment.containerID, owner.ifname == environment.ifname || owner.ifname.isEmpty else {
                        throw failed("lease for \(ip.address.address) belongs to \(owner.containerID)/\(owner.ifname)")
                    }
                }
            }
        }

        if config.ipMasq {
            let masquerade = Masquerade(config: config, filter: context.namespaces.packetFilter())
            if try !masquerade.isPresent() {
                let rules = masquerade.rules
                throw failed(
                    "the ipMasq rule of network \(config.name) is missing from nftables table \(rules.map { "\($0.familyKeyword) \(NFTables.table)" }.joined(separator: " or "))",
                    details: "expected: \(rules.flatMap { rule in rule.sources.map(rule.nftSyntax(source:)) }.joined(separator: "; "))")
            }
        }

        if config.macSpoofCheck,
            try !MacSpoofCheck(network: config.name, filter: context.namespaces.packetFilter()).isPresent(owner: context.owner)
        {
            throw failed("the macspoofchk rule of \(environment.ifname) is missing from nftables table bridge \(MacSpoofTable.table)")
        }

        // The node side.
        guard let bridge = try node.link(named: config.bridge) else {
            throw failed("bridge \(config.bridge) not found")
        }
        guard bridge.kind == "bridge" else { throw failed("\(config.bridge) is not a bridge") }
        guard bridge.isUp else { throw failed("bridge \(config.bridge) is down") }
        if let problem = BridgeNetfilterCheck.problem(with: bridge) { throw failed(problem, details: BridgeNetfilterCheck.checkDetails) }
        // The host end is the pod interface's veth peer (chained plugins may list host
        // interfaces of their own, such as bandwidth's ifb device: those are theirs to check).
        guard let peerIndex = link.peerIndex,
            let veth = try node.link(index: peerIndex)
        else {
            throw failed("the host end of \(environment.ifname)'s veth pair is missing")
        }
        guard expected.interfaces.contains(where: { $0.name == veth.name && $0.sandbox == nil }) else {
            throw failed("host interface \(veth.name) (the peer of \(environment.ifname)) is not in prevResult")
        }
        guard veth.master == bridge.index else {
            throw failed("host interface \(veth.name) is not attached to bridge \(config.bridge)")
        }
        try checkPortSettings(pod: link, hostVeth: veth)
    }

    /// What the config promised for this attachment's ports: the host veth's hairpin flag
    /// (`hairpinMode`) and isolation flag (`portIsolation`) as ADD set them, and the pod
    /// interface down under `disableContainerInterface`.
    func checkPortSettings(pod: Link, hostVeth veth: Link) throws(CNIError) {
        let config = context.config
        let ifname = context.environment.ifname
        if config.disableContainerInterface && pod.isUp {
            throw failed("interface \(ifname) is up, but the config says disableContainerInterface")
        }
        // The kernel reports a port's flags with the link; nil (an old kernel) is not checked.
        guard let port = veth.bridgePort else { return }
        if let hairpin = port.hairpin, hairpin != config.hairpinMode {
            throw failed(
                "hairpin mode of bridge port \(veth.name) is \(hairpin ? "on" : "off"), the config says hairpinMode \(config.hairpinMode)")
        }
        if let isolated = port.isolated, isolated != config.portIsolation {
            throw failed(
                "bridge port \(veth.name) is \(isolated ? "" : "not ")isolated, the config says portIsolation \(config.portIsolation)")
        }
    }
}
