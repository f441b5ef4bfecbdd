#if canImport(Glibc)
import Glibc
#endif
import SystemIO

/// Node-wide sysctls of the caller's network namespace, through /proc/sys (which follows the
/// namespace of the process that opens it). Values are read first and written only when they
/// differ: a write costs more than a read and needs a writable /proc/sys.
public enum Sysctl {
    public static func read(_ key: String) -> String? {
        FileIO.readText(path(key), limit: 4096)?.trimmingWhitespace()
    }

    /// Makes `key` hold `value`, e.g. `ensure("net.ipv4.ip_forward", "1")`.
    public static func ensure(_ key: String, _ value: String) throws(NetlinkError) {
        if read(key) == value { return }
        let fd = open(path(key), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError("open sysctl \(key)") }
        defer { close(fd) }
        do { try FileIO.writeAll(fd, Array(value.utf8), path: path(key)) } catch {
            throw NetlinkError("write sysctl \(key)", errno: error.errno)
        }
    }

    /// `net.ipv6.conf.<interface>.<setting>`, spelled as a path so that dots in interface names
    /// (VLAN devices) stay part of the name.
    public static func ipv6Key(interface: String, _ setting: String) -> String {
        "net/ipv6/conf/\(interface)/\(setting)"
    }

    static func path(_ key: String) -> String {
        if key.contains("/") { return "/proc/sys/" + key }
        return "/proc/sys/" + String(key.map { $0 == "." ? "/" : $0 })
    }
}
