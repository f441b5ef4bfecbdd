#if canImport(Glibc)
import Glibc
#endif

/// Node-wide sysctls of the caller's network namespace, through /proc/sys (which follows the
/// namespace of the process that opens it). Values are read first and written only when they
/// differ: a write costs more than a read and needs a writable /proc/sys.
public enum Sysctl {
    public static func read(_ key: String) -> String? {
        let fd = open(path(key), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self).trimmingTrailingNewlines()
    }

    /// Makes `key` hold `value`, e.g. `ensure("net.ipv4.ip_forward", "1")`.
    public static func ensure(_ key: String, _ value: String) throws(NetlinkError) {
        if read(key) == value { return }
        let fd = open(path(key), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError("open sysctl \(key)") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw NetlinkError("write sysctl \(key)")
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

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = self
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}
