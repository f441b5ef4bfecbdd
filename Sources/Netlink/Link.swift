#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// A network interface as RTM_GETLINK reports it.
public struct Link: Sendable, Equatable {
    public let index: Int32
    public let name: String
    public let flags: UInt32
    public let mtu: UInt32
    public let mac: MACAddress?
    /// The index of the bridge (or other master) this link is enslaved to.
    public let master: Int32?
    /// `IFLA_INFO_KIND`: "bridge", "veth", ... (nil for physical devices and loopback).
    public let kind: String?
    /// `IFLA_LINK`: for a veth, the index of its peer (in the peer's namespace).
    public let peerIndex: Int32?
    /// `IFLA_IFALIAS`: a free-form label (we tag host veths with their attachment).
    public let alias: String?
    /// A bridge port's hairpin and isolation flags (`IFLA_INFO_SLAVE_DATA`); nil when the link is
    /// not a bridge port, or the kernel did not say.
    public let bridgePort: BridgePortSettings?
    /// A VXLAN device's settings (IFLA_INFO_DATA of kind "vxlan").
    public let vxlan: VXLANSettings?
    /// A bridge's own bridge-netfilter switches; nil for other links, and for a bridge of a
    /// kernel built without bridge netfilter (it reports no such attributes).
    public let bridgeNetfilter: BridgeNetfilter?

    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
    public var isPromiscuous: Bool { flags & UInt32(IFF_PROMISC) != 0 }

    /// A link as a test's fake kernel describes it.
    public init(
        index: Int32, name: String, flags: UInt32 = 0, mtu: UInt32 = 1500, mac: MACAddress? = nil, master: Int32? = nil,
        kind: String? = nil, peerIndex: Int32? = nil, alias: String? = nil, bridgePort: BridgePortSettings? = nil,
        vxlan: VXLANSettings? = nil,
        bridgeNetfilter: BridgeNetfilter? = nil
    ) {
        self.vxlan = vxlan
        self.index = index
        self.name = name
        self.flags = flags
        self.mtu = mtu
        self.mac = mac
        self.master = master
        self.kind = kind
        self.peerIndex = peerIndex
        self.alias = alias
        self.bridgePort = bridgePort
        self.bridgeNetfilter = bridgeNetfilter
    }

    init(_ message: NetlinkMessage) {
        let info = message.header(as: ifinfomsg.self)
        let attrs = message.attributes
        index = info.ifi_index
        flags = info.ifi_flags
        name = attrs.string(UInt16(IFLA_IFNAME)) ?? ""
        mtu = attrs.u32(UInt16(IFLA_MTU)) ?? 0
        mac = attrs[UInt16(IFLA_ADDRESS)].flatMap(MACAddress.init(bytes:))
        master = attrs.u32(UInt16(IFLA_MASTER)).map { Int32(bitPattern: $0) }
        let linkInfo = attrs.nested(UInt16(IFLA_LINKINFO))
        kind = linkInfo?.string(UInt16(IFLA_INFO_KIND))
        vxlan = kind == "vxlan" ? linkInfo?.nested(UInt16(IFLA_INFO_DATA)).flatMap(VXLANSettings.init) : nil
        bridgeNetfilter = kind == "bridge" ? linkInfo?.nested(UInt16(IFLA_INFO_DATA)).flatMap(BridgeNetfilter.init) : nil
        peerIndex = attrs.u32(UInt16(IFLA_LINK)).map { Int32(bitPattern: $0) }
        alias = attrs.string(UInt16(IFLA_IFALIAS))
        if let linkInfo, linkInfo.string(UInt16(IFLA_INFO_SLAVE_KIND)) == "bridge", let port = linkInfo.nested(UInt16(IFLA_INFO_SLAVE_DATA))
        {
            bridgePort = BridgePortSettings(
                hairpin: port.u8(UInt16(IFLA_BRPORT_MODE)).map { $0 != 0 }, isolated: port.u8(UInt16(IFLA_BRPORT_ISOLATED)).map { $0 != 0 })
        } else {
            bridgePort = nil
        }
    }
}

/// The indexes of a veth pair just created: this end's, and the peer's in its own namespace.
public struct CreatedVeth: Sendable, Equatable {
    public let index: Int32
    public let peerIndex: Int32

    public init(index: Int32, peerIndex: Int32) {
        self.index = index
        self.peerIndex = peerIndex
    }
}

