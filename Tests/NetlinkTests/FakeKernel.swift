#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
@testable import Netlink

/// An in-memory transport: records every datagram sent, and answers each with the datagrams
/// `respond` returns for it. Receiving with nothing queued is an error, so a test that would
/// wait forever on a real socket fails at once instead.
final class FakeTransport: NetlinkTransport {
    let portID: UInt32 = 4242
    private(set) var sent: [[UInt8]] = []
    /// Sends and receives in order ("send", "receive"), to check that replies are read between datagrams.
    private(set) var events: [String] = []
    private var queue: [[UInt8]] = []
    var respond: (_ datagram: [UInt8], _ index: Int) -> [[UInt8]]

    init(respond: @escaping (_ datagram: [UInt8], _ index: Int) -> [[UInt8]] = { datagram, _ in Kernel.acknowledge(datagram) }) {
        self.respond = respond
    }

    func send(_ datagram: UnsafeRawBufferPointer) throws(NetlinkError) {
        let bytes = Array(datagram)
        events.append("send")
        sent.append(bytes)
        queue += respond(bytes, sent.count - 1)
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(NetlinkError) -> Int {
        events.append("receive")
        guard !queue.isEmpty else { throw NetlinkError("fake receive", errno: EAGAIN, kernelMessage: "nothing queued") }
        let datagram = queue.removeFirst()
        guard datagram.count <= buffer.count else { throw NetlinkError("fake receive", errno: EMSGSIZE) }
        datagram.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return datagram.count
    }

    /// Queues datagrams to be received before any reply to what is sent next.
    func enqueue(_ datagrams: [[UInt8]]) { queue += datagrams }
}

/// A netlink message as the test reads it back, independently of the code under test.
struct WireMessage: Equatable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var port: UInt32
    var payload: [UInt8]

    var bytes: [UInt8] { Wire.message(type: type, flags: flags, sequence: sequence, port: port, payload) }
}

/// Netlink encoding written out by hand (host byte order, 4-byte alignment), the oracle the
/// builders' bytes are compared with.
enum Wire {
    static func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func i32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }

    static func message(type: UInt16, flags: UInt16, sequence: UInt32, port: UInt32 = 0, _ payload: [UInt8]) -> [UInt8] {
        u32(UInt32(16 + payload.count)) + u16(type) + u16(flags) + u32(sequence) + u32(port) + payload
    }

    static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] { padded(u16(UInt16(4 + value.count)) + u16(type) + value) }
    static func attribute(_ type: UInt16, u32 value: UInt32) -> [UInt8] { attribute(type, u32(value)) }
    static func attribute(_ type: UInt16, string: String) -> [UInt8] { attribute(type, Array(string.utf8) + [0]) }
    /// libmnl marks nests with NLA_F_NESTED.
    static func nest(_ type: UInt16, _ children: [UInt8]...) -> [UInt8] { attribute(type | 0x8000, children.flatMap { $0 }) }

    static func ifinfomsg(family: UInt8 = 0, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [family, 0] + u16(0) + i32(index) + u32(flags) + u32(change)
    }

    static func ifaddrmsg(family: UInt8, prefixLength: UInt8, index: UInt32) -> [UInt8] {
        [family, prefixLength, 0, 0] + u32(index)
    }

    static func rtmsg(family: UInt8, dstLength: UInt8, table: UInt8, protocol: UInt8, scope: UInt8, type: UInt8) -> [UInt8] {
        [family, dstLength, 0, 0, table, `protocol`, scope, type] + u32(0)
    }

    /// Splits a datagram into its messages.
    static func messages(_ datagram: [UInt8]) -> [WireMessage] {
        var result: [WireMessage] = []
        var offset = 0
        func u32(at i: Int) -> UInt32 { datagram.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: UInt32.self) } }
        func u16(at i: Int) -> UInt16 { datagram.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: UInt16.self) } }
        while offset + 16 <= datagram.count {
            let length = Int(u32(at: offset))
            precondition(length >= 16 && offset + length <= datagram.count, "malformed datagram")
            result.append(
                WireMessage(
                    type: u16(at: offset + 4), flags: u16(at: offset + 6), sequence: u32(at: offset + 8),
                    port: u32(at: offset + 12), payload: Array(datagram[(offset + 16)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return result
    }
}

/// Replies as the kernel writes them (NETLINK_CAP_ACK and NETLINK_EXT_ACK on).
enum Kernel {
    static let port: UInt32 = 4242

    /// NLMSG_ERROR for `request`: an acknowledgement (errno 0) or a failure, with the kernel's
    /// extended-ack message when given. The request is echoed capped to its header.
    static func error(_ request: WireMessage, errno: Int32, message: String? = nil) -> [UInt8] {
        var flags = UInt16(NLM_F_CAPPED)
        var payload =
            Wire.i32(-errno) + Wire.u32(UInt32(16 + request.payload.count)) + Wire.u16(request.type)
            + Wire.u16(request.flags) + Wire.u32(request.sequence) + Wire.u32(request.port)
        if let message {
            flags |= UInt16(NLM_F_ACK_TLVS)
            payload += Wire.attribute(UInt16(NLMSGERR_ATTR_MSG.rawValue), string: message)
        }
        return Wire.message(type: UInt16(NLMSG_ERROR), flags: flags, sequence: request.sequence, port: port, payload)
    }

    /// One datagram per reply, as the kernel sends them: a failure for each message `fail`
    /// names (by its index in the datagram), an acknowledgement for each one asking for it.
    static func acknowledge(_ datagram: [UInt8], fail: [Int: (errno: Int32, message: String?)] = [:]) -> [[UInt8]] {
        var replies: [[UInt8]] = []
        for (i, message) in Wire.messages(datagram).enumerated() {
            if let failure = fail[i] {
                replies.append(error(message, errno: failure.errno, message: failure.message))
            } else if message.flags & UInt16(NLM_F_ACK) != 0 {
                replies.append(error(message, errno: 0))
            }
        }
        return replies
    }

    /// A link as RTM_NEWLINK reports it (dumps, gets, echoes).
    static func link(sequence: UInt32, flags: UInt16 = 0, index: Int32, name: String, peerIndex: Int32? = nil) -> [UInt8] {
        var payload =
            Wire.ifinfomsg(index: index, flags: 1) + Wire.attribute(UInt16(IFLA_IFNAME), string: name)
            + Wire.attribute(UInt16(IFLA_MTU), u32: 1500)
        if let peerIndex { payload += Wire.attribute(UInt16(IFLA_LINK), u32: UInt32(bitPattern: peerIndex)) }
        return Wire.message(type: UInt16(RTM_NEWLINK), flags: flags, sequence: sequence, port: port, payload)
    }

    static func done(sequence: UInt32, flags: UInt16 = UInt16(NLM_F_MULTI), errno: Int32 = 0) -> [UInt8] {
        Wire.message(type: UInt16(NLMSG_DONE), flags: flags, sequence: sequence, port: port, Wire.i32(-errno))
    }
}
