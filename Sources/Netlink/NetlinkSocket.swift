#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim

/// Builds netlink requests, sends them through a transport, and matches the kernel's answers
/// to them by sequence number.
///
/// Requests go out in batches: as many messages per datagram as fit, each datagram's replies
/// read before the next one is sent. Only the last message of a datagram asks for an
/// acknowledgement; the kernel reports a failing message without being asked, under that
/// message's sequence number, before the final acknowledgement. Errors carry the kernel's
/// extended-ack message when it sends one.
public final class NetlinkSocket {
    /// The most we put in one datagram, and so the largest message we can send.
    public static let maximumMessageSize = 64 * 1024
    /// At most this many messages share a datagram. Should every one of them fail, their error
    /// reports still fit the default 208 KiB receive buffer (each costs under 1 KiB there), so
    /// none is lost to an overrun.
    public static let maximumMessagesPerDatagram = 128
    /// How often a dump interrupted by concurrent changes (NLM_F_DUMP_INTR) is started again.
    public static let dumpAttempts = 4

    private let transport: any NetlinkTransport
    private let familyHeaderSize: Int?
    private var sequence: UInt32
    /// Outgoing messages, built in place; grows so that every message starts with
    /// `maximumMessageSize` bytes of room ahead of it.
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private let overflowed: UnsafeMutablePointer<Bool>
    private let receiveBuffer: UnsafeMutableRawBufferPointer

    /// Opens and binds a netlink socket (NETLINK_ROUTE unless told otherwise) in the calling
    /// thread's current namespace.
    public convenience init(protocol bus: Int32 = NETLINK_ROUTE, strictDumps: Bool = false) throws(NetlinkError) {
        try self.init(transport: MNLTransport(protocol: bus, strictDumps: strictDumps), protocol: bus)
    }

    /// The same with a send buffer of `sendBuffer` bytes, for atomic batches larger than the
    /// default (about 208 KiB): the kernel takes a datagram only when it fits the buffer.
    public convenience init(protocol bus: Int32, sendBuffer: Int) throws(NetlinkError) {
        let transport = try MNLTransport(protocol: bus)
        transport.setSendBuffer(sendBuffer)
        self.init(transport: transport, protocol: bus)
    }

    /// The largest datagram an atomic batch may fill (an nftables transaction must be one
    /// datagram); raise it only together with the socket's send buffer.
    public var maximumTransactionSize = NetlinkSocket.maximumMessageSize

