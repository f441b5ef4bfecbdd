#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// A route in a routing table.
public struct RouteEntry: Sendable, Equatable {
    public var destination: IPNetwork
    public var gateway: IPAddress?
    public var outputInterface: Int32?
    public var table: UInt32
    public var routeProtocol: UInt8
    /// RTNH_F_ONLINK: the gateway is taken as on the output link without a connected route to
    /// it (a VXLAN peer's tunnel address).
    public var onLink: Bool

    public init(
        destination: IPNetwork, gateway: IPAddress? = nil, outputInterface: Int32? = nil,
        table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue), routeProtocol: UInt8 = UInt8(RTPROT_BOOT), onLink: Bool = false
    ) {
        self.onLink = onLink
        self.destination = destination
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.table = table
        self.routeProtocol = routeProtocol
    }
}

extension NetlinkSocket {
    /// Every route of `family` in every table; or only those of `table` and `routeProtocol`.
    /// A socket opened with `strictDumps` has the kernel send only those (a node's own routes
    /// out of a table of thousands); otherwise they are picked out here.
    public func routes(family: IPAddress.Family, table: UInt32? = nil, routeProtocol: UInt8? = nil) throws(NetlinkError) -> [RouteEntry] {
        let af = UInt8(family == .v4 ? AF_INET : AF_INET6)
        let messages = try dump("list routes", type: UInt16(RTM_GETROUTE)) { m in
            m.put(
                header: rtmsg(
                    rtm_family: af, rtm_dst_len: 0, rtm_src_len: 0, rtm_tos: 0,
                    rtm_table: UInt8(truncatingIfNeeded: min(table ?? 0, 255)),
                    rtm_protocol: routeProtocol ?? 0, rtm_scope: 0, rtm_type: 0, rtm_flags: 0))
            if let table { m.put(UInt16(RTA_TABLE.rawValue), u32: table) }
        }
        return messages.compactMap { message in
            let header = message.header(as: rtmsg.self)
            if let routeProtocol, header.rtm_protocol != routeProtocol { return nil }
            if let table, (message.attributes.u32(UInt16(RTA_TABLE.rawValue)) ?? UInt32(header.rtm_table)) != table { return nil }
            return RouteEntry(message, family: family)
        }
    }
}

extension RouteEntry {
    init?(_ message: NetlinkMessage, family: IPAddress.Family) {
        let header = message.header(as: rtmsg.self)
        let a = message.attributes
        let zero = IPAddress(bytes: [UInt8](repeating: 0, count: family == .v4 ? 4 : 16))!
        let dst = a[UInt16(RTA_DST.rawValue)].flatMap(IPAddress.init(bytes:)) ?? zero
        guard let network = IPNetwork(address: dst, prefixLength: Int(header.rtm_dst_len)) else { return nil }
        self.init(
            destination: network,
            gateway: a[UInt16(RTA_GATEWAY.rawValue)].flatMap(IPAddress.init(bytes:)),
            outputInterface: a.u32(UInt16(RTA_OIF.rawValue)).map { Int32(bitPattern: $0) },
            table: a.u32(UInt16(RTA_TABLE.rawValue)) ?? UInt32(header.rtm_table),
            routeProtocol: header.rtm_protocol)
        self.onLink = header.rtm_flags & UInt32(RTNH_F_ONLINK) != 0
    }
}

extension NetlinkSocket {
    /// Adds the RTM_NEWROUTE request for `route` to a batch; `replace` swaps an existing route
    /// to the same destination instead of failing with EEXIST.
    public static func addRoute(_ route: RouteEntry, replace: Bool = false, to batch: inout Batch) {
        let via = route.gateway.map { " via \($0)" } ?? ""
        let flags = NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL)
        batch.add("add route \(route.destination)\(via)", type: UInt16(RTM_NEWROUTE), flags: flags) { m in
            m.put(
                header: rtmsg(
                    rtm_family: family(of: route.destination.address), rtm_dst_len: UInt8(route.destination.prefixLength),
                    rtm_src_len: 0, rtm_tos: 0, rtm_table: UInt8(truncatingIfNeeded: min(route.table, 255)),
                    rtm_protocol: route.routeProtocol,
                    rtm_scope: UInt8(route.gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue),
                    rtm_type: UInt8(RTN_UNICAST), rtm_flags: route.onLink ? UInt32(RTNH_F_ONLINK) : 0))
            m.put(UInt16(RTA_TABLE.rawValue), u32: route.table)
            if route.destination.prefixLength > 0 {
                m.put(UInt16(RTA_DST.rawValue), bytes: route.destination.network.bytes)
            }
            if let gateway = route.gateway { m.put(UInt16(RTA_GATEWAY.rawValue), bytes: gateway.bytes) }
            if let oif = route.outputInterface { m.put(UInt16(RTA_OIF.rawValue), u32: UInt32(bitPattern: oif)) }
        }
    }

    /// Adds the RTM_DELROUTE request for `route` to a batch. The kernel matches the protocol
    /// too, so a route of another owner to the same destination is left alone.
    public static func deleteRoute(_ route: RouteEntry, to batch: inout Batch) {
        batch.add("delete route \(route.destination)", type: UInt16(RTM_DELROUTE)) { m in
            m.put(
                header: rtmsg(
                    rtm_family: family(of: route.destination.address), rtm_dst_len: UInt8(route.destination.prefixLength),
                    rtm_src_len: 0, rtm_tos: 0, rtm_table: UInt8(truncatingIfNeeded: min(route.table, 255)),
                    rtm_protocol: route.routeProtocol, rtm_scope: UInt8(RT_SCOPE_NOWHERE.rawValue),
                    rtm_type: UInt8(RTN_UNICAST), rtm_flags: 0))
            m.put(UInt16(RTA_TABLE.rawValue), u32: route.table)
            if route.destination.prefixLength > 0 { m.put(UInt16(RTA_DST.rawValue), bytes: route.destination.network.bytes) }
            if let gateway = route.gateway { m.put(UInt16(RTA_GATEWAY.rawValue), bytes: gateway.bytes) }
        }
    }
}
