#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNI
import Netlink
import SystemIO
@testable import BridgePlugin

/// The node's namespace and pods' namespaces in memory: what the verbs see through `Namespaces`,
/// with failures injected by operation name. Links, addresses and routes behave as the kernel's
/// do as far as the verbs can tell (a veth's ends go together, names are unique per namespace).
final class FakeNamespaces: Namespaces {
    let nodeNamespace: FakeNamespace
    private(set) var pods: [String: FakeNamespace] = [:]
    /// Paths that name the node's own namespace.
    var nodePaths: Set<String> = []
    /// Thrown by `node()` (the node's netlink socket cannot be opened).
    var nodeFailure: CNIError?
    let filter = FakePacketFilter()

    func packetFilter() -> any PacketFilter { filter }

    init() {
        nodeNamespace = FakeNamespace(label: "node", descriptor: nil)
        nodeNamespace.world = self
    }

    /// A pod namespace at `path`, created empty (with its loopback) on first use.
    @discardableResult
    func pod(_ path: String) -> FakeNamespace {
        if let pod = pods[path] { return pod }
        let pod = FakeNamespace(label: path, descriptor: Int32(100 + pods.count))
        pod.world = self
        pod.insert(Link(index: 1, name: "lo", flags: 1))
        pods[path] = pod
        return pod
    }

    /// The namespace is gone (as after the runtime deleted it).
    func removePod(_ path: String) { pods[path] = nil }

    func node() throws(CNIError) -> any NamespaceNetwork {
        if let nodeFailure { throw nodeFailure }
        return nodeNamespace
    }

    func pod(at path: String) throws(CNIError) -> PodNamespace {
        if nodePaths.contains(path) { return .node }
        guard let pod = pods[path] else {
            return .missing(.namespace(SystemError("open network namespace", path: path, errno: ENOENT)))
        }
        return .opened(pod)
    }

    func namespace(descriptor: Int32?) -> FakeNamespace? {
        guard let descriptor else { return nil }
        return pods.values.first { $0.descriptor == descriptor }
    }
}

final class FakeNamespace: NamespaceNetwork {
    let label: String
    let descriptor: Int32?
    weak var world: FakeNamespaces?

    private(set) var linksByIndex: [Int32: Link] = [:]
    private(set) var addressList: [InterfaceAddress] = []
    private(set) var routeList: [RouteEntry] = []
    /// Sysctls set through the verbs, by key.
    private(set) var sysctls: [String: String] = [:]
    /// Every operation the verbs asked for, in order (its name, then what it named).
    private(set) var journal: [String] = []
    /// Operations that fail, by name (as in `journal`), with the errno the kernel would give.
    var failures: [String: Int32] = [:]
    /// Host veth names that are always taken (createVethPair reports the name exists).
    var vethNamesTaken = false
    /// Runs just before a veth pair is created (e.g. another ADD's interface appears).
    var beforeCreateVeth: (() -> Void)?
    private var nextIndex: Int32 = 2

    init(label: String, descriptor: Int32?) {
        self.label = label
        self.descriptor = descriptor
    }

    // MARK: - Test set-up and inspection

    func insert(_ link: Link) {
        linksByIndex[link.index] = link
        nextIndex = max(nextIndex, link.index + 1)
    }

    func newIndex() -> Int32 {
        defer { nextIndex += 1 }
        return nextIndex
    }

    func named(_ name: String) -> Link? { linksByIndex.values.first { $0.name == name } }

    var linkNames: Set<String> { Set(linksByIndex.values.map(\.name)) }

    func addresses(of name: String) -> [IPNetwork] {
        guard let link = named(name) else { return [] }
        return addressList.filter { $0.index == link.index }.map(\.network)
    }

    func addAddressDirectly(_ network: IPNetwork, to name: String) {
        addressList.append(InterfaceAddress(index: named(name)!.index, network: network))
    }

    func removeAddresses(of name: String) {
        let index = named(name)?.index
        addressList.removeAll { $0.index == index }
    }

