import Addresses
import CNI
import Netlink

/// Where the verbs reach the node's network namespace and the pod's. The real one opens
/// namespaces and netlink sockets (`KernelNamespaces`); unit tests give fakes, so the verbs'
/// rollback, error codes and lock scope are tested without root or a kernel.
protocol Namespaces: AnyObject {
    /// The namespace the plugin runs in: the node's.
    func node() throws(CNIError) -> any NamespaceNetwork
    /// The namespace at `path` (CNI_NETNS), as far as it can be opened.
    @available(*, noasync)
    func pod(at path: String) throws(CNIError) -> PodNamespace
    /// The node's nftables.
    func packetFilter() -> any PacketFilter
}

/// What opening CNI_NETNS found.
enum PodNamespace {
    case opened(any NamespaceNetwork)
    /// No namespace is there (any more): DEL is done, ADD and CHECK fail with this error (106).
    case missing(CNIError)
    /// The path names the node's own namespace: ADD refuses it, DEL leaves it alone.
    case node
}

/// The netlink requests and sysctls the verbs make inside one network namespace. Failures are
/// CNI errors already (code 102, naming the operation; see `KernelNamespaces`): a verb never
/// converts a netlink error itself. What a verb must tell apart from a failure is a value:
/// a missing link is nil, a name that exists is false or nil.
protocol NamespaceNetwork: AnyObject {
    /// An open descriptor of the namespace, for creating a link straight inside it (nil for the
    /// namespace the plugin runs in).
    var descriptor: Int32? { get }

    func link(named name: String) throws(CNIError) -> Link?
    func link(index: Int32) throws(CNIError) -> Link?
    func links() throws(CNIError) -> [Link]
    func addresses(index: Int32) throws(CNIError) -> [InterfaceAddress]
    func routes(family: IPAddress.Family) throws(CNIError) -> [RouteEntry]

    /// Creates a bridge, up, with its bridge-netfilter switches as given; false when a link of
    /// that name exists.
    func createBridge(name: String, mac: MACAddress, mtu: UInt32?, netfilter: BridgeNetfilter) throws(CNIError) -> Bool
    /// Sets an existing bridge's own bridge-netfilter switches (never the node-wide sysctls).
    func setBridgeNetfilter(index: Int32, name: String, _ netfilter: BridgeNetfilter) throws(CNIError)
    /// Whether the kernel filters bridged traffic at all in this namespace: br_netfilter is
    /// loaded (or built in) exactly when /proc/sys/net/bridge exists.
    func hasBridgeNetfilter() -> Bool
    /// Creates a veth pair (see `NetlinkSocket.createVethPair`); nil when one of its names exists.
    func createVethPair(_ pair: VethPair) throws(CNIError) -> CreatedVeth?
    func setLink(index: Int32, name: String, up: Bool, promiscuous: Bool?) throws(CNIError)
    /// Labels a new host veth (its alias) and sets its bridge port flags, in one datagram.
    func tagBridgePort(index: Int32, name: String, alias: String?, port: BridgePortSettings) throws(CNIError)
    func addAddress(_ address: IPNetwork, index: Int32, options: AddressOptions, tolerateExisting: Bool) throws(CNIError)
    func deleteAddress(_ address: IPNetwork, index: Int32) throws(CNIError)
    /// Brings a pod interface up with its addresses and routes, in one datagram.
    func configure(_ setup: InterfaceSetup) throws(CNIError)
    /// False when there was no such link.
    @discardableResult func deleteLink(named name: String) throws(CNIError) -> Bool
    @discardableResult func deleteLink(index: Int32, name: String) throws(CNIError) -> Bool

    /// Turns on IPv4 and/or IPv6 forwarding in this namespace (a gateway's bridge needs it).
    func enableForwarding(ipv4: Bool, ipv6: Bool) throws(CNIError)
    /// Readies a pod interface for IPv6 before it comes up: IPv6 enabled on it and on loopback,
    /// duplicate address detection as `enableDAD` says (best effort). These settings are only
    /// reached through /proc/sys, from inside the namespace.
    @available(*, noasync)
    func prepareIPv6(interface: String, enableDAD: Bool) throws(CNIError)
}

/// What `configure` sets on a pod interface, in this order: up, arp_notify, addresses, routes.
/// The kernel handles the messages in order, so each gateway is on a connected network by the
/// time its route arrives.
struct InterfaceSetup {
    var index: Int32
    var name: String
    var up: Bool
    var addresses: [IPNetwork]
    var addressOptions: AddressOptions
    /// Routes through this interface (each has its gateway by then; see `Add.podRoutes`).
    var routes: [Route]
}