    /// Speaks `bus`'s messages over `transport`. `firstSequence` fixes the sequence numbers
    /// (tests); by default they start from the clock, as libmnl's examples do.
    public init(transport: any NetlinkTransport, protocol bus: Int32 = NETLINK_ROUTE, firstSequence: UInt32? = nil) {
        self.transport = transport
        // nfnetlink messages all start with a 4-byte nfgenmsg; rtnetlink's header depends on the type.
        familyHeaderSize = bus == NETLINK_NETFILTER ? 4 : nil
        sequence = (firstSequence ?? UInt32(truncatingIfNeeded: time(nil))) &- 1
        capacity = NetlinkSocket.maximumMessageSize + 16 * 1024
        storage = malloc(capacity)!
        overflowed = .allocate(capacity: 1)
        overflowed.initialize(to: false)
        receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 * 1024, alignment: 8)
    }

    deinit {
        free(storage)
        overflowed.deallocate()
        receiveBuffer.deallocate()
    }

    // MARK: - Building

    /// Makes sure a message starting at `offset` has `maximumMessageSize` bytes of room.
    private func reserveRoom(at offset: Int) {
        guard capacity - offset < NetlinkSocket.maximumMessageSize else { return }
        capacity = max(capacity * 2, offset + NetlinkSocket.maximumMessageSize)
        storage = realloc(storage, capacity)!
    }

    /// Writes one message at `offset`; returns its sequence number and aligned length, or nil
    /// when it did not fit in `maximumMessageSize` (nothing past that was written).
    private func buildMessage(at offset: Int, type: UInt16, flags: Int32, _ body: (MessageBuilder) -> Void) -> (
        sequence: UInt32, length: Int
    )? {
        reserveRoom(at: offset)
        sequence &+= 1
        let header = mnl_nlmsg_put_header(storage + offset)!
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | flags)
        header.pointee.nlmsg_seq = sequence
        overflowed.pointee = false
        body(MessageBuilder(header: header, room: NetlinkSocket.maximumMessageSize, overflowed: overflowed))
        guard !overflowed.pointee else { return nil }
        return (sequence, cshim_nla_align(Int(header.pointee.nlmsg_len)))
    }

    private func tooLarge(_ operation: String) -> NetlinkError {
        NetlinkError(
            operation, errno: EMSGSIZE,
            kernelMessage: "the request exceeds the \(NetlinkSocket.maximumMessageSize / 1024) KiB netlink message limit")
    }

    // MARK: - Batches

    /// Requests sent together: in as few datagrams as they fit, or in exactly one (`atomic`).
    public struct Batch {
        fileprivate struct Message {
            var sequence: UInt32
            var name: String
            var offset: Int
            var acknowledgeable: Bool
        }

        fileprivate let socket: NetlinkSocket
        fileprivate let splittable: Bool
        fileprivate var messages: [Message] = []
        /// Index in `messages` of each datagram's first message.
        fileprivate var datagramStarts: [Int] = [0]
        fileprivate var length = 0
        fileprivate var failure: NetlinkError?

        /// How many requests were added so far (the next one's index in `batchEach`'s answer).
        public var count: Int { messages.count }

        /// Adds one request; `flags` are added to NLM_F_REQUEST. A message that may not carry
        /// NLM_F_ACK (nftables' batch delimiters) says `acknowledged: false`; a failure the
        /// kernel reports for it ends its datagram.
        public mutating func add(
            _ operation: String, type: UInt16, flags: Int32 = 0, acknowledged: Bool = true,
            _ body: (MessageBuilder) -> Void
        ) {
            guard failure == nil else { return }
            guard let built = socket.buildMessage(at: length, type: type, flags: flags, body) else {
                failure = socket.tooLarge(operation)
                return
            }
            let first = datagramStarts[datagramStarts.count - 1]
            if first < messages.count {
                let datagramLength = length - messages[first].offset
                let limit =
                    splittable ? NetlinkSocket.maximumMessageSize : max(NetlinkSocket.maximumMessageSize, socket.maximumTransactionSize)
                let full =
                    datagramLength + built.length > limit
                    || (splittable && messages.count - first >= NetlinkSocket.maximumMessagesPerDatagram)
                if full { datagramStarts.append(messages.count) }
            }
            messages.append(Message(sequence: built.sequence, name: operation, offset: length, acknowledgeable: acknowledged))
            length += built.length
        }

        fileprivate func datagram(_ index: Int) -> (messages: Range<Int>, bytes: Range<Int>) {
            let first = datagramStarts[index]
            let last = index + 1 < datagramStarts.count ? datagramStarts[index + 1] : messages.count
            let end = last < messages.count ? messages[last].offset : length
            return (first..<last, messages[first].offset..<end)
        }
    }

    /// Sends every request `build` adds and waits for the kernel to process them, datagram by
    /// datagram, stopping after the first datagram with a failure, which it throws naming its
    /// operation. `tolerate` lists errnos taken as success. `atomic` keeps the requests in one
    /// datagram (an nftables transaction cannot span two) and fails when they do not fit.
    public func batch(tolerate: Set<Int32> = [], atomic: Bool = false, _ build: (inout Batch) -> Void) throws(NetlinkError) {
        _ = try batchWithReplies(tolerate: tolerate, atomic: atomic, build)
    }

    /// `batch`, returning the other replies the requests drew (NLM_F_ECHO), in order.
    public func batchWithReplies(
        tolerate: Set<Int32> = [], atomic: Bool = false,
        _ build: (inout Batch) -> Void
    ) throws(NetlinkError) -> [NetlinkMessage] {
        var replies: [NetlinkMessage] = []
        let failures = try run(tolerate: tolerate, atomic: atomic, stopAtFailure: true, replies: &replies, build)
        if let first = failures.min(by: { $0.key < $1.key }) { throw first.value }
        return replies
    }

    /// Sends every request `build` adds, every datagram, even after requests the kernel
    /// refused: the kernel handles each message on its own, so one refused route, neighbour or
    /// FDB entry holds back nothing else. Returns each refused request's error under its index
    /// in the batch (the order of `add`). Throws only when the socket itself fails.
    public func batchEach(tolerate: Set<Int32> = [], _ build: (inout Batch) -> Void) throws(NetlinkError) -> [Int: NetlinkError] {
        var replies: [NetlinkMessage] = []
        return try run(tolerate: tolerate, atomic: false, stopAtFailure: false, replies: &replies, build)
    }

    private func run(
        tolerate: Set<Int32>, atomic: Bool, stopAtFailure: Bool, replies: inout [NetlinkMessage],
        _ build: (inout Batch) -> Void
    ) throws(NetlinkError) -> [Int: NetlinkError] {
        var batch = Batch(socket: self, splittable: !atomic)
        build(&batch)
        if let failure = batch.failure { throw failure }
        guard batch.messages.contains(where: \.acknowledgeable) else { return [:] }
        if atomic && batch.datagramStarts.count > 1 {
            throw NetlinkError(
                batch.messages[0].name, errno: EMSGSIZE,
                kernelMessage:
                    "the transaction exceeds one \(max(NetlinkSocket.maximumMessageSize, maximumTransactionSize) / 1024) KiB datagram")
        }
        var failures: [Int: NetlinkError] = [:]
        for index in batch.datagramStarts.indices {
            let (range, bytes) = batch.datagram(index)
            let messages = batch.messages[range]
            guard let last = messages.lastIndex(where: \.acknowledgeable) else {
                try send(bytes, operation: messages[range.lowerBound].name)
                continue
            }
            let header = (storage + batch.messages[last].offset).assumingMemoryBound(to: nlmsghdr.self)
            header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            try send(bytes, operation: messages[range.lowerBound].name)
            try awaitAcknowledgement(
                of: messages, last: batch.messages[last].sequence, tolerate: tolerate, replies: &replies, failures: &failures)
            if stopAtFailure && !failures.isEmpty { break }
        }
        return failures
    }

    /// Reads replies until the kernel acknowledges `last` (or reports a failure of a message
    /// that cannot be acknowledged), recording every failure under its message's index.
    private func awaitAcknowledgement(
        of messages: ArraySlice<Batch.Message>, last: UInt32, tolerate: Set<Int32>,
        replies: inout [NetlinkMessage], failures: inout [Int: NetlinkError]
    ) throws(NetlinkError) {
        // A datagram's messages carry consecutive sequence numbers.
        let first = messages[messages.startIndex]
        var done = false
        while !done {
            try receive(operation: first.name) { reply in
                let position = Int(reply.sequence &- first.sequence)
                guard position < messages.count else { return true }
                let request = messages[messages.startIndex + position]
                switch Int32(reply.type) {
                case NLMSG_ERROR:
                    let (code, text) = NetlinkSocket.parseError(reply)
                    if code != 0 && !tolerate.contains(-code) && failures[messages.startIndex + position] == nil {
                        failures[messages.startIndex + position] = NetlinkError(request.name, errno: -code, kernelMessage: text)
                    }
                    if reply.sequence == last || (code != 0 && !request.acknowledgeable) {
                        done = true
                        return false
                    }
                case NLMSG_DONE, NLMSG_NOOP, NLMSG_OVERRUN:
                    break
                default:
                    replies.append(self.message(reply))
                }
                return true
            }
        }
    }

    /// One acknowledged request.
    public func execute(
        _ operation: String, type: UInt16, flags: Int32 = 0, tolerate: Set<Int32> = [],
        _ body: (MessageBuilder) -> Void
    ) throws(NetlinkError) {
        try batch(tolerate: tolerate) { $0.add(operation, type: type, flags: flags, body) }
    }

    // MARK: - Queries

    /// A request answered by one message (e.g. RTM_GETLINK by name).
    public func get(_ operation: String, type: UInt16, _ body: (MessageBuilder) -> Void) throws(NetlinkError) -> NetlinkMessage {
        guard let request = buildMessage(at: 0, type: type, flags: 0, body) else { throw tooLarge(operation) }
        try send(0..<request.length, operation: operation)
        var reply: NetlinkMessage?
        var failure: NetlinkError?
        while reply == nil && failure == nil {
            try receive(operation: operation) { received in
                guard received.sequence == request.sequence else { return true }
                if received.type == UInt16(NLMSG_ERROR) {
                    let (code, text) = NetlinkSocket.parseError(received)
                    // An acknowledgement without a reply means the kernel had nothing to say.
                    failure = NetlinkError(operation, errno: code != 0 ? -code : ENODATA, kernelMessage: text)
                } else {
                    reply = self.message(received)
                }
                return false
            }
        }
        if let failure { throw failure }
        return reply!
    }

    /// A dump request: every message until NLMSG_DONE, however many datagrams that takes. A dump
    /// the kernel marks interrupted (the table changed while it was read, NLM_F_DUMP_INTR) is
    /// started again, up to `dumpAttempts` times in all, then given up with EAGAIN.
    public func dump(_ operation: String, type: UInt16, _ body: (MessageBuilder) -> Void) throws(NetlinkError) -> [NetlinkMessage] {
        for _ in 0..<NetlinkSocket.dumpAttempts {
            let (messages, interrupted) = try dumpOnce(operation, type: type, body)
            if !interrupted { return messages }
        }
        throw NetlinkError(
            operation, errno: EAGAIN,
            kernelMessage: "the dump was interrupted by concurrent changes \(NetlinkSocket.dumpAttempts) times")
    }

    private func dumpOnce(_ operation: String, type: UInt16, _ body: (MessageBuilder) -> Void) throws(NetlinkError) -> (
        [NetlinkMessage], Bool
    ) {
        guard let request = buildMessage(at: 0, type: type, flags: NLM_F_DUMP, body) else { throw tooLarge(operation) }
        try send(0..<request.length, operation: operation)
        var messages: [NetlinkMessage] = []
        var interrupted = false
        var done = false
        var failure: NetlinkError?
        while !done {
            try receive(operation: operation) { reply in
                guard reply.sequence == request.sequence else { return true }
                if reply.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(reply.type) {
                case NLMSG_DONE, NLMSG_ERROR:
                    // NLMSG_DONE carries the dump's status (0 or a negative errno), as an error does.
                    let (code, text) = NetlinkSocket.parseError(reply)
                    if code != 0 { failure = NetlinkError(operation, errno: -code, kernelMessage: text) }
                    done = true
                    return false
                case NLMSG_NOOP, NLMSG_OVERRUN:
                    return true
                default:
                    messages.append(self.message(reply))
                    return true
                }
            }
        }
        if let failure { throw failure }
        return (messages, interrupted)
    }

    // MARK: - Transport

    private func send(_ bytes: Range<Int>, operation: String) throws(NetlinkError) {
        do {
            try transport.send(UnsafeRawBufferPointer(start: storage + bytes.lowerBound, count: bytes.count))
        } catch {
            throw NetlinkError(operation, errno: error.errno, kernelMessage: error.kernelMessage)
        }
    }

    /// One received netlink message: its header fields and the payload after the header.
    struct Received {
        var type: UInt16
        var flags: UInt16
        var sequence: UInt32
        var payload: ArraySlice<UInt8>
    }

    /// Receives one datagram and hands each message addressed to us to `handle`, which returns
    /// false to ignore the rest of the datagram. Header fields are read through `nlmsghdr`, in
    /// the host's byte order, as the kernel writes them.
    private func receive(operation: String, _ handle: (Received) -> Bool) throws(NetlinkError) {
        let received: Int
        do {
            received = try transport.receive(into: receiveBuffer)
        } catch {
            // ENOBUFS: the receive buffer overran and the kernel dropped replies we wait for.
            throw NetlinkError(operation, errno: error.errno, kernelMessage: error.kernelMessage)
        }
        let bytes = Array(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<received]))
        for reply in NetlinkSocket.split(bytes) where reply.port == transport.portID || reply.port == 0 {
            if !handle(reply.message) { return }
        }
    }

    /// The messages of one datagram; a truncated or malformed tail is dropped.
    static func split(_ bytes: [UInt8]) -> [(port: UInt32, message: Received)] {
        var messages: [(port: UInt32, message: Received)] = []
        let headerSize = MemoryLayout<nlmsghdr>.size
        var offset = 0
        while offset + headerSize <= bytes.count {
            let header = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self) }
            let length = Int(header.nlmsg_len)
            guard length >= headerSize, offset + length <= bytes.count else { break }
            messages.append(
                (
                    header.nlmsg_pid,
                    Received(
                        type: header.nlmsg_type, flags: header.nlmsg_flags, sequence: header.nlmsg_seq,
                        payload: bytes[(offset + headerSize)..<(offset + length)])
                ))
            offset += cshim_nla_align(length)
        }
        return messages
    }

    // MARK: - Parsing

    /// Reads an NLMSG_ERROR (or NLMSG_DONE) payload: the errno, negative or 0, and the
    /// extended-ack message if any. The TLVs follow the echoed request, or only its header when
    /// the kernel capped it (NLM_F_CAPPED); NLMSG_DONE has no echoed request.
    static func parseError(_ reply: Received) -> (Int32, String?) {
        let payload = reply.payload
        let isDone = reply.type == UInt16(NLMSG_DONE)
        guard payload.count >= (isDone ? 4 : MemoryLayout<nlmsgerr>.size) else { return (isDone ? 0 : -EIO, nil) }
        let code = payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        guard code != 0, reply.flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return (code, nil) }
        var tlvOffset = 4
        if !isDone {
            let request = payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: nlmsghdr.self) }
            let echoed = reply.flags & UInt16(NLM_F_CAPPED) != 0 ? MemoryLayout<nlmsghdr>.size : Int(request.nlmsg_len)
            tlvOffset += cshim_nla_align(echoed)
        }
        guard payload.startIndex + tlvOffset < payload.endIndex else { return (code, nil) }
        let attributes = Attributes(payload[(payload.startIndex + tlvOffset)...])
        return (code, attributes.string(UInt16(NLMSGERR_ATTR_MSG.rawValue)))
    }

    private func message(_ reply: Received) -> NetlinkMessage {
        let headerSize = familyHeaderSize ?? NetlinkSocket.routeHeaderSize(reply.type)
        let payload = reply.payload
        let headerEnd = min(payload.startIndex + headerSize, payload.endIndex)
        let split = min(payload.startIndex + cshim_nla_align(headerSize), payload.endIndex)
        return NetlinkMessage(
            type: reply.type, familyHeader: Array(payload[payload.startIndex..<headerEnd]),
            attributes: Attributes(payload[split...]))
    }

    private static func routeHeaderSize(_ type: UInt16) -> Int {
        switch Int32(type) {
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK): return MemoryLayout<ifinfomsg>.size
        case Int32(RTM_NEWADDR), Int32(RTM_DELADDR): return MemoryLayout<ifaddrmsg>.size
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE): return MemoryLayout<rtmsg>.size
        case Int32(RTM_NEWNEIGH), Int32(RTM_DELNEIGH): return MemoryLayout<ndmsg>.size
        default: return 0
        }
    }
}
