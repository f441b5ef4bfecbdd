#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

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

    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
    public var isPromiscuous: Bool { flags & UInt32(IFF_PROMISC) != 0 }

    init(_ message: NetlinkMessage) {
        let info = message.header(as: ifinfomsg.self)
        let attrs = message.attributes
        index = info.ifi_index
        flags = info.ifi_flags
        name = attrs.string(UInt16(IFLA_IFNAME)) ?? ""
        mtu = attrs.u32(UInt16(IFLA_MTU)) ?? 0
        mac = attrs[UInt16(IFLA_ADDRESS)].flatMap(MACAddress.init(bytes:))
        master = attrs.u32(UInt16(IFLA_MASTER)).map { Int32(bitPattern: $0) }
        kind = attrs.nested(UInt16(IFLA_LINKINFO))?.string(UInt16(IFLA_INFO_KIND))
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

    public init(name: String, mac: MACAddress, peerName: String, peerMAC: MACAddress,
                peerNamespaceFD: Int32?, mtu: UInt32?, master: Int32?) {
        self.name = name; self.mac = mac; self.peerName = peerName; self.peerMAC = peerMAC
        self.peerNamespaceFD = peerNamespaceFD; self.mtu = mtu; self.master = master
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
        } catch where error.isNotFound {
            return nil
        }
    }

    /// Creates a bridge, up, with a fixed MAC so that it does not follow its ports' addresses
    /// as they come and go. Throws EEXIST when a link of that name exists.
    public func createBridge(name: String, mac: MACAddress, mtu: UInt32?) throws(NetlinkError) {
        try execute("create bridge \(name)", type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(header: linkHeader(flags: up, change: up))
            m.put(UInt16(IFLA_IFNAME), string: name)
            m.put(UInt16(IFLA_ADDRESS), bytes: mac.bytes)
            if let mtu { m.put(UInt16(IFLA_MTU), u32: mtu) }
            m.nest(UInt16(IFLA_LINKINFO)) { $0.put(UInt16(IFLA_INFO_KIND), string: "bridge") }
        }
    }

    /// Creates a veth pair in one request: both ends up, MACs and MTU set, this end enslaved to
    /// `master`, the peer created directly in its namespace (no move afterwards).
    public func createVethPair(_ pair: VethPair) throws(NetlinkError) {
        try execute("create veth \(pair.name)", type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(header: linkHeader(flags: up, change: up))
            m.put(UInt16(IFLA_IFNAME), string: pair.name)
            m.put(UInt16(IFLA_ADDRESS), bytes: pair.mac.bytes)
            if let mtu = pair.mtu { m.put(UInt16(IFLA_MTU), u32: mtu) }
            if let master = pair.master { m.put(UInt16(IFLA_MASTER), u32: UInt32(bitPattern: master)) }
            m.nest(UInt16(IFLA_LINKINFO)) { info in
                info.put(UInt16(IFLA_INFO_KIND), string: "veth")
                info.nest(UInt16(IFLA_INFO_DATA)) { data in
                    data.nest(UInt16(VETH_INFO_PEER)) { peer in
                        peer.putRaw(linkHeader(flags: up, change: up))
                        peer.put(UInt16(IFLA_IFNAME), string: pair.peerName)
                        peer.put(UInt16(IFLA_ADDRESS), bytes: pair.peerMAC.bytes)
                        if let mtu = pair.mtu { peer.put(UInt16(IFLA_MTU), u32: mtu) }
                        if let fd = pair.peerNamespaceFD { peer.put(UInt16(IFLA_NET_NS_FD), u32: UInt32(bitPattern: fd)) }
                    }
                }
            }
        }
    }

    /// Sets IFF_UP (and optionally IFF_PROMISC) on a link.
    public func setLink(index: Int32, name: String, up isUp: Bool = true, promiscuous: Bool? = nil) throws(NetlinkError) {
        var flags: UInt32 = isUp ? up : 0
        var change = up
        if let promiscuous {
            change |= UInt32(IFF_PROMISC)
            if promiscuous { flags |= UInt32(IFF_PROMISC) }
        }
        try execute("set flags of \(name)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index, flags: flags, change: change))
        }
    }

    /// Pins a bridge's current MAC so it stops following its ports (the kernel marks it as set).
    public func setMAC(index: Int32, name: String, mac: MACAddress) throws(NetlinkError) {
        try execute("set MAC of \(name)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index))
            m.put(UInt16(IFLA_ADDRESS), bytes: mac.bytes)
        }
    }

    /// Turns hairpin mode on for a bridge port, so a pod can reach itself through a service IP.
    public func setHairpin(index: Int32, name: String) throws(NetlinkError) {
        try execute("set hairpin mode on \(name)", type: UInt16(RTM_SETLINK)) { m in
            m.put(header: linkHeader(index: index, family: UInt8(AF_BRIDGE)))
            m.nest(UInt16(IFLA_PROTINFO) | cshim_nla_f_nested()) { $0.put(UInt16(IFLA_BRPORT_MODE), u8: 1) }
        }
    }

    /// Sets one IPv4 per-interface sysctl (`net.ipv4.conf.<if>.<key>`) over netlink.
    public func setIPv4DeviceConfig(index: Int32, name: String, _ key: Int32, value: UInt32) throws(NetlinkError) {
        try execute("set IPv4 setting \(key) on \(name)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index))
            m.nest(UInt16(IFLA_AF_SPEC)) { spec in
                spec.nest(UInt16(AF_INET)) { inet in
                    inet.nest(UInt16(IFLA_INET_CONF)) { $0.put(UInt16(key), u32: value) }
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
        } catch where error.isNotFound {
            return false
        }
    }
}