    // MARK: - NamespaceNetwork

    private func record(_ operation: String, _ subject: String = "") throws(CNIError) {
        journal.append(subject.isEmpty ? operation : "\(operation) \(subject)")
        if let errno = failures[operation] {
            throw .netlink(NetlinkError("\(operation) \(subject) (fake)", errno: errno))
        }
    }

    func link(named name: String) throws(CNIError) -> Link? {
        try record("link", name)
        return named(name)
    }

    func link(index: Int32) throws(CNIError) -> Link? {
        try record("link", String(index))
        return linksByIndex[index]
    }

    func links() throws(CNIError) -> [Link] {
        try record("links")
        return linksByIndex.values.sorted { $0.index < $1.index }
    }

    func addresses(index: Int32) throws(CNIError) -> [InterfaceAddress] {
        try record("addresses", String(index))
        return addressList.filter { $0.index == index }
    }

    func routes(family: IPAddress.Family) throws(CNIError) -> [RouteEntry] {
        try record("routes")
        return routeList.filter { $0.destination.address.family == family }
    }

    func createBridge(name: String, mac: MACAddress, mtu: UInt32?, netfilter: BridgeNetfilter) throws(CNIError) -> Bool {
        try record("createBridge", name)
        guard named(name) == nil else { return false }
        insert(Link(index: newIndex(), name: name, flags: 1, mtu: mtu ?? 1500, mac: mac, kind: "bridge", bridgeNetfilter: netfilter))
        return true
    }

    func setBridgeNetfilter(index: Int32, name: String, _ netfilter: BridgeNetfilter) throws(CNIError) {
        try record("setBridgeNetfilter", name)
        guard let link = linksByIndex[index] else { throw .netlink(NetlinkError("set bridge netfilter of \(name)", errno: ENODEV)) }
        replace(link, netfilter: netfilter)
    }

    /// False plays a kernel without br_netfilter (no /proc/sys/net/bridge).
    var bridgeNetfilterLoaded = true

    func hasBridgeNetfilter() -> Bool { bridgeNetfilterLoaded }

    func createVethPair(_ pair: VethPair) throws(CNIError) -> CreatedVeth? {
        try record("createVethPair", pair.name)
        beforeCreateVeth?()
        beforeCreateVeth = nil
        let peerSide = world?.namespace(descriptor: pair.peerNamespaceFD) ?? self
        if vethNamesTaken || named(pair.name) != nil || peerSide.named(pair.peerName) != nil { return nil }
        let index = newIndex()
        let peerIndex = peerSide.newIndex()
        insert(
            Link(
                index: index, name: pair.name, flags: 1, mtu: pair.mtu ?? 1500, mac: pair.mac, master: pair.master,
                kind: "veth", peerIndex: peerIndex,
                bridgePort: pair.master == nil ? nil : BridgePortSettings(hairpin: false, isolated: false)))
        peerSide.insert(
            Link(
                index: peerIndex, name: pair.peerName, mtu: pair.mtu ?? 1500, mac: pair.peerMAC, kind: "veth",
                peerIndex: index))
        return CreatedVeth(index: index, peerIndex: peerIndex)
    }

    func setLink(index: Int32, name: String, up: Bool, promiscuous: Bool?) throws(CNIError) {
        try record("setLink", name)
        guard let link = linksByIndex[index] else { throw .netlink(NetlinkError("set \(name) up", errno: ENODEV)) }
        replace(link, flags: up ? link.flags | 1 : link.flags & ~1)
    }

    func tagBridgePort(index: Int32, name: String, alias: String?, port: BridgePortSettings) throws(CNIError) {
        try record("tagBridgePort", name)
        guard let link = linksByIndex[index] else { throw .netlink(NetlinkError("set alias of \(name)", errno: ENODEV)) }
        replace(link, alias: alias)
        if !port.isEmpty { setBridgePort(name, port) }
    }

