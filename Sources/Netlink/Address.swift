#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import Addresses

/// An address assigned to an interface.
public struct InterfaceAddress: Sendable, Equatable {
    public let index: Int32
    public let network: IPNetwork
    /// `IFA_F_*` flags (IFA_FLAGS when the kernel sends it, else the header's 8 bits).
    public let flags: UInt32

    /// IPv6 duplicate address detection has not finished: the address cannot be used yet.
    public var isTentative: Bool { flags & UInt32(IFA_F_TENTATIVE) != 0 }
    /// Duplicate address detection found another node using the address.
    public var isDuplicate: Bool { flags & UInt32(IFA_F_DADFAILED) != 0 }

    public init(index: Int32, network: IPNetwork, flags: UInt32 = 0) {
        self.index = index
        self.network = network
        self.flags = flags
    }
}

/// How a new address is added.
public struct AddressOptions: Sendable {
    /// IFA_F_NODAD: the address is usable at once, without IPv6 duplicate address detection
    /// (which holds a new address back for about a second, or two with a fresh link-local).
    /// Meaningless for IPv4, so only set on IPv6 addresses.
    public var skipDuplicateDetection: Bool

    public init(skipDuplicateDetection: Bool = false) { self.skipDuplicateDetection = skipDuplicateDetection }
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
                let network = IPNetwork(address: ip, prefixLength: Int(header.ifa_prefixlen))
            else { return nil }
            let flags = message.attributes.u32(UInt16(IFA_FLAGS)) ?? UInt32(header.ifa_flags)
            return InterfaceAddress(index: i, network: network, flags: flags)
        }
    }

    /// Adds the RTM_NEWADDR request for `address` to a batch.
    public static func addAddress(
        _ address: IPNetwork, index: Int32, options: AddressOptions = AddressOptions(),
        to batch: inout Batch
    ) {
        let flags: UInt32 = options.skipDuplicateDetection && address.address.family == .v6 ? UInt32(IFA_F_NODAD) : 0
        batch.add("add address \(address)", type: UInt16(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL) { m in
            m.put(
                header: ifaddrmsg(
                    ifa_family: family(of: address.address), ifa_prefixlen: UInt8(address.prefixLength),
                    ifa_flags: UInt8(truncatingIfNeeded: flags), ifa_scope: 0, ifa_index: UInt32(bitPattern: index)))
            m.put(UInt16(IFA_LOCAL), bytes: address.address.bytes)
            m.put(UInt16(IFA_ADDRESS), bytes: address.address.bytes)
            if flags != 0 { m.put(UInt16(IFA_FLAGS), u32: flags) }
            if address.address.family == .v4 && address.prefixLength < 31 {
                m.put(UInt16(IFA_BROADCAST), bytes: address.last.bytes)
            }
        }
    }

    public func addAddress(
        _ address: IPNetwork, index: Int32, options: AddressOptions = AddressOptions(),
        tolerateExisting: Bool = false
    ) throws(NetlinkError) {
        try batch(tolerate: tolerateExisting ? [EEXIST] : []) { NetlinkSocket.addAddress(address, index: index, options: options, to: &$0) }
    }

    public func deleteAddress(_ address: IPNetwork, index: Int32) throws(NetlinkError) {
        try execute("delete address \(address)", type: UInt16(RTM_DELADDR), tolerate: [EADDRNOTAVAIL]) { m in
            m.put(
                header: ifaddrmsg(
                    ifa_family: family(of: address.address), ifa_prefixlen: UInt8(address.prefixLength),
                    ifa_flags: 0, ifa_scope: 0, ifa_index: UInt32(bitPattern: index)))
            m.put(UInt16(IFA_LOCAL), bytes: address.address.bytes)
        }
    }
}
