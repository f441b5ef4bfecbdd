#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

/// Appends a message's family header and attributes through libmnl. Lives only for the closure
/// that builds one message; never escapes it.
///
/// Every append checks the room left first and writes nothing when the message would outgrow
/// `room`: it marks the message as overflowed instead, and the socket refuses to send it.
/// Nothing is ever written past the buffer. Each append also zeroes the bytes it takes, since
/// libmnl before 1.0.5 (Debian 12 ships 1.0.4) leaves attribute padding unwritten, and the
/// buffer is reused: requests must not carry stale bytes.
public struct MessageBuilder {
    let header: UnsafeMutablePointer<nlmsghdr>
    /// Bytes the whole message may take, header included.
    let room: Int
    /// Set once an append did not fit; owned by the socket, outlives the builder.
    let overflowed: UnsafeMutablePointer<Bool>

    private var length: Int { Int(header.pointee.nlmsg_len) }

    /// Whether `size` more bytes fit; if so, zeroes them (padding included).
    private func reserve(_ size: Int) -> Bool {
        let aligned = cshim_nla_align(size)
        guard !overflowed.pointee, length + aligned <= room else {
            overflowed.pointee = true
            return false
        }
        memset(mnl_nlmsg_get_payload_tail(header), 0, aligned)
        return true
    }

    private func reserveAttribute(_ payloadSize: Int) -> Bool { reserve(MemoryLayout<nlattr>.size + cshim_nla_align(payloadSize)) }

    /// Appends the family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`, ...) right after the netlink header.
    public func put<Header>(header value: Header) {
        guard reserve(MemoryLayout<Header>.size) else { return }
        let raw = mnl_nlmsg_put_extra_header(header, MemoryLayout<Header>.size)!
        raw.storeBytes(of: value, as: Header.self)
    }

    public func put(_ type: UInt16, u8 value: UInt8) {
        if reserveAttribute(1) { mnl_attr_put_u8(header, type, value) }
    }

    public func put(_ type: UInt16, u32 value: UInt32) {
        if reserveAttribute(4) { mnl_attr_put_u32(header, type, value) }
    }

    public func put(_ type: UInt16, string value: String) {
        // libmnl copies up to the first NUL; the reservation covers the whole string.
        if reserveAttribute(value.utf8.count + 1) { mnl_attr_put_strz(header, type, value) }
    }

    public func put(_ type: UInt16, bytes value: [UInt8]) {
        guard reserveAttribute(value.count) else { return }
        value.withUnsafeBytes { mnl_attr_put(header, type, $0.count, $0.baseAddress) }
    }

    /// Lends the message header to a C library that appends its own payload (libnftnl's
    /// `nftnl_*_nlmsg_build_payload`). Such libraries do not check room: the socket gives every
    /// message `NetlinkSocket.maximumMessageSize` bytes, and the payload must stay below that
    /// (our nftables messages are a few hundred bytes; their inputs are capped). Outgrowing it is
    /// caught right after `body`, too late to undo, so it stops the process. The first 4 KiB
    /// are zeroed first, for the padding libnftnl leaves unwritten. The pointer must not outlive
    /// `body`.
    public func withHeader<R>(_ body: (UnsafeMutablePointer<nlmsghdr>) -> R) -> R {
        if !overflowed.pointee { memset(mnl_nlmsg_get_payload_tail(header), 0, min(room - length, 4096)) }
        let result = body(header)
        precondition(length <= room, "a C payload builder wrote past the netlink message limit")
        return result
    }

    /// Opens a nested attribute, lets `body` fill it, and closes it.
    public func nest(_ type: UInt16, _ body: (MessageBuilder) -> Void) {
        guard reserveAttribute(0) else { return }
        let start = mnl_attr_nest_start(header, type)!
        body(self)
        mnl_attr_nest_end(header, start)
    }

    /// Appends a raw struct inside the current nest (veth's peer carries an `ifinfomsg` there).
    public func putRaw<Value>(_ value: Value) {
        guard reserve(MemoryLayout<Value>.size) else { return }
        mnl_nlmsg_get_payload_tail(header)!.storeBytes(of: value, as: Value.self)
        header.pointee.nlmsg_len += UInt32(cshim_nla_align(MemoryLayout<Value>.size))
    }
}
