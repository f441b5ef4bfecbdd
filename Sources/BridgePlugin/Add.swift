#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
import JSON
import Netlink
import Addresses

/// ADD: a veth pair from the node bridge into the pod, an address from IPAM, routes, a result.
/// Whatever this ADD creates (lease, veth) is removed again if a later step fails.
struct Add {
    let context: Context
    init(_ context: Context) { self.context = context }

    var config: NetworkConfig { context.config }
    var environment: Environment { context.environment }

    @available(*, noasync)
    func run() throws(CNIError) -> JSONValue {
        let requests = try RuntimeRequests(environment: environment, config: config)
        var previous: CNIResult?
        if let prev = config.prevResult { previous = try CNIResult.parse(prev) }

        let pod: any NamespaceNetwork
        switch try context.namespaces.pod(at: environment.netns) {
        case .opened(let opened): pod = opened
        case .missing(let error): throw error
        case .node:
            throw CNIError(
                .invalidNamespace, "CNI_NETNS \(environment.netns) is the node's own network namespace",
                details: "refusing to move \(environment.ifname) out of the node")
        }
        let node = try context.namespaces.node()
        // Cheap here, and it keeps a duplicate ADD from touching IPAM at all.
        if try pod.link(named: environment.ifname) != nil { throw interfaceExists() }

        let bridgeControl = Bridge(node: node, config: config)
        let existingBridge = try bridgeControl.inspect()

        let ipam = context.ipam
        let masquerade = config.ipMasq ? Masquerade(config: config, filter: context.namespaces.packetFilter()) : nil
        let outcome = try ipam.add(owner: context.owner, requested: requests.addresses, masquerade: masquerade)
        var hostVeth: String?
        let spoofCheck = config.macSpoofCheck ? MacSpoofCheck(network: config.name, filter: context.namespaces.packetFilter()) : nil
        var spoofRuleAdded = false
        do throws(CNIError) {
            let bridge = try bridgeControl.ensure(existing: existingBridge)
            if config.isGateway {
                try bridgeControl.ensureGateways(
                    outcome.ips.compactMap { ip in
                        ip.gateway.flatMap { IPNetwork(address: $0, prefixLength: ip.address.prefixLength) }
                    }, on: bridge)
            }
            let podMAC = requests.mac ?? .random()
            let veth = try createVeth(node: node, pod: pod, bridge: bridge, podMAC: podMAC)
            hostVeth = veth.name
            // GC finds host ends by their alias; the kernel ignores one in the creating request.
            // The bridge port flags go in the same datagram.
            let alias = HostVethTag(network: config.name, owner: context.owner).alias
            let port = BridgePortSettings(hairpin: config.hairpinMode ? true : nil, isolated: config.portIsolation ? true : nil)
            try node.tagBridgePort(index: veth.index, name: veth.name, alias: alias, port: port)
            if let spoofCheck {
                try spoofCheck.add(owner: context.owner, hostInterface: veth.name, mac: podMAC)
                spoofRuleAdded = true
            }
            let routes = podRoutes(outcome)
            let hasIPv6 = outcome.ips.contains { $0.address.address.family == .v6 }
            if hasIPv6 { try prepareIPv6(pod) }
            try pod.configure(
                InterfaceSetup(
                    index: veth.peerIndex, name: environment.ifname, up: !config.disableContainerInterface,
                    addresses: outcome.ips.map(\.address), addressOptions: AddressOptions(skipDuplicateDetection: !config.enableDAD),
                    routes: routes))
            if hasIPv6 && config.enableDAD { try waitForDuplicateAddressDetection(pod, index: veth.peerIndex) }
            return result(previous: previous, bridge: bridge, veth: veth, podMAC: podMAC, outcome: outcome, routes: routes)
                .json(version: config.cniVersion, versionText: config.cniVersionText)
        } catch {
            // Undo in reverse; what cannot be undone is named in the error rather than dropped.
            var leftBehind: [String] = []
            if let hostVeth {
                do throws(CNIError) { try node.deleteLink(named: hostVeth) } catch {
                    leftBehind.append("host veth \(hostVeth): \(error.reason)")
                }
            }
            if spoofRuleAdded, let spoofCheck {
                do throws(CNIError) { try spoofCheck.remove(owner: context.owner) } catch {
                    leftBehind.append("macspoofchk rule: \(error.reason)")
                }
            }
            do throws(CNIError) {
                try ipam.delete(owner: context.owner, addresses: outcome.ips.map(\.address.address), masquerade: masquerade)
            } catch {
                leftBehind.append("lease: \(error.reason)")
            }
            throw error.addingRollbackFailures(leftBehind)
        }
    }

    private func interfaceExists() -> CNIError {
        CNIError(
            .interfaceExists, "interface \(environment.ifname) already exists in \(environment.netns)",
            details: "a container can be attached once per interface name; DEL it first or use another CNI_IFNAME")
    }

