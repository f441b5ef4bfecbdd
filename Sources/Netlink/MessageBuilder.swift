import CNetlinkShim

/// Appends a message's family header and attributes through libmnl. Lives only for the closure
/// that builds one message; never escapes it.
///
/// Every append checks the room left first (libmnl's `*_check` calls) and writes nothing when
/// the message would outgrow `room`: it marks the message as overflowed instead, and the socket
/// refuses to send it. Nothing is ever written past the buffer.
public struct MessageBuilder {
    let header: UnsafeMutablePointer<nlmsghdr>
    /// Bytes the whole message may take, header included.
    let room: Int
    /// Set once an append did not fit; owned by the socket, outlives the builder.
    let overflowed: UnsafeMutablePointer<Bool>

    private var length: Int { Int(header.pointee.nlmsg_len) }

    private func fits(_ size: Int) -> Bool {
        guard !overflowed.pointee, length + cshim_nla_align(size) <= room else {
            overflowed.pointee = true
            return false
        }
        return true
    }

    private func check(_ appended: Bool) { if !appended { overflowed.pointee = true } }

    /// Appends the family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`, ...) right after the netlink header.
    public func put<Header>(header value: Header) {
        guard fits(MemoryLayout<Header>.size) else { return }
        let raw = mnl_nlmsg_put_extra_header(header, MemoryLayout<Header>.size)!
        raw.storeBytes(of: value, as: Header.self)
    }

    public func put(_ type: UInt16, u8 value: UInt8) { check(mnl_attr_put_u8_check(header, room, type, value)) }
    public func put(_ type: UInt16, u32 value: UInt32) { check(mnl_attr_put_u32_check(header, room, type, value)) }
    public func put(_ type: UInt16, string value: String) { check(mnl_attr_put_strz_check(header, room, type, value)) }
    public func put(_ type: UInt16, bytes value: [UInt8]) {
        value.withUnsafeBytes { check(mnl_attr_put_check(header, room, type, $0.count, $0.baseAddress)) }
    }

    /// Lends the message header to a C library that appends its own payload (libnftnl's
    /// `nftnl_*_nlmsg_build_payload`). Such libraries do not check room: the socket gives every
    /// message `NetlinkSocket.maximumMessageSize` bytes, and the payload must stay below that
    /// (our nftables messages are a few hundred bytes; their inputs are capped). Outgrowing it is
    /// caught right after `body`, too late to undo, so it stops the process. The pointer must not
    /// outlive `body`.
    public func withHeader<R>(_ body: (UnsafeMutablePointer<nlmsghdr>) -> R) -> R {
        let result = body(header)
        precondition(length <= room, "a C payload builder wrote past the netlink message limit")
        return result
    }

    /// Opens a nested attribute, lets `body` fill it, and closes it.
    public func nest(_ type: UInt16, _ body: (MessageBuilder) -> Void) {
        guard !overflowed.pointee, let start = mnl_attr_nest_start_check(header, room, type) else {
            overflowed.pointee = true
            return
        }
        body(self)
        mnl_attr_nest_end(header, start)
    }

    /// Appends a raw struct inside the current nest (veth's peer carries an `ifinfomsg` there).
    public func putRaw<Value>(_ value: Value) {
        guard fits(MemoryLayout<Value>.size) else { return }
        let tail = mnl_nlmsg_get_payload_tail(header)!
        let size = cshim_nla_align(MemoryLayout<Value>.size)
        tail.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        tail.storeBytes(of: value, as: Value.self)
        header.pointee.nlmsg_len += UInt32(size)
    }
}
