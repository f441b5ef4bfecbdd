#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

/// Where `NetlinkSocket` sends its datagrams and reads the kernel's answers from.
///
/// The real one is a libmnl socket (`MNLTransport`); tests give an in-memory fake that records
/// the bytes sent and plays back crafted replies, so message building and reply parsing run
/// without root or a kernel.
public protocol NetlinkTransport: AnyObject {
    /// The port the kernel addresses our replies to (0 when the fake does not care).
    var portID: UInt32 { get }
    /// Sends one datagram (one or more netlink messages) whole; throws with the errno.
    func send(_ datagram: UnsafeRawBufferPointer) throws(NetlinkError)
    /// Receives one datagram into `buffer`; returns its length. A datagram longer than the
    /// buffer is an error (EMSGSIZE), never silently cut.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(NetlinkError) -> Int
}

/// A netlink socket through libmnl, bound in the calling thread's current namespace and opened
/// close-on-exec, so a spawned IPAM plugin inherits none.
public final class MNLTransport: NetlinkTransport {
    private let socket: OpaquePointer
    public let portID: UInt32

    /// `strictDumps` (NETLINK_GET_STRICT_CHK, Linux 4.20) makes the kernel honour the filters in
    /// a dump request's header (a route dump of one table and protocol) instead of sending all.
    public init(protocol bus: Int32, strictDumps: Bool = false) throws(NetlinkError) {
        guard let socket = mnl_socket_open2(bus, Int32(SOCK_CLOEXEC.rawValue)) else { throw NetlinkError("open netlink socket") }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = NetlinkError("bind netlink socket")
            mnl_socket_close(socket)
            throw error
        }
        var on: Int32 = 1
        // Best effort: extended acks give readable kernel messages; capped acks keep them short.
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        // Best effort too: an older kernel ignores the filters, and callers filter again.
        if strictDumps { _ = mnl_socket_setsockopt(socket, NETLINK_GET_STRICT_CHK, &on, socklen_t(MemoryLayout<Int32>.size)) }
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
    }

    deinit { mnl_socket_close(socket) }

    /// Best effort: SO_SNDBUFFORCE (CAP_NET_ADMIN) past the system's cap, else SO_SNDBUF.
    public func setSendBuffer(_ bytes: Int) {
        var size = Int32(clamping: bytes)
        let fd = mnl_socket_get_fd(socket)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    public func send(_ datagram: UnsafeRawBufferPointer) throws(NetlinkError) {
        while mnl_socket_sendto(socket, datagram.baseAddress, datagram.count) < 0 {
            if errno == EINTR { continue }
            throw NetlinkError("send netlink datagram")
        }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(NetlinkError) -> Int {
        while true {
            // libmnl reports a datagram cut short (MSG_TRUNC) as ENOSPC.
            let received = mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count)
            if received >= 0 { return received }
            if errno == EINTR { continue }
            throw NetlinkError("receive netlink datagram", errno: errno == ENOSPC ? EMSGSIZE : errno)
        }
    }
}
