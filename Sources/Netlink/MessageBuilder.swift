import CNetlinkShim

/// Appends a message's family header and attributes through libmnl. Lives only for the closure
/// that builds one message; never escapes it.
public struct MessageBuilder {
    let header: UnsafeMutablePointer<nlmsghdr>

    /// Appends the family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`, ...) right after the netlink header.
    public func put<Header>(header value: Header) {
        let raw = mnl_nlmsg_put_extra_header(header, MemoryLayout<Header>.size)!
        raw.storeBytes(of: value, as: Header.self)
    }

    public func put(_ type: UInt16, u8 value: UInt8) { mnl_attr_put_u8(header, type, value) }
    public func put(_ type: UInt16, u32 value: UInt32) { mnl_attr_put_u32(header, type, value) }
    public func put(_ type: UInt16, string value: String) { mnl_attr_put_strz(header, type, value) }
    public func put(_ type: UInt16, bytes value: [UInt8]) {
        value.withUnsafeBytes { mnl_attr_put(header, type, $0.count, $0.baseAddress) }
    }

    /// Lends the message header to a C library that appends its own payload (libnftnl's
    /// `nftnl_*_nlmsg_build_payload`). The pointer must not outlive `body`.
    public func withHeader<R>(_ body: (UnsafeMutablePointer<nlmsghdr>) -> R) -> R { body(header) }

    /// Opens a nested attribute, lets `body` fill it, and closes it.
    public func nest(_ type: UInt16, _ body: (MessageBuilder) -> Void) {
        let start = mnl_attr_nest_start(header, type)!
        body(self)
        mnl_attr_nest_end(header, start)
    }

    /// Appends a raw struct inside the current nest (veth's peer carries an `ifinfomsg` there).
    public func putRaw<Value>(_ value: Value) {
        let tail = mnl_nlmsg_get_payload_tail(header)!
        let size = cshim_nla_align(MemoryLayout<Value>.size)
        tail.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        tail.storeBytes(of: value, as: Value.self)
        header.pointee.nlmsg_len += UInt32(size)
    }
}