/// What a new veth pair looks like; the peer can be created straight inside another namespace.
public struct VethPair: Sendable {
    public var name: String
    public var mac: MACAddress
    public var peerName: String
    public var peerMAC: MACAddress
    /// An open network-namespace descriptor for the peer; nil keeps it beside `name`.
    public var peerNamespaceFD: Int32?
    public var mtu: UInt32?
    /// Enslaves `name` to this bridge index at creation.
    public var master: Int32?

    public init(
        name: String, mac: MACAddress, peerName: String, peerMAC: MACAddress,
        peerNamespaceFD: Int32?, mtu: UInt32?, master: Int32?
    ) {
        self.name = name
        self.mac = mac
        self.peerName = peerName
        self.peerMAC = peerMAC
        self.peerNamespaceFD = peerNamespaceFD
        self.mtu = mtu
        self.master = master
    }
}

func linkHeader(index: Int32 = 0, family: UInt8 = UInt8(AF_UNSPEC), flags: UInt32 = 0, change: UInt32 = 0) -> ifinfomsg {
    ifinfomsg(ifi_family: family, __ifi_pad: 0, ifi_type: 0, ifi_index: index, ifi_flags: flags, ifi_change: change)
}

private let up = UInt32(IFF_UP)

extension NetlinkSocket {
    /// The link called `name`, or nil when there is none.
    public func link(named name: String) throws(NetlinkError) -> Link? {
        do {
            let message = try get("look up link \(name)", type: UInt16(RTM_GETLINK)) { m in
                m.put(header: linkHeader())
                m.put(UInt16(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
                m.put(UInt16(IFLA_IFNAME), string: name)
            }
            return Link(message)
        } catch  where error.isNotFound {
            return nil
        }
    }

    /// Every link of the namespace.
    public func links() throws(NetlinkError) -> [Link] {
        try dump("list links", type: UInt16(RTM_GETLINK)) { m in
            m.put(header: linkHeader())
            m.put(UInt16(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
        }.map(Link.init)
    }

    /// Deletes the link with index `index`; returns false when there was none.
    @discardableResult
    public func deleteLink(index: Int32, name: String) throws(NetlinkError) -> Bool {
        do {
            try execute("delete link \(name)", type: UInt16(RTM_DELLINK)) { m in m.put(header: linkHeader(index: index)) }
            return true
        } catch  where error.isNotFound {
            return false
        }
    }

    /// The link with index `index`, or nil when there is none.
    public func link(index: Int32) throws(NetlinkError) -> Link? {
        do {
            let message = try get("look up link \(index)", type: UInt16(RTM_GETLINK)) { m in
                m.put(header: linkHeader(index: index))
                m.put(UInt16(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
            }
            return Link(message)
        } catch  where error.isNotFound {
            return nil
        }
    }

    /// Creates a bridge, up, with a fixed MAC so that it does not follow its ports' addresses
    /// as they come and go, and with its own bridge-netfilter switches set as `netfilter` says
    /// (in the same request: a new bridge costs no extra round trip). Throws EEXIST when a link
    /// of that name exists.
    public func createBridge(name: String, mac: MACAddress, mtu: UInt32?, netfilter: BridgeNetfilter? = nil) throws(NetlinkError) {
        try execute("create bridge \(name)", type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(header: linkHeader(flags: up, change: up))
            m.put(UInt16(IFLA_IFNAME), string: name)
            m.put(UInt16(IFLA_ADDRESS), bytes: mac.bytes)
            if let mtu { m.put(UInt16(IFLA_MTU), u32: mtu) }
            m.nest(UInt16(IFLA_LINKINFO)) { info in
                info.put(UInt16(IFLA_INFO_KIND), string: "bridge")
                if let netfilter { info.nest(UInt16(IFLA_INFO_DATA)) { netfilter.put(to: $0) } }
            }
        }
    }

    /// Sets an existing bridge's own bridge-netfilter switches (`nf_call_iptables`,
    /// `nf_call_ip6tables`), leaving every other bridge setting as it is. The node-wide sysctls
    /// `net.bridge.bridge-nf-call-*` are not touched: they would change every bridge of the node.
    public func setBridgeNetfilter(index: Int32, name: String, _ netfilter: BridgeNetfilter) throws(NetlinkError) {
        try execute("set bridge netfilter of \(name) (\(netfilter))", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index))
            m.nest(UInt16(IFLA_LINKINFO)) { info in
                info.put(UInt16(IFLA_INFO_KIND), string: "bridge")
                info.nest(UInt16(IFLA_INFO_DATA)) { netfilter.put(to: $0) }
            }
        }
    }

    /// Creates a veth pair in one request: this end up and enslaved to `master`, MACs and MTU
    /// set, the peer created directly in its namespace (no move afterwards) and left down. The
    /// kernel echoes the new link (NLM_F_ECHO), which gives both ends' indexes without a
    /// look-up; a kernel that does not echo costs one look-up.
    public func createVethPair(_ pair: VethPair) throws(NetlinkError) -> CreatedVeth {
        let replies = try batchWithReplies { NetlinkSocket.createVethPair(pair, to: &$0) }
        let echoed = replies.lazy.filter { $0.type == UInt16(RTM_NEWLINK) }.map(Link.init).first { $0.name == pair.name }
        var link = echoed
        if link == nil { link = try self.link(named: pair.name) }
        guard let link, let peerIndex = link.peerIndex else {
            throw NetlinkError("look up veth \(pair.name)", errno: ENODEV, kernelMessage: "it vanished right after it was created")
        }
        return CreatedVeth(index: link.index, peerIndex: peerIndex)
    }

    /// Adds the request creating `pair` (see `createVethPair`), asking for the new link back.
    public static func createVethPair(_ pair: VethPair, to batch: inout Batch) {
        batch.add("create veth \(pair.name)", type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO) { m in
            m.put(header: linkHeader(flags: up, change: up))
            m.put(UInt16(IFLA_IFNAME), string: pair.name)
            m.put(UInt16(IFLA_ADDRESS), bytes: pair.mac.bytes)
            if let mtu = pair.mtu { m.put(UInt16(IFLA_MTU), u32: mtu) }
            if let master = pair.master { m.put(UInt16(IFLA_MASTER), u32: UInt32(bitPattern: master)) }
            m.nest(UInt16(IFLA_LINKINFO)) { info in
                info.put(UInt16(IFLA_INFO_KIND), string: "veth")
                info.nest(UInt16(IFLA_INFO_DATA)) { data in
                    data.nest(UInt16(VETH_INFO_PEER)) { peer in
                        // The peer cannot be created up: the kernel links the two ends only after
                        // configuring the peer, and opening an unlinked veth fails with ENOTCONN.
                        peer.putRaw(linkHeader())
                        peer.put(UInt16(IFLA_IFNAME), string: pair.peerName)
                        peer.put(UInt16(IFLA_ADDRESS), bytes: pair.peerMAC.bytes)
                        if let mtu = pair.mtu { peer.put(UInt16(IFLA_MTU), u32: mtu) }
                        if let fd = pair.peerNamespaceFD { peer.put(UInt16(IFLA_NET_NS_FD), u32: UInt32(bitPattern: fd)) }
                    }
                }
            }
        }
    }

    /// Adds a request setting a link's alias (IFLA_IFALIAS, a free-form label of up to 127
    /// bytes) to a batch. By index, never by name: the kernel
    /// ignores an alias in a creating request, and a by-name request sent along with the
    /// creation would label a foreign link should the name already exist.
    public static func setAlias(index: Int32, name: String, alias: String, to batch: inout Batch) {
        batch.add("set alias of \(name)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index))
            m.put(UInt16(IFLA_IFALIAS), string: alias)
        }
    }

    /// Adds a request setting IFF_UP (and optionally IFF_PROMISC) on a link to a batch.
    public static func setLink(index: Int32, name: String, up isUp: Bool = true, promiscuous: Bool? = nil, to batch: inout Batch) {
        var flags: UInt32 = isUp ? up : 0
        var change = up
        if let promiscuous {
            change |= UInt32(IFF_PROMISC)
            if promiscuous { flags |= UInt32(IFF_PROMISC) }
        }
        batch.add("set \(name) \(isUp ? "up" : "down")", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index, flags: flags, change: change))
        }
    }

    public func setLink(index: Int32, name: String, up isUp: Bool = true, promiscuous: Bool? = nil) throws(NetlinkError) {
        try batch { NetlinkSocket.setLink(index: index, name: name, up: isUp, promiscuous: promiscuous, to: &$0) }
    }

    /// Adds the request setting a bridge port's flags to a batch (hairpin: a pod reaches itself
    /// through a service IP); flags left nil are unchanged, nothing when every flag is nil.
    public static func setBridgePort(index: Int32, name: String, _ settings: BridgePortSettings, to batch: inout Batch) {
        guard !settings.isEmpty else { return }
        batch.add("set bridge port flags \(settings) on \(name)", type: UInt16(RTM_SETLINK)) { m in
            m.put(header: linkHeader(index: index, family: UInt8(AF_BRIDGE)))
            m.nest(UInt16(IFLA_PROTINFO) | cshim_nla_f_nested()) { port in
                if let hairpin = settings.hairpin { port.put(UInt16(IFLA_BRPORT_MODE), u8: hairpin ? 1 : 0) }
                if let isolated = settings.isolated { port.put(UInt16(IFLA_BRPORT_ISOLATED), u8: isolated ? 1 : 0) }
            }
        }
    }

    /// Adds a request setting one IPv4 per-interface sysctl (`net.ipv4.conf.<if>.<key>`) to a batch.
    /// Netlink reaches these without /proc/sys, which follows the opener's namespace, not the socket's.
    public static func setIPv4Setting(_ setting: IPv4DeviceSetting, value: UInt32, index: Int32, name: String, to batch: inout Batch) {
        batch.add("set net.ipv4.conf.\(name).\(setting) to \(value)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index))
            m.nest(UInt16(IFLA_AF_SPEC)) { spec in
                spec.nest(UInt16(AF_INET)) { inet in
                    inet.nest(UInt16(IFLA_INET_CONF)) { $0.put(setting.attribute, u32: value) }
                }
            }
        }
    }

    /// Deletes the link called `name`; returns false when there was none.
    @discardableResult
    public func deleteLink(named name: String) throws(NetlinkError) -> Bool {
        do {
            try execute("delete link \(name)", type: UInt16(RTM_DELLINK)) { m in
                m.put(header: linkHeader())
                m.put(UInt16(IFLA_IFNAME), string: name)
            }
            return true
        } catch  where error.isNotFound {
            return false
        }
    }
}

/// IPv4 per-interface settings that can be changed over netlink.
public enum IPv4DeviceSetting: CustomStringConvertible, Sendable {
    /// Send gratuitous ARP when the device comes up or its address changes.
    case arpNotify

    var attribute: UInt16 {
        switch self {
        case .arpNotify: return UInt16(IPV4_DEVCONF_ARP_NOTIFY)
        }
    }

    public var description: String {
        switch self {
        case .arpNotify: return "arp_notify"
        }
    }
}

/// Flags of a bridge port (IFLA_PROTINFO of an AF_BRIDGE RTM_SETLINK).
public struct BridgePortSettings: Sendable, Equatable, CustomStringConvertible {
    /// Hairpin: frames may leave through the port they came in by.
    public var hairpin: Bool?
    /// Isolated: the port exchanges frames only with ports that are not isolated (the bridge
    /// itself, uplinks), never with another isolated port.
    public var isolated: Bool?

    public init(hairpin: Bool? = nil, isolated: Bool? = nil) {
        self.hairpin = hairpin
        self.isolated = isolated
    }

    public var isEmpty: Bool { hairpin == nil && isolated == nil }

    public var description: String {
        [hairpin.map { "hairpin \($0 ? "on" : "off")" }, isolated.map { "isolated \($0 ? "on" : "off")" }]
            .compactMap { $0 }.joined(separator: ", ")
    }
}

/// A bridge's own switches that send its bridged IPv4/IPv6 traffic through the iptables/nftables
/// hooks of the `ip`/`ip6` families (`IFLA_BR_NF_CALL_IPTABLES`/`IP6TABLES`, shown as
/// `nf_call_iptables` by `ip -d link`). Either this or the node-wide sysctl
/// `net.bridge.bridge-nf-call-iptables` makes br_netfilter hand a bridge's frames to netfilter;
/// kube-proxy's DNAT of a Service answered by a pod on the same bridge needs it.
public struct BridgeNetfilter: Sendable, Equatable, CustomStringConvertible {
    public var iptables: Bool
    public var ip6tables: Bool

    public init(iptables: Bool, ip6tables: Bool) {
        self.iptables = iptables
        self.ip6tables = ip6tables
    }

    /// Both families on: what the plugin's bridge carries.
    public static let on = BridgeNetfilter(iptables: true, ip6tables: true)

    /// From a bridge's IFLA_INFO_DATA; nil when the kernel reports neither switch.
    init?(_ data: Attributes) {
        let v4 = data.u8(UInt16(IFLA_BR_NF_CALL_IPTABLES))
        let v6 = data.u8(UInt16(IFLA_BR_NF_CALL_IP6TABLES))
        guard v4 != nil || v6 != nil else { return nil }
        iptables = v4 ?? 0 != 0
        ip6tables = v6 ?? 0 != 0
    }

    func put(to data: MessageBuilder) {
        data.put(UInt16(IFLA_BR_NF_CALL_IPTABLES), u8: iptables ? 1 : 0)
        data.put(UInt16(IFLA_BR_NF_CALL_IP6TABLES), u8: ip6tables ? 1 : 0)
    }

    public var description: String { "nf_call_iptables \(iptables ? 1 : 0), nf_call_ip6tables \(ip6tables ? 1 : 0)" }
}
