#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

/// A route-netlink socket bound to the network namespace it was opened in.
///
/// Requests are built with libmnl into one buffer; several may go out in a single datagram
/// (`batch`), each acknowledged separately, which saves a system call pair per operation.
/// Errors carry the kernel's extended-ack message when it sends one.
public final class NetlinkSocket {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    private let sendBuffer: UnsafeMutableRawPointer
    private let sendCapacity: Int
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    private let familyHeaderSize: Int?

    /// Opens and binds a netlink socket (NETLINK_ROUTE unless told otherwise) in the calling
    /// thread's current namespace.
    public init(protocol bus: Int32 = NETLINK_ROUTE) throws(NetlinkError) {
        guard let socket = mnl_socket_open(bus) else { throw NetlinkError("open netlink socket") }
        // nfnetlink messages all start with a 4-byte nfgenmsg; rtnetlink's header depends on the type.
        familyHeaderSize = bus == NETLINK_NETFILTER ? 4 : nil
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = NetlinkError("bind netlink socket")
            mnl_socket_close(socket)
            throw error
        }
        var on: Int32 = 1
        // Best effort: extended acks give readable kernel messages; capped acks keep them short.
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
        self.sequence = UInt32(truncatingIfNeeded: time(nil))
        // Room for a pod's whole configuration in one datagram (the config caps routes at 256).
        self.sendCapacity = 64 * 1024
        self.sendBuffer = UnsafeMutableRawPointer.allocate(byteCount: sendCapacity, alignment: 8)
        self.receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 * 1024, alignment: 8)
    }

    deinit {
        mnl_socket_close(socket)
        sendBuffer.deallocate()
        receiveBuffer.deallocate()
    }

    /// Requests that go out together in one datagram.
    public struct Batch {
        fileprivate var operations: [(sequence: UInt32, name: String)] = []
        fileprivate var length = 0
        fileprivate let socket: NetlinkSocket

        /// Adds one request. `flags` are added to NLM_F_REQUEST and, unless `acknowledged` is
        /// false (nftables' batch delimiters), NLM_F_ACK.
        public mutating func add(_ operation: String, type: UInt16, flags: Int32 = 0, acknowledged: Bool = true,
                                 _ body: (MessageBuilder) -> Void) {
            socket.sequence &+= 1
            let header = mnl_nlmsg_put_header(socket.sendBuffer + length)!
            header.pointee.nlmsg_type = type
            header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | (acknowledged ? NLM_F_ACK : 0) | flags)
            header.pointee.nlmsg_seq = socket.sequence
            body(MessageBuilder(header: header))
            length += Int(header.pointee.nlmsg_len)
            precondition(length <= socket.sendCapacity, "netlink batch exceeds the send buffer")
            if acknowledged { operations.append((socket.sequence, operation)) }
            if firstSequence == nil { firstSequence = socket.sequence }
        }

        fileprivate var firstSequence: UInt32?
    }

    /// Sends every request `build` adds in one datagram and waits for their acknowledgements,
    /// up to the first failure, which it throws naming its operation. `tolerate` lists errnos
    /// taken as success. (Acknowledgements still in flight after a failure carry sequence
    /// numbers no later request waits for, so they are skipped.)
    public func batch(tolerate: Set<Int32> = [], _ build: (inout Batch) -> Void) throws(NetlinkError) {
        var batch = Batch(socket: self)
        build(&batch)
        guard !batch.operations.isEmpty else { return }
        try send(length: batch.length, operation: batch.operations[0].name)
        var pending = Dictionary(uniqueKeysWithValues: batch.operations.map { ($0.sequence, $0.name) })
        var firstError: NetlinkError?
        while !pending.isEmpty && firstError == nil {
            try receive(operation: batch.operations[0].name) { type, sequence, payload in
                guard type == UInt16(NLMSG_ERROR), let name = pending.removeValue(forKey: sequence) else { return true }
                let (code, message) = NetlinkSocket.parseError(payload)
                if code != 0 && !tolerate.contains(-code) && firstError == nil {
                    firstError = NetlinkError(name, errno: -code, kernelMessage: message)
                }
                return true
            }
        }
        if let firstError { throw firstError }
    }

    /// One acknowledged request.
    public func execute(_ operation: String, type: UInt16, flags: Int32 = 0, tolerate: Set<Int32> = [],
                        _ body: (MessageBuilder) -> Void) throws(NetlinkError) {
        try batch(tolerate: tolerate) { $0.add(operation, type: type, flags: flags, body) }
    }

    /// A request answered by one message (e.g. RTM_GETLINK by name).
    public func get(_ operation: String, type: UInt16, _ body: (MessageBuilder) -> Void) throws(NetlinkError) -> NetlinkMessage {
        let length = prepare(type: type, flags: NLM_F_REQUEST, body)
        try send(length: length, operation: operation)
        var reply: NetlinkMessage?
        var failure: NetlinkError?
        while reply == nil && failure == nil {
            try receive(operation: operation) { type, sequence, payload in
                guard sequence == self.sequence else { return true }
                if type == UInt16(NLMSG_ERROR) {
                    let (code, message) = NetlinkSocket.parseError(payload)
                    if code != 0 { failure = NetlinkError(operation, errno: -code, kernelMessage: message) }
                    return false
                }
                reply = self.message(type: type, payload: payload)
                return false
            }
        }
        if let failure { throw failure }
        return reply!
    }

    /// A dump request: every message until NLMSG_DONE.
    public func dump(_ operation: String, type: UInt16, _ body: (MessageBuilder) -> Void) throws(NetlinkError) -> [NetlinkMessage] {
        let length = prepare(type: type, flags: NLM_F_REQUEST | NLM_F_DUMP, body)
        try send(length: length, operation: operation)
        var messages: [NetlinkMessage] = []
        var done = false
        var failure: NetlinkError?
        while !done {
            try receive(operation: operation) { type, sequence, payload in
                guard sequence == self.sequence else { return true }
                switch Int32(type) {
                case NLMSG_DONE:
                    done = true
                    return false
                case NLMSG_ERROR:
                    let (code, message) = NetlinkSocket.parseError(payload)
                    if code != 0 { failure = NetlinkError(operation, errno: -code, kernelMessage: message) }
                    done = true
                    return false
                default:
                    messages.append(self.message(type: type, payload: payload))
                    return true
                }
            }
        }
        if let failure { throw failure }
        return messages
    }

    private func prepare(type: UInt16, flags: Int32, _ body: (MessageBuilder) -> Void) -> Int {
        sequence &+= 1
        let header = mnl_nlmsg_put_header(sendBuffer)!
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = UInt16(flags)
        header.pointee.nlmsg_seq = sequence
        body(MessageBuilder(header: header))
        return Int(header.pointee.nlmsg_len)
    }

    private func send(length: Int, operation: String) throws(NetlinkError) {
        while mnl_socket_sendto(socket, sendBuffer, length) < 0 {
            if errno == EINTR { continue }
            throw NetlinkError(operation)
        }
    }

    /// Receives one datagram and hands each message addressed to us to `handle` (type, sequence,
    /// payload after the netlink header); `handle` returns false to ignore the rest of the datagram.
    private func receive(operation: String, _ handle: (UInt16, UInt32, ArraySlice<UInt8>) -> Bool) throws(NetlinkError) {
        var received: Int
        repeat {
            received = mnl_socket_recvfrom(socket, receiveBuffer.baseAddress, receiveBuffer.count)
        } while received < 0 && errno == EINTR
        guard received >= 0 else { throw NetlinkError(operation) }
        let bytes = Array(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<received]))
        var offset = 0
        while offset + 16 <= received {
            let length = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) })
            guard length >= 16, offset + length <= received else { break }
            let type = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self) }
            let sequence = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self) }
            let port = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) }
            if port == portID || port == 0 {
                if !handle(type, sequence, bytes[(offset + 16)..<(offset + length)]) { return }
            }
            offset += (length + 3) & ~3
        }
    }

    /// Reads an NLMSG_ERROR payload: the (negative) errno and the extended-ack message if any.
    private static func parseError(_ payload: ArraySlice<UInt8>) -> (Int32, String?) {
        guard payload.count >= 20 else { return (-EIO, nil) }
        let base = payload.startIndex
        let code = payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        guard code != 0 else { return (0, nil) }
        // With NETLINK_CAP_ACK the original request is cut to its header, and TLVs follow it.
        let originalLength = Int(payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) })
        let capped = payload.count < 4 + originalLength
        let tlvStart = base + 4 + (capped ? 16 : (originalLength + 3) & ~3)
        guard tlvStart < payload.endIndex else { return (code, nil) }
        let attributes = Attributes(payload[tlvStart...])
        return (code, attributes.string(UInt16(NLMSGERR_ATTR_MSG.rawValue)))
    }

    private func message(type: UInt16, payload: ArraySlice<UInt8>) -> NetlinkMessage {
        let headerSize: Int
        if let familyHeaderSize {
            headerSize = familyHeaderSize
        } else {
            headerSize = NetlinkSocket.routeHeaderSize(type)
        }
        let split = min(payload.startIndex + (headerSize + 3) & ~3, payload.endIndex)
        return NetlinkMessage(type: type, familyHeader: Array(payload[payload.startIndex..<min(payload.startIndex + headerSize, payload.endIndex)]),
                              attributes: Attributes(payload[split...]))
    }

    private static func routeHeaderSize(_ type: UInt16) -> Int {
        let headerSize: Int
        switch Int32(type) {
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK): headerSize = MemoryLayout<ifinfomsg>.size
        case Int32(RTM_NEWADDR), Int32(RTM_DELADDR): headerSize = MemoryLayout<ifaddrmsg>.size
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE): headerSize = MemoryLayout<rtmsg>.size
        default: headerSize = 0
        }
        return headerSize
    }
}
