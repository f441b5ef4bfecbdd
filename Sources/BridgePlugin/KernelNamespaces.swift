#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNI
import Netlink
import SystemIO

/// The real namespaces: the calling thread's (the node's) and the pod's nsfs file, each worked
/// through a netlink socket opened inside it. The one place where netlink and namespace errors
/// become CNI errors.
final class KernelNamespaces: Namespaces {
    /// The node's namespace, for returning the thread after entering a pod's; opened on first use.
    private var home: NetworkNamespace?

    private func homeNamespace() throws(SystemError) -> NetworkNamespace {
        if let home { return home }
        let current = try NetworkNamespace.current()
        home = current
        return current
    }

    func packetFilter() -> any PacketFilter { NFTablesFilter() }

    func node() throws(CNIError) -> any NamespaceNetwork {
        do { return NetlinkNamespace(socket: try NetlinkSocket(), namespace: nil) } catch { throw .netlink(error) }
    }

    @available(*, noasync)
    func pod(at path: String) throws(CNIError) -> PodNamespace {
        let home: NetworkNamespace
        let pod: NetworkNamespace
        do {
            home = try homeNamespace()
            pod = try NetworkNamespace(path: path)
        } catch {
            // ENOENT: nothing there; EINVAL: not a namespace (any more), e.g. a leftover mount point.
            if error.errno == ENOENT || error.errno == EINVAL { return .missing(.namespace(error)) }
            throw .namespace(error)
        }
        guard !pod.isSame(as: home) else { return .node }
        do {
            let socket = try pod.openSocket(returningTo: home)
            return .opened(NetlinkNamespace(socket: socket, namespace: (pod, home)))
        } catch {
            throw .netlink(error)
        }
    }
}

/// A namespace's netlink socket, and for a pod's namespace the namespace itself (its sysctls
/// are reached from inside only).
final class NetlinkNamespace: NamespaceNetwork {
    private let socket: NetlinkSocket
    private let namespace: (pod: NetworkNamespace, home: NetworkNamespace)?

    init(socket: NetlinkSocket, namespace: (pod: NetworkNamespace, home: NetworkNamespace)?) {
        self.socket = socket
        self.namespace = namespace
    }

    var descriptor: Int32? { namespace?.pod.fd }

