#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// A neighbour (ARP / NDP) entry: an IP address on a link and the MAC it resolves to.
public struct NeighbourEntry: Sendable, Hashable {
    public var index: Int32
    public var address: IPAddress
    public var mac: MACAddress?
    /// `NUD_*` bits; our entries are NUD_PERMANENT.
    public var state: UInt16

    /// Set by hand or by us, never aged out or replaced by the kernel.
    public var isPermanent: Bool { state & UInt16(NUD_PERMANENT) != 0 }

    public init(index: Int32, address: IPAddress, mac: MACAddress?, state: UInt16 = UInt16(NUD_PERMANENT)) {
        self.index = index
        self.address = address
        self.mac = mac
        self.state = state
    }
}

/// A forwarding database entry of a VXLAN device: frames for `mac` go in a UDP datagram to
/// `destination` (a peer's underlay address).
public struct ForwardingEntry: Sendable, Hashable {
    public var index: Int32
    public var mac: MACAddress
    public var destination: IPAddress?

    public init(index: Int32, mac: MACAddress, destination: IPAddress?) {
        self.index = index
        self.mac = mac
        self.destination = destination
    }
}

private func neighbourHeader(family: Int32, index: Int32, state: UInt16 = 0, flags: UInt8 = 0) -> ndmsg {
    ndmsg(ndm_family: UInt8(family), ndm_pad1: 0, ndm_pad2: 0, ndm_ifindex: index, ndm_state: state, ndm_flags: flags, ndm_type: 0)
}

extension NetlinkSocket {
    /// The neighbour entries of `family` on link `index` (NDA_IFINDEX filters in the kernel).
    public func neighbours(family: IPAddress.Family, index: Int32) throws(NetlinkError) -> [NeighbourEntry] {
        let messages = try dump("list neighbours", type: UInt16(RTM_GETNEIGH)) { m in
            m.put(header: neighbourHeader(family: family == .v4 ? AF_INET : AF_INET6, index: 0))
            m.put(UInt16(NDA_IFINDEX), u32: UInt32(bitPattern: index))
        }
        return messages.compactMap { message in
            let header = message.header(as: ndmsg.self)
            guard header.ndm_ifindex == index, let ip = message.attributes[UInt16(NDA_DST)].flatMap(IPAddress.init(bytes:))
            else { return nil }
            return NeighbourEntry(
                index: index, address: ip, mac: message.attributes[UInt16(NDA_LLADDR)].flatMap(MACAddress.init(bytes:)),
                state: header.ndm_state)
        }
    }

    /// Adds (or replaces) a permanent neighbour entry.
    public static func setNeighbour(_ entry: NeighbourEntry, to batch: inout Batch) {
        batch.add(
            "add neighbour \(entry.address) lladdr \(entry.mac.map(\.description) ?? "-")", type: UInt16(RTM_NEWNEIGH),
            flags: NLM_F_CREATE | NLM_F_REPLACE
        ) { m in
            m.put(header: neighbourHeader(family: entry.address.family == .v4 ? AF_INET : AF_INET6, index: entry.index, state: entry.state))
            m.put(UInt16(NDA_DST), bytes: entry.address.bytes)
            if let mac = entry.mac { m.put(UInt16(NDA_LLADDR), bytes: mac.bytes) }
        }
    }

    public static func deleteNeighbour(_ entry: NeighbourEntry, to batch: inout Batch) {
        batch.add("delete neighbour \(entry.address)", type: UInt16(RTM_DELNEIGH)) { m in
            m.put(header: neighbourHeader(family: entry.address.family == .v4 ? AF_INET : AF_INET6, index: entry.index))
            m.put(UInt16(NDA_DST), bytes: entry.address.bytes)
        }
    }

    /// The forwarding entries of link `index` that send to a remote address (a VXLAN device's).
    /// The whole bridge-family table is read and filtered here: its dump filters differ
    /// between kernels, and a node's table is small beside its route table.
    public func forwardingEntries(index: Int32) throws(NetlinkError) -> [ForwardingEntry] {
        let messages = try dump("list forwarding entries", type: UInt16(RTM_GETNEIGH)) { m in
            m.put(header: neighbourHeader(family: AF_BRIDGE, index: 0))
        }
        return messages.compactMap { message in
            let header = message.header(as: ndmsg.self)
            guard header.ndm_ifindex == index, let mac = message.attributes[UInt16(NDA_LLADDR)].flatMap(MACAddress.init(bytes:))
            else { return nil }
            return ForwardingEntry(
                index: index, mac: mac, destination: message.attributes[UInt16(NDA_DST)].flatMap(IPAddress.init(bytes:)))
        }
    }

    /// Adds (or re-points) a permanent forwarding entry of the device itself (NTF_SELF).
    public static func setForwardingEntry(_ entry: ForwardingEntry, to batch: inout Batch) {
        batch.add(
            "add fdb \(entry.mac) dst \(entry.destination.map(\.description) ?? "-")", type: UInt16(RTM_NEWNEIGH),
            flags: NLM_F_CREATE | NLM_F_REPLACE
        ) { m in
            m.put(header: neighbourHeader(family: AF_BRIDGE, index: entry.index, state: UInt16(NUD_PERMANENT), flags: UInt8(NTF_SELF)))
            m.put(UInt16(NDA_LLADDR), bytes: entry.mac.bytes)
            if let destination = entry.destination { m.put(UInt16(NDA_DST), bytes: destination.bytes) }
        }
    }

    public static func deleteForwardingEntry(_ entry: ForwardingEntry, to batch: inout Batch) {
        batch.add("delete fdb \(entry.mac)", type: UInt16(RTM_DELNEIGH)) { m in
            m.put(header: neighbourHeader(family: AF_BRIDGE, index: entry.index, flags: UInt8(NTF_SELF)))
            m.put(UInt16(NDA_LLADDR), bytes: entry.mac.bytes)
            if let destination = entry.destination { m.put(UInt16(NDA_DST), bytes: destination.bytes) }
        }
    }
}
