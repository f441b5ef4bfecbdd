import Addresses
@testable import ClusterRoutes

/// A node's network in memory: addresses, one tunnel device, our routes and tunnel entries.
/// Changes are applied as the kernel would, except those `refuse` names (with its message).
final class FakeNetworkKernel: NetworkKernel {
    var addresses: [(index: Int32, network: IPNetwork)]
    var mtus: [Int32: UInt32] = [2: 1500]
    var tunnel: TunnelDevice?
    var tunnelCreations = 0
    var state = InstalledNetwork()
    var refuse: (NetworkChange) -> String? = { _ in nil }
    var applied: [[NetworkChange]] = []

    init(addresses: [String]) {
        self.addresses = addresses.map { (2, IPNetwork(cidr: $0)!) }
    }

    func localAddresses(excluding excluded: String) throws(KernelError) -> [(index: Int32, network: IPNetwork)] { addresses }
    func linkMTU(index: Int32) throws(KernelError) -> UInt32? { mtus[index] }

    func ensureTunnel(_ device: TunnelDevice) throws(KernelError) -> (index: Int32, created: Bool) {
        let created = tunnel == nil || tunnel!.local != device.local || tunnel!.mac != device.mac
        if created {
            tunnelCreations += 1
            state.neighbours = [:]
            state.forwarding = [:]
            for (destination, route) in state.routes where route.tunnel { state.routes[destination] = nil }
        }
        tunnel = device
        return (9, created)
    }

    func removeTunnel(named name: String) throws(KernelError) -> Bool {
        guard tunnel != nil else { return false }
        tunnel = nil
        state.neighbours = [:]
        state.forwarding = [:]
        for (destination, route) in state.routes where route.tunnel { state.routes[destination] = nil }
        return true
    }

    func installed(tunnelIndex: Int32?) throws(KernelError) -> InstalledNetwork { state }

    func apply(_ changes: [NetworkChange], tunnelIndex: Int32?) throws(KernelError) -> [Int: String] {
        applied.append(changes)
        var refused: [Int: String] = [:]
        for (i, change) in changes.enumerated() {
            if let message = refuse(change) {
                refused[i] = message
                continue
            }
            switch change {
            case .addRoute(let r), .replaceRoute(let r, _):
                state.routes[r.destination] = InstalledRoute(gateway: r.gateway, tunnel: r.tunnel)
            case .removeRoute(let destination, _): state.routes[destination] = nil
            case .setNeighbour(let ip, let mac): state.neighbours[ip] = mac.value
            case .removeNeighbour(let ip, _): state.neighbours[ip] = nil
            case .setForwarding(let mac, let dst): state.forwarding[mac] = dst.value
            case .removeForwarding(let mac, _): state.forwarding[mac] = nil
            }
        }
        return refused
    }
}
