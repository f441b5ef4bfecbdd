#if canImport(Glibc)
import Glibc
#endif

/// A failed netlink or namespace operation, carrying the operation, the errno and, when the
/// kernel gave one through extended acks, its own explanation.
public struct NetlinkError: Error, Equatable, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public let kernelMessage: String?

    public init(_ operation: String, errno: Int32 = Glibc.errno, kernelMessage: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        var text = "\(operation): \(String(cString: strerror(errno)))"
        if let kernelMessage, !kernelMessage.isEmpty { text += " (\(kernelMessage))" }
        return text
    }

    public var isNotFound: Bool { errno == ENODEV || errno == ENOENT || errno == ESRCH }
    public var isExists: Bool { errno == EEXIST }
}