    /// Runs one request, turning its failure into the CNI error (102) that names it.
    private func request<T>(_ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw .netlink(error) }
    }

    func link(named name: String) throws(CNIError) -> Link? { try request { () throws(NetlinkError) in try socket.link(named: name) } }
    func link(index: Int32) throws(CNIError) -> Link? { try request { () throws(NetlinkError) in try socket.link(index: index) } }
    func links() throws(CNIError) -> [Link] { try request { () throws(NetlinkError) in try socket.links() } }

    func addresses(index: Int32) throws(CNIError) -> [InterfaceAddress] {
        try request { () throws(NetlinkError) in try socket.addresses(index: index) }
    }

    func routes(family: IPAddress.Family) throws(CNIError) -> [RouteEntry] {
        try request { () throws(NetlinkError) in try socket.routes(family: family) }
    }

    func createBridge(name: String, mac: MACAddress, mtu: UInt32?, netfilter: BridgeNetfilter) throws(CNIError) -> Bool {
        do {
            try socket.createBridge(name: name, mac: mac, mtu: mtu, netfilter: netfilter)
            return true
        } catch  where error.isExists {
            return false
        } catch {
            throw .netlink(error)
        }
    }

    func setBridgeNetfilter(index: Int32, name: String, _ netfilter: BridgeNetfilter) throws(CNIError) {
        try request { () throws(NetlinkError) in try socket.setBridgeNetfilter(index: index, name: name, netfilter) }
    }

    /// The plugin runs in the node's namespace, which is the one /proc/sys shows it.
    func hasBridgeNetfilter() -> Bool { access("/proc/sys/net/bridge", F_OK) == 0 }

    func createVethPair(_ pair: VethPair) throws(CNIError) -> CreatedVeth? {
        do {
            return try socket.createVethPair(pair)
        } catch  where error.isExists {
            return nil
        } catch {
            throw .netlink(error)
        }
    }

    func setLink(index: Int32, name: String, up: Bool, promiscuous: Bool?) throws(CNIError) {
        try request { () throws(NetlinkError) in try socket.setLink(index: index, name: name, up: up, promiscuous: promiscuous) }
    }

    func tagBridgePort(index: Int32, name: String, alias: String?, port: BridgePortSettings) throws(CNIError) {
        try request { () throws(NetlinkError) in
            try socket.batch { batch in
                if let alias { NetlinkSocket.setAlias(index: index, name: name, alias: alias, to: &batch) }
                NetlinkSocket.setBridgePort(index: index, name: name, port, to: &batch)
            }
        }
    }

    func addAddress(_ address: IPNetwork, index: Int32, options: AddressOptions, tolerateExisting: Bool) throws(CNIError) {
        try request { () throws(NetlinkError) in
            try socket.addAddress(address, index: index, options: options, tolerateExisting: tolerateExisting)
        }
    }

    func deleteAddress(_ address: IPNetwork, index: Int32) throws(CNIError) {
        try request { () throws(NetlinkError) in try socket.deleteAddress(address, index: index) }
    }

    func configure(_ setup: InterfaceSetup) throws(CNIError) {
        try request { () throws(NetlinkError) in
            try socket.batch { batch in
                if setup.up { NetlinkSocket.setLink(index: setup.index, name: setup.name, up: true, to: &batch) }
                guard !setup.addresses.isEmpty else { return }
                // Announce the new address with gratuitous ARP when the link comes up, as the reference does.
                NetlinkSocket.setIPv4Setting(.arpNotify, value: 1, index: setup.index, name: setup.name, to: &batch)
                for address in setup.addresses {
                    NetlinkSocket.addAddress(address, index: setup.index, options: setup.addressOptions, to: &batch)
                }
                for route in setup.routes {
                    NetlinkSocket.addRoute(RouteEntry(destination: route.dst, gateway: route.gw, outputInterface: setup.index), to: &batch)
                }
            }
        }
    }

    @discardableResult
    func deleteLink(named name: String) throws(CNIError) -> Bool {
        try request { () throws(NetlinkError) in try socket.deleteLink(named: name) }
    }

    @discardableResult
    func deleteLink(index: Int32, name: String) throws(CNIError) -> Bool {
        try request { () throws(NetlinkError) in try socket.deleteLink(index: index, name: name) }
    }

    func enableForwarding(ipv4: Bool, ipv6: Bool) throws(CNIError) {
        try request { () throws(NetlinkError) in
            if ipv4 { try Sysctl.ensure("net.ipv4.ip_forward", "1") }
            if ipv6 { try Sysctl.ensure("net.ipv6.conf.all.forwarding", "1") }
        }
    }

    @available(*, noasync)
    func prepareIPv6(interface: String, enableDAD: Bool) throws(CNIError) {
        guard let (pod, home) = namespace else { return }
        // /proc/sys follows the namespace of the thread that opens it: enter, set, return.
        let failure = try request { () throws(NetlinkError) in
            try pod.perform(returningTo: home) { () -> NetlinkError? in
                do throws(NetlinkError) {
                    for name in ["lo", interface] where Sysctl.read(Sysctl.ipv6Key(interface: name, "disable_ipv6")) != "0" {
                        try Sysctl.ensure(Sysctl.ipv6Key(interface: name, "disable_ipv6"), "0")
                    }
                } catch { return error }
                // Best effort, as in the reference: NODAD on the addresses is what counts.
                if enableDAD { try? Sysctl.ensure(Sysctl.ipv6Key(interface: interface, "enhanced_dad"), "1") }
                try? Sysctl.ensure(Sysctl.ipv6Key(interface: interface, "accept_dad"), enableDAD ? "1" : "0")
                return nil
            }
        }
        if let failure { throw .netlink(failure) }
    }
}
