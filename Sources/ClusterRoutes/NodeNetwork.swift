import Addresses

/// The seam between the plan and the kernel: everything `NodeNetwork` reads from or changes in
/// the node's network namespace. `NetlinkNetworkKernel` is the real one; tests give a fake.
public protocol NetworkKernel: AnyObject {
    /// This node's addresses, with their prefixes and links, except those on link `excluded`.
    func localAddresses(excluding excluded: String) throws(KernelError) -> [(index: Int32, network: IPNetwork)]
    func linkMTU(index: Int32) throws(KernelError) -> UInt32?
    /// Creates the tunnel device, or mends one that differs (recreated when its VXLAN settings
    /// do), and sets its addresses; returns its index and whether it was (re)created.
    func ensureTunnel(_ device: TunnelDevice) throws(KernelError) -> (index: Int32, created: Bool)
    /// Deletes the tunnel device, with every entry on it; false when there was none.
    func removeTunnel(named name: String) throws(KernelError) -> Bool
    /// Our routes (protocol 212, main table) and the entries on the tunnel device.
    func installed(tunnelIndex: Int32?) throws(KernelError) -> InstalledNetwork
    /// Applies every change on its own; the kernel's message for each one refused, by index.
    func apply(_ changes: [NetworkChange], tunnelIndex: Int32?) throws(KernelError) -> [Int: String]
}

public struct KernelError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The VXLAN device as this node wants it.
public struct TunnelDevice: Equatable, Sendable {
    public var name: String
    public var vni: UInt32
    public var port: UInt16
    public var underlayIndex: Int32
    public var local: IPAddress
    public var mac: MACAddress
    public var mtu: UInt32
    /// The tunnel addresses of this node's podCIDRs, as /32 or /128.
    public var addresses: [IPNetwork]
}

/// Makes the node's routes, tunnel device and tunnel entries match the cluster: one plan,
/// applied entry by entry, whatever the routing mode.
public final class NodeNetwork {
    /// The route protocol that marks bridge-ipam's routes (`ip route show proto 212`).
    public static let routeProtocol: UInt8 = 212

    public let mode: RoutingMode
    public let overlay: OverlaySettings
    let kernel: any NetworkKernel

    public init(mode: RoutingMode, overlay: OverlaySettings = OverlaySettings(), kernel: any NetworkKernel) {
        self.mode = mode
        self.overlay = overlay
        self.kernel = kernel
    }

    /// What a sync did and found.
    public struct Outcome: Sendable {
        /// Nodes left out in part or whole, and why.
        public var problems: [String: String] = [:]
        /// Changes the kernel refused, by node ("" for leftovers of nodes gone): its messages.
        public var failures: [String: [String]] = [:]
        public var applied: [NetworkChange] = []
        /// What this node cannot do (no underlay link, the tunnel device refused, ...).
        public var localProblem: String?
        /// The MTU pods get: the underlay's in direct mode, the tunnel's otherwise.
        public var podMTU: UInt32?
        public var tunnelRecreated = false
        public var desiredRoutes = 0
        /// Desired routes the kernel refused this time (so not installed).
        public var refusedRoutes = 0
    }

    public func sync(me: ClusterNode, peers: [ClusterNode]) -> Outcome {
        var outcome = Outcome()
        do throws(KernelError) {
            let addresses = try kernel.localAddresses(excluding: overlay.device)
            let local = LocalNode(node: me, connected: addresses.map(\.network))
            var desired = DesiredNetwork(local: local, peers: peers, mode: mode)
            outcome.problems = desired.problems
            var tunnelIndex: Int32?
            let underlay = local.underlayAddress.flatMap { ip in addresses.first { $0.network.address == ip } }
            if let underlay, let underlayMTU = try kernel.linkMTU(index: underlay.index) {
                let overhead = OverlaySettings.overhead(underlay: underlay.network.address.family)
                outcome.podMTU = mode.usesTunnel ? underlayMTU - overhead : underlayMTU
                if mode.usesTunnel {
                    let device = TunnelDevice(
                        name: overlay.device, vni: overlay.vni, port: overlay.port, underlayIndex: underlay.index,
                        local: underlay.network.address, mac: OverlaySettings.vtepMAC(for: underlay.network.address),
                        mtu: underlayMTU - overhead,
                        addresses: me.podCIDRs.map {
                            IPNetwork(address: OverlaySettings.tunnelAddress(of: $0), prefixLength: $0.address.bitWidth)!
                        })
                    do throws(KernelError) {
                        let (index, created) = try kernel.ensureTunnel(device)
                        tunnelIndex = index
                        outcome.tunnelRecreated = created
                    } catch {
                        outcome.localProblem =
                            "cannot set up the VXLAN device \(overlay.device): \(error); peers behind the tunnel get no route"
                    }
                }
            } else if mode.usesTunnel {
                outcome.localProblem =
                    "this node's InternalIP \(local.underlayAddress.map(\.description) ?? "(none)") is on none of its links; peers behind the tunnel get no route"
            }
            if !mode.usesTunnel { _ = try kernel.removeTunnel(named: overlay.device) }
            if tunnelIndex == nil { desired.dropTunnel() }
            outcome.desiredRoutes = desired.routes.count
            let changes = desired.changes(from: try kernel.installed(tunnelIndex: tunnelIndex))
            let refused = try kernel.apply(changes, tunnelIndex: tunnelIndex)
            for (i, change) in changes.enumerated() {
                if let message = refused[i] {
                    outcome.failures[change.node ?? "", default: []].append("\(change.description): \(message)")
                    if case .addRoute = change { outcome.refusedRoutes += 1 }
                    if case .replaceRoute = change { outcome.refusedRoutes += 1 }
                } else {
                    outcome.applied.append(change)
                }
            }
        } catch {
            outcome.localProblem = "cannot read or change the network: \(error)"
        }
        return outcome
    }
}

extension DesiredNetwork {
    /// Without a tunnel device, the tunnel's routes and entries cannot be installed.
    mutating func dropTunnel() {
        for (destination, route) in routes where route.tunnel { routes[destination] = nil }
        neighbours = [:]
        forwarding = [:]
    }
}
