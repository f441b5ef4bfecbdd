#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was attempted, on which path (when there is one), the errno, and
/// the kernel's own explanation when it gives one (netlink's extended acknowledgements). The one
/// errno-carrying error of the project: files, namespaces and netlink all throw it.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    public let operation: String
    /// The file or namespace path involved; empty when the call names none (a socket request).
    public let path: String
    public let errno: Int32
    public let kernelMessage: String?

    public init(_ operation: String, path: String = "", errno: Int32 = Glibc.errno, kernelMessage: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    /// `operation path: strerror (kernel message)`.
    public var description: String {
        var text = path.isEmpty ? operation : operation + " " + path
        text += ": " + String(cString: strerror(errno))
        if let kernelMessage, !kernelMessage.isEmpty { text += " (\(kernelMessage))" }
        return text
    }

    public var isNotFound: Bool { errno == ENODEV || errno == ENOENT || errno == ESRCH }
    public var isExists: Bool { errno == EEXIST }
}
