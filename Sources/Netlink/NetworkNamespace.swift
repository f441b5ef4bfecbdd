#if canImport(Glibc)
import Glibc
#endif
import CNetlinkShim
import SystemIO

/// An open network namespace (a descriptor on its nsfs file).
///
/// Namespaces belong to threads. The plugin stays on its main thread and only ever enters a
/// namespace for as long as it takes to open a netlink socket there: the socket keeps working
/// on that namespace after the thread has returned home.
public final class NetworkNamespace {
    public let fd: Int32
    public let path: String

    /// Opens the namespace at `path` (e.g. /run/netns/pod1 or /proc/PID/ns/net).
    /// Fails with ENOENT when nothing is there, and EINVAL when it is not a network namespace
    /// (e.g. a leftover mount point): DEL takes both as "the namespace is gone".
    public init(path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open network namespace", path: path) }
        var info = statfs()
        // nsfs has magic 0x6e736673; older kernels exposed namespaces on procfs (0x9fa0).
        if fstatfs(fd, &info) == 0, info.f_type != 0x6e73_6673, info.f_type != 0x9fa0 {
            close(fd)
            throw NetworkNamespace.notANamespace(path)
        }
        // A namespace of another type (e.g. /proc/self/ns/uts) passes the file system check;
        // NS_GET_NSTYPE (_IO(0xb7, 0x3), Linux 4.11) names its type. Were the ioctl missing, the
        // setns(CLONE_NEWNET) that follows would still refuse it.
        let type = ioctl(fd, NetworkNamespace.nsGetNSType)
        if type >= 0 && type != 0x4000_0000 {  // CLONE_NEWNET
            close(fd)
            throw NetworkNamespace.notANamespace(path)
        }
        self.fd = fd
        self.path = path
    }

    static func notANamespace(_ path: String) -> SystemError {
        SystemError("open network namespace", path: path, errno: EINVAL, kernelMessage: "not a network namespace")
    }

    static let nsGetNSType: UInt = 0xb7 << 8 | 0x3

    /// The namespace the calling thread is in now.
    public static func current() throws(SystemError) -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/thread-self/ns/net")
    }

    deinit { close(fd) }

    /// Identifies the namespace: two descriptors on the same namespace have equal identities.
    public var identity: (device: UInt64, inode: UInt64) {
        var s = stat()
        _ = fstat(fd, &s)
        return (UInt64(s.st_dev), UInt64(s.st_ino))
    }

    public func isSame(as other: NetworkNamespace) -> Bool { identity == other.identity }

    /// Runs `body` inside this namespace and returns the thread to `home`: for what only works
    /// from inside, such as per-interface IPv6 sysctls (/proc/sys/net follows the opener's namespace).
    @available(*, noasync, message: "network namespaces are per thread; enter them only from synchronous code")
    public func perform<T>(returningTo home: NetworkNamespace, _ body: () -> T) throws(NetlinkError) -> T {
        guard cshim_setns_net(fd) == 0 else { throw NetlinkError("enter network namespace \(path)") }
        let result = body()
        guard cshim_setns_net(home.fd) == 0 else {
            fatalError("cannot return to network namespace \(home.path): \(String(cString: strerror(errno)))")
        }
        return result
    }

    /// Enters this namespace, opens a netlink socket there, and returns the thread to `home`.
    /// Failing to return home is fatal: the rest of the process would act on the wrong namespace.
    @available(*, noasync, message: "network namespaces are per thread; enter them only from synchronous code")
    public func openSocket(returningTo home: NetworkNamespace) throws(NetlinkError) -> NetlinkSocket {
        guard cshim_setns_net(fd) == 0 else { throw NetlinkError("enter network namespace \(path)") }
        let result = Result { () throws(NetlinkError) -> NetlinkSocket in try NetlinkSocket() }
        guard cshim_setns_net(home.fd) == 0 else {
            fatalError("cannot return to network namespace \(home.path): \(String(cString: strerror(errno)))")
        }
        return try result.get()
    }
}