    /// Creates the pair with the pod end inside the pod; retries on a host-name collision.
    private func createVeth(
        node: any NamespaceNetwork, pod: any NamespaceNetwork, bridge: Link,
        podMAC: MACAddress
    ) throws(CNIError) -> (name: String, index: Int32, mac: MACAddress, peerIndex: Int32) {
        let mtu = config.mtu.map(UInt32.init) ?? bridge.mtu
        for _ in 0..<8 {
            let pair = VethPair(
                name: Add.hostVethName(), mac: .random(), peerName: environment.ifname, peerMAC: podMAC,
                peerNamespaceFD: pod.descriptor, mtu: mtu == 0 ? nil : mtu, master: bridge.index)
            // The kernel echoes the new link: its index and IFLA_LINK, the peer's index in the pod.
            guard let created = try node.createVethPair(pair) else {
                // A name exists: the pod's (another ADD won the race) or, rarely, the host end's.
                if (try? pod.link(named: environment.ifname)) != nil { throw interfaceExists() }
                continue
            }
            return (pair.name, created.index, pair.mac, created.peerIndex)
        }
        throw CNIError(.tryAgainLater, "could not find a free host veth name after 8 tries")
    }

    /// `veth` + 8 random hex digits, as the reference bridge plugin names host ends.
    static func hostVethName() -> String {
        // Byte by byte: map + String(radix:) + joined() cost ~100K instructions, 9% of an ADD.
        let digits = Array("0123456789abcdef".utf8)
        var name = Array("veth".utf8)
        for byte in randomBytes(4) {
            name.append(digits[Int(byte >> 4)])
            name.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: name, as: UTF8.self)
    }

    /// The pod's routes: IPAM's (a route without `gw` goes via the gateway of its family), then a
    /// default route per family with `isDefaultGateway` unless IPAM already gave one.
    private func podRoutes(_ outcome: IPAMOutcome) -> [Route] {
        func gateway(for family: IPAddress.Family) -> IPAddress? {
            outcome.ips.first { $0.address.address.family == family && $0.gateway != nil }?.gateway
        }
        var routes = outcome.routes.map { r in Route(dst: r.dst, gw: r.gw ?? gateway(for: r.dst.address.family)) }
        if config.isDefaultGateway {
            for family in [IPAddress.Family.v4, .v6] {
                guard let gw = gateway(for: family),
                    !routes.contains(where: { $0.dst.prefixLength == 0 && $0.dst.address.family == family })
                else { continue }
                let any = family == .v4 ? IPAddress.v4(0) : IPAddress.v6(0)
                routes.append(Route(dst: IPNetwork(address: any, prefixLength: 0)!, gw: gw))
            }
        }
        return routes
    }

    /// IPv6 settings of the pod interface that only /proc/sys reaches (from inside the pod), made
    /// before the interface comes up, as the reference does: IPv6 enabled on it and on loopback
    /// (a namespace may start with disable_ipv6=1, and then adding an IPv6 address fails), and
    /// duplicate address detection off unless `enabledad` (so the link-local address needs no
    /// DAD either; the pod's own addresses also carry IFA_F_NODAD).
    @available(*, noasync)
    private func prepareIPv6(_ pod: any NamespaceNetwork) throws(CNIError) {
        do { try pod.prepareIPv6(interface: environment.ifname, enableDAD: config.enableDAD) } catch {
            throw CNIError(.netlinkFailure, "cannot enable IPv6 on \(environment.ifname) in \(environment.netns)", details: error.reason)
        }
    }

    /// With `enabledad`, as the reference: ADD returns once the pod's IPv6 addresses have left
    /// the tentative state (at most 10 s), and fails when one turns out to be a duplicate.
    private func waitForDuplicateAddressDetection(_ pod: any NamespaceNetwork, index: Int32) throws(CNIError) {
        var delay = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        for _ in 0..<1000 {
            let addresses = try pod.addresses(index: index)
            if let duplicate = addresses.first(where: \.isDuplicate) {
                throw CNIError(
                    .addressUnavailable, "duplicate address detection found \(duplicate.network) in use on the pod network",
                    details: "another host on the bridge answers for it; the lease is released")
            }
            if !addresses.contains(where: \.isTentative) { return }
            nanosleep(&delay, nil)
        }
        throw CNIError(.netlinkFailure, "the pod's IPv6 addresses were still tentative 10 s after ADD configured them (enabledad)")
    }

    private func result(
        previous: CNIResult?, bridge: Link, veth: (name: String, index: Int32, mac: MACAddress, peerIndex: Int32),
        podMAC: MACAddress, outcome: IPAMOutcome, routes: [Route]
    ) -> CNIResult {
        var result = previous ?? CNIResult()
        let base = result.interfaces.count
        result.interfaces += [
            .init(name: bridge.name, mac: bridge.mac?.description ?? ""),
            .init(name: veth.name, mac: veth.mac.description),
            .init(name: environment.ifname, mac: podMAC.description, sandbox: environment.netns),
        ]
        result.ips += outcome.ips.map { .init(address: $0.address, gateway: $0.gateway, interface: base + 2) }
        result.routes += routes
        result.dns = config.dns.merged(with: outcome.dns).merged(with: result.dns)
        return result
    }
}
