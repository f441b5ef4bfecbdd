#if canImport(Glibc)
import Glibc
#endif
import Addresses
import ClusterRoutes
import Netlink

/// `NetworkKernel` over netlink, in the caller's network namespace.
///
/// Ours, and only ours, is changed: routes carry protocol 212 (adds use NLM_F_EXCL, so a
/// foreign route to the same destination is refused, not replaced; deletes match the
/// protocol), and neighbour and forwarding entries are only read and written on our own
/// VXLAN device.
public final class NetlinkNetworkKernel: NetworkKernel {
    let socket: NetlinkSocket

    public init(socket: NetlinkSocket) { self.socket = socket }

    func fail(_ error: NetlinkError) -> KernelError { KernelError("\(error)") }

    public func localAddresses(excluding excluded: String) throws(KernelError) -> [(index: Int32, network: IPNetwork)] {
        do throws(NetlinkError) {
            let skip = try socket.link(named: excluded)?.index
            return try socket.addresses().filter { $0.index != skip }.map { ($0.index, $0.network) }
        } catch { throw fail(error) }
    }

    public func linkMTU(index: Int32) throws(KernelError) -> UInt32? {
        do { return try socket.link(index: index)?.mtu } catch { throw fail(error) }
    }

    public func ensureTunnel(_ device: TunnelDevice) throws(KernelError) -> (index: Int32, created: Bool) {
        do throws(NetlinkError) {
            let wanted = VXLANSettings(vni: device.vni, port: device.port, underlayIndex: device.underlayIndex, local: device.local)
            var created = false
            var link = try socket.link(named: device.name)
            if let existing = link, existing.kind != "vxlan" || existing.vxlan != wanted || existing.mac != device.mac {
                try socket.deleteLink(index: existing.index, name: existing.name)
                link = nil
            }
            if link == nil {
                try socket.createVXLAN(name: device.name, mac: device.mac, mtu: device.mtu, wanted)
                link = try socket.link(named: device.name)
                created = true
            }
            guard let link else {
                throw NetlinkError("look up \(device.name)", errno: ENODEV, kernelMessage: "it vanished right after it was created")
            }
            if link.mtu != device.mtu || !link.isUp {
                try socket.setLink(index: link.index, name: device.name, mtu: device.mtu)
            }
            let present = try socket.addresses(index: link.index).filter { !isLinkLocal($0.network.address) }.map(\.network)
            for address in present where !device.addresses.contains(address) { try socket.deleteAddress(address, index: link.index) }
            for address in device.addresses where !present.contains(address) {
                try socket.addAddress(
                    address, index: link.index, options: AddressOptions(skipDuplicateDetection: true), tolerateExisting: true)
            }
            return (link.index, created)
        } catch { throw fail(error) }
    }

    public func removeTunnel(named name: String) throws(KernelError) -> Bool {
        do { return try socket.deleteLink(named: name) } catch { throw fail(error) }
    }

    public func installed(tunnelIndex: Int32?) throws(KernelError) -> InstalledNetwork {
        do throws(NetlinkError) {
            var installed = InstalledNetwork()
            for family in [IPAddress.Family.v4, .v6] {
                for route in try socket.routes(
                    family: family, table: NetlinkNetworkKernel.mainTable, routeProtocol: RouteSync.routeProtocol)
                {
                    installed.routes[route.destination] = InstalledRoute(
                        gateway: route.gateway, tunnel: tunnelIndex != nil && route.outputInterface == tunnelIndex)
                }
            }
            guard let tunnelIndex else { return installed }
            for family in [IPAddress.Family.v4, .v6] {
                for entry in try socket.neighbours(family: family, index: tunnelIndex) where entry.isPermanent {
                    if let mac = entry.mac { installed.neighbours[entry.address] = mac }
                }
            }
            for entry in try socket.forwardingEntries(index: tunnelIndex) {
                if let destination = entry.destination { installed.forwarding[entry.mac] = destination }
            }
            return installed
        } catch { throw fail(error) }
    }

    public func apply(_ changes: [NetworkChange], tunnelIndex: Int32?) throws(KernelError) -> [Int: String] {
        guard !changes.isEmpty else { return [:] }
        let proto = RouteSync.routeProtocol
        // Index of each change's message in the batch (a change the batch cannot hold has none).
        var messageOf: [Int] = []
        var refusedBefore: [Int: String] = [:]
        let failures: [Int: NetlinkError]
        do throws(NetlinkError) {
            failures = try socket.batchEach(tolerate: [ESRCH, ENOENT]) { batch in
                for (i, change) in changes.enumerated() {
                    messageOf.append(batch.count)
                    switch change {
                    case .addRoute(let route), .replaceRoute(let route, _):
                        guard !route.tunnel || tunnelIndex != nil else {
                            refusedBefore[i] = "no tunnel device"
                            continue
                        }
                        let entry = RouteEntry(
                            destination: route.destination, gateway: route.gateway, outputInterface: route.tunnel ? tunnelIndex : nil,
                            routeProtocol: proto, onLink: route.tunnel)
                        if case .replaceRoute = change {
                            // Delete and add rather than NLM_F_REPLACE, which would take over a foreign route.
                            NetlinkSocket.deleteRoute(RouteEntry(destination: route.destination, routeProtocol: proto), to: &batch)
                            messageOf[i] = batch.count
                        }
                        NetlinkSocket.addRoute(entry, to: &batch)
                    case .removeRoute(let destination, let was):
                        NetlinkSocket.deleteRoute(
                            RouteEntry(destination: destination, gateway: was.gateway, routeProtocol: proto), to: &batch)
                    case .setNeighbour(let ip, let mac):
                        NetlinkSocket.setNeighbour(NeighbourEntry(index: tunnelIndex ?? 0, address: ip, mac: mac.value), to: &batch)
                    case .removeNeighbour(let ip, _):
                        NetlinkSocket.deleteNeighbour(NeighbourEntry(index: tunnelIndex ?? 0, address: ip, mac: nil), to: &batch)
                    case .setForwarding(let mac, let dst):
                        NetlinkSocket.setForwardingEntry(
                            ForwardingEntry(index: tunnelIndex ?? 0, mac: mac, destination: dst.value), to: &batch)
                    case .removeForwarding(let mac, let dst):
                        NetlinkSocket.deleteForwardingEntry(
                            ForwardingEntry(index: tunnelIndex ?? 0, mac: mac, destination: dst), to: &batch)
                    }
                }
            }
        } catch { throw fail(error) }
        var refused = refusedBefore
        for (i, message) in messageOf.enumerated() where refused[i] == nil {
            if let failure = failures[message] {
                refused[i] = String(cString: strerror(failure.errno)) + (failure.kernelMessage.map { " (\($0))" } ?? "")
            }
        }
        return refused
    }

    static let mainTable: UInt32 = 254
}

/// fe80::/10: the kernel's own address on every IPv6 link, not one of ours.
private func isLinkLocal(_ ip: IPAddress) -> Bool {
    if case .v6(let v) = ip { return v >> 118 == 0x3FA }
    return false
}
