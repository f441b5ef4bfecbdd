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

        let home: NetworkNamespace, pod: NetworkNamespace
        do {
            home = try NetworkNamespace.current()
            pod = try NetworkNamespace(path: environment.netns)
        } catch { throw .namespace(error) }
        guard !pod.isSame(as: home) else {
            throw CNIError(.invalidNamespace, "CNI_NETNS \(environment.netns) is the node's own network namespace",
                           details: "refusing to move \(environment.ifname) out of the node")
        }
        let podSocket = try netlink { () throws(NetlinkError) in try pod.openSocket(returningTo: home) }
        let node = try netlink { () throws(NetlinkError) in try NetlinkSocket() }
        // Cheap here, and it keeps a duplicate ADD from touching IPAM at all.
        if try netlink({ () throws(NetlinkError) in try podSocket.link(named: environment.ifname) }) != nil {
            throw interfaceExists()
        }

        let bridgeControl = Bridge(socket: node, config: config)
        let existingBridge = try bridgeControl.inspect()

        let ipam = context.ipam
        let masquerade = config.ipMasq ? Masquerade(config: config) : nil
        let outcome = try ipam.add(owner: context.owner, requested: requests.addresses, masquerade: masquerade)
        var hostVeth: String?
        do throws(CNIError) {
            let bridge = try bridgeControl.ensure(existing: existingBridge)
            if config.isGateway {
                try bridgeControl.ensureGateways(outcome.ips.compactMap { ip in
                    ip.gateway.flatMap { IPNetwork(address: $0, prefixLength: ip.address.prefixLength) }
                }, on: bridge)
            }
            let podMAC = requests.mac ?? .random()
            let veth = try createVeth(node: node, podSocket: podSocket, pod: pod, bridge: bridge, podMAC: podMAC)
            hostVeth = veth.name
            // The kernel ignores an alias in the creating request; GC finds host ends by it.
            if let alias = HostVethTag(network: config.name, owner: context.owner).alias {
                try netlink { () throws(NetlinkError) in try node.setAlias(index: veth.index, name: veth.name, alias: alias) }
            }
            if config.hairpinMode {
                try netlink { () throws(NetlinkError) in try node.setHairpin(index: veth.index, name: veth.name) }
            }
            let routes = podRoutes(outcome)
            try configurePod(podSocket, index: veth.peerIndex, outcome: outcome, routes: routes)
            return result(previous: previous, bridge: bridge, veth: veth, podMAC: podMAC, outcome: outcome, routes: routes)
                .json(version: config.cniVersion, versionText: config.cniVersionText)
        } catch {
            if let hostVeth { _ = try? node.deleteLink(named: hostVeth) }
            try? ipam.delete(owner: context.owner, addresses: outcome.ips.map(\.address.address), masquerade: masquerade)
            throw error
        }
    }

    private func interfaceExists() -> CNIError {
        CNIError(.interfaceExists, "interface \(environment.ifname) already exists in \(environment.netns)",
                 details: "a container can be attached once per interface name; DEL it first or use another CNI_IFNAME")
    }

    /// Creates the pair with the pod end inside the pod; retries on a host-name collision.
    private func createVeth(node: NetlinkSocket, podSocket: NetlinkSocket, pod: NetworkNamespace, bridge: Link,
                            podMAC: MACAddress) throws(CNIError) -> (name: String, index: Int32, mac: MACAddress, peerIndex: Int32) {
        let mtu = config.mtu.map(UInt32.init) ?? bridge.mtu
        for _ in 0..<8 {
            var pair = VethPair(name: Add.hostVethName(), mac: .random(), peerName: environment.ifname, peerMAC: podMAC,
                                peerNamespaceFD: pod.fd, mtu: mtu == 0 ? nil : mtu, master: bridge.index)
            do {
                try node.createVethPair(pair)
            } catch where error.isExists {
                if (try? podSocket.link(named: environment.ifname)) != nil { throw interfaceExists() }
                pair.name = ""
                continue
            } catch {
                throw .netlink(error)
            }
            // One look-up gives both ends' indexes: IFLA_LINK is the peer's index inside the pod.
            guard let link = try netlink({ () throws(NetlinkError) in try node.link(named: pair.name) }), let peerIndex = link.peerIndex else {
                throw CNIError(.netlinkFailure, "veth \(pair.name) vanished right after it was created")
            }
            return (pair.name, link.index, pair.mac, peerIndex)
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
                guard let gw = gateway(for: family), !routes.contains(where: { $0.dst.prefixLength == 0 && $0.dst.address.family == family }) else { continue }
                let any = family == .v4 ? IPAddress.v4(0) : IPAddress.v6(0)
                routes.append(Route(dst: IPNetwork(address: any, prefixLength: 0)!, gw: gw))
            }
        }
        return routes
    }

    /// Inside the pod, in one netlink datagram: the interface up, arp_notify, addresses, then
    /// routes. The kernel handles the messages in order, so each gateway is on a connected
    /// network by the time its route arrives.
    private func configurePod(_ socket: NetlinkSocket, index: Int32, outcome: IPAMOutcome, routes: [Route]) throws(CNIError) {
        let name = environment.ifname
        try netlink { () throws(NetlinkError) in
            try socket.batch { batch in
                NetlinkSocket.setLink(index: index, name: name, up: true, to: &batch)
                // Announce the new address with gratuitous ARP when the link comes up, as the reference does.
                NetlinkSocket.setIPv4Setting(.arpNotify, value: 1, index: index, name: name, to: &batch)
                for ip in outcome.ips { NetlinkSocket.addAddress(ip.address, index: index, to: &batch) }
                for route in routes {
                    NetlinkSocket.addRoute(RouteEntry(destination: route.dst, gateway: route.gw, outputInterface: index), to: &batch)
                }
            }
        }
    }

    private func result(previous: CNIResult?, bridge: Link, veth: (name: String, index: Int32, mac: MACAddress, peerIndex: Int32),
                        podMAC: MACAddress, outcome: IPAMOutcome, routes: [Route]) -> CNIResult {
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
