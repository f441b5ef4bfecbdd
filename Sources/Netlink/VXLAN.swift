#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// How a VXLAN device is set up: the settings the node agent's overlay checks and recreates
/// the device for when they differ.
public struct VXLANSettings: Sendable, Equatable {
    public var vni: UInt32
    /// The UDP destination port (host order).
    public var port: UInt16
    /// The underlay link the device sends through.
    public var underlayIndex: Int32?
    /// The source address of the encapsulated datagrams: this node's InternalIP.
    public var local: IPAddress?
    /// Learning of remote MACs from received frames; off, since every entry is set by us.
    public var learning: Bool

    public init(vni: UInt32, port: UInt16, underlayIndex: Int32?, local: IPAddress?, learning: Bool = false) {
        self.vni = vni
        self.port = port
        self.underlayIndex = underlayIndex
        self.local = local
        self.learning = learning
    }

    init?(_ data: Attributes) {
        guard let vni = data.u32(UInt16(IFLA_VXLAN_ID)) else { return nil }
        self.vni = vni
        port =
            data[UInt16(IFLA_VXLAN_PORT)].flatMap { b in b.count == 2 ? UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1]) : nil }
            ?? 0
        underlayIndex = data.u32(UInt16(IFLA_VXLAN_LINK)).map { Int32(bitPattern: $0) }
        local = (data[UInt16(IFLA_VXLAN_LOCAL)] ?? data[UInt16(IFLA_VXLAN_LOCAL6)]).flatMap(IPAddress.init(bytes:))
        learning = (data.u8(UInt16(IFLA_VXLAN_LEARNING)) ?? 0) != 0
    }
}

extension NetlinkSocket {
    /// Sets a link's MTU and brings it up, in one request.
    public func setLink(index: Int32, name: String, mtu: UInt32) throws(NetlinkError) {
        try execute("set mtu \(mtu) and up on \(name)", type: UInt16(RTM_NEWLINK)) { m in
            m.put(header: linkHeader(index: index, flags: UInt32(IFF_UP), change: UInt32(IFF_UP)))
            m.put(UInt16(IFLA_MTU), u32: mtu)
        }
    }

    /// Creates a VXLAN device, up, with a fixed MAC (peers address it by that MAC).
    public func createVXLAN(name: String, mac: MACAddress, mtu: UInt32?, _ settings: VXLANSettings) throws(NetlinkError) {
        try execute("create vxlan \(name)", type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(header: linkHeader(flags: UInt32(IFF_UP), change: UInt32(IFF_UP)))
            m.put(UInt16(IFLA_IFNAME), string: name)
            m.put(UInt16(IFLA_ADDRESS), bytes: mac.bytes)
            if let mtu { m.put(UInt16(IFLA_MTU), u32: mtu) }
            m.nest(UInt16(IFLA_LINKINFO)) { info in
                info.put(UInt16(IFLA_INFO_KIND), string: "vxlan")
                info.nest(UInt16(IFLA_INFO_DATA)) { data in
                    data.put(UInt16(IFLA_VXLAN_ID), u32: settings.vni)
                    if let link = settings.underlayIndex { data.put(UInt16(IFLA_VXLAN_LINK), u32: UInt32(bitPattern: link)) }
                    if let local = settings.local {
                        data.put(UInt16(local.family == .v4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6), bytes: local.bytes)
                    }
                    data.put(UInt16(IFLA_VXLAN_PORT), bytes: [UInt8(settings.port >> 8), UInt8(settings.port & 0xFF)])
                    data.put(UInt16(IFLA_VXLAN_LEARNING), u8: settings.learning ? 1 : 0)
                }
            }
        }
    }
}
