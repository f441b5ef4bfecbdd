#if canImport(Glibc)
import Glibc
#endif

/// A failed system call on the lease store, with the path it touched and the errno it returned.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, path: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}