    /// Changes a bridge port's flags (as ADD does, or as an operator would by hand).
    func setBridgePort(_ name: String, _ port: BridgePortSettings) {
        guard let link = named(name), let current = link.bridgePort else { return }
        replace(link, bridgePort: BridgePortSettings(hairpin: port.hairpin ?? current.hairpin, isolated: port.isolated ?? current.isolated))
    }

    /// Sets a link's up flag, as `ip link set NAME up|down` would.
    func setUp(_ name: String, _ up: Bool) {
        guard let link = named(name) else { return }
        replace(link, flags: up ? link.flags | 1 : link.flags & ~1)
    }

    func addAddress(_ address: IPNetwork, index: Int32, options: AddressOptions, tolerateExisting: Bool) throws(CNIError) {
        try record("addAddress", address.description)
        if addressList.contains(where: { $0.index == index && $0.network == address }) {
            if tolerateExisting { return }
            throw .netlink(NetlinkError("add address \(address)", errno: EEXIST))
        }
        addressList.append(InterfaceAddress(index: index, network: address))
    }

    func deleteAddress(_ address: IPNetwork, index: Int32) throws(CNIError) {
        try record("deleteAddress", address.description)
        addressList.removeAll { $0.index == index && $0.network == address }
    }

    func configure(_ setup: InterfaceSetup) throws(CNIError) {
        try record("configure", setup.name)
        guard let link = linksByIndex[setup.index] else { throw .netlink(NetlinkError("set \(setup.name) up", errno: ENODEV)) }
        if setup.up { replace(link, flags: link.flags | 1) }
        for address in setup.addresses { addressList.append(InterfaceAddress(index: setup.index, network: address)) }
        for route in setup.routes {
            routeList.append(RouteEntry(destination: route.dst, gateway: route.gw, outputInterface: setup.index))
        }
    }

    @discardableResult
    func deleteLink(named name: String) throws(CNIError) -> Bool {
        try record("deleteLink", name)
        guard let link = named(name) else { return false }
        remove(link)
        return true
    }

    @discardableResult
    func deleteLink(index: Int32, name: String) throws(CNIError) -> Bool {
        try record("deleteLink", name)
        guard let link = linksByIndex[index] else { return false }
        remove(link)
        return true
    }

    func enableForwarding(ipv4: Bool, ipv6: Bool) throws(CNIError) {
        try record("enableForwarding")
        if ipv4 { sysctls["net.ipv4.ip_forward"] = "1" }
        if ipv6 { sysctls["net.ipv6.conf.all.forwarding"] = "1" }
    }

    func prepareIPv6(interface: String, enableDAD: Bool) throws(CNIError) {
        try record("prepareIPv6", interface)
        sysctls["net/ipv6/conf/\(interface)/accept_dad"] = enableDAD ? "1" : "0"
    }

    // MARK: - Kernel behaviour

    private func replace(
        _ link: Link, flags: UInt32? = nil, alias: String?? = nil, bridgePort: BridgePortSettings? = nil, netfilter: BridgeNetfilter? = nil
    ) {
        linksByIndex[link.index] = Link(
            index: link.index, name: link.name, flags: flags ?? link.flags, mtu: link.mtu, mac: link.mac,
            master: link.master, kind: link.kind, peerIndex: link.peerIndex, alias: alias ?? link.alias,
            bridgePort: bridgePort ?? link.bridgePort, bridgeNetfilter: netfilter ?? link.bridgeNetfilter)
    }

    /// Removes a link with its addresses and routes; a veth takes its peer along, wherever it is.
    private func remove(_ link: Link) {
        forget(link.index)
        guard link.kind == "veth", let peerIndex = link.peerIndex, let world else { return }
        for other in [world.nodeNamespace] + world.pods.values {
            if let peer = other.linksByIndex[peerIndex], peer.peerIndex == link.index, peer.kind == "veth" {
                other.forget(peerIndex)
                return
            }
        }
    }

    private func forget(_ index: Int32) {
        linksByIndex[index] = nil
        addressList.removeAll { $0.index == index }
        routeList.removeAll { $0.outputInterface == index }
    }
}
