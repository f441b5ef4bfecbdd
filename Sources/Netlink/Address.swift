#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// An address assigned to an interface.
public struct InterfaceAddress: Sendable, Equatable {
    public let index: Int32
    public let network: IPNetwork
}

func family(of ip: IPAddress) -> UInt8 { UInt8(ip.family == .v4 ? AF_INET : AF_INET6) }

extension NetlinkSocket {
    /// Addresses of interface `index` (every interface when nil).
    public func addresses(index: Int32? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        let messages = try dump("list addresses", type: UInt16(RTM_GETADDR)) { m in
            m.put(header: ifaddrmsg(ifa_family: UInt8(AF_UNSPEC), ifa_prefixlen: 0, ifa_flags: 0, ifa_scope: 0, ifa_index: 0))
        }
        return messages.compactMap { message in
            let header = message.header(as: ifaddrmsg.self)
            let i = Int32(bitPattern: header.ifa_index)
            guard index == nil || i == index,
                  let bytes = message.attributes[UInt16(IFA_LOCAL)] ?? message.attributes[UInt16(IFA_ADDRESS)],
                  let ip = IPAddress(bytes: bytes),
                  let network = IPNetwork(address: ip, prefixLength: Int(header.ifa_prefixlen)) else { return nil }
            return InterfaceAddress(index: i, network: network)
        }
    }

    /// Adds the RTM_NEWADDR request for `address` to a batch.
    public static func addAddress(_ address: IPNetwork, index: Int32, to batch: inout Batch) {
        batch.add("add address \(address)", type: UInt16(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(header: ifaddrmsg(ifa_family: family(of: address.address), ifa_prefixlen: UInt8(address.prefixLength),
                                    ifa_flags: 0, ifa_scope: 0, ifa_index: UInt32(bitPattern: index)))
            m.put(UInt16(IFA_LOCAL), bytes: address.address.bytes)
            m.put(UInt16(IFA_ADDRESS), bytes: address.address.bytes)
            if address.address.family == .v4 && address.prefixLength < 31 {
                m.put(UInt16(IFA_BROADCAST), bytes: address.last.bytes)
            }
        }
    }

    public func addAddress(_ address: IPNetwork, index: Int32, tolerateExisting: Bool = false) throws(NetlinkError) {
        try batch(tolerate: tolerateExisting ? [EEXIST] : []) { NetlinkSocket.addAddress(address, index: index, to: &$0) }
    }

    public func deleteAddress(_ address: IPNetwork, index: Int32) throws(NetlinkError) {
        try execute("delete address \(address)", type: UInt16(RTM_DELADDR), tolerate: [EADDRNOTAVAIL]) { m in
            m.put(header: ifaddrmsg(ifa_family: family(of: address.address), ifa_prefixlen: UInt8(address.prefixLength),
                                    ifa_flags: 0, ifa_scope: 0, ifa_index: UInt32(bitPattern: index)))
            m.put(UInt16(IFA_LOCAL), bytes: address.address.bytes)
        }
    }
}
