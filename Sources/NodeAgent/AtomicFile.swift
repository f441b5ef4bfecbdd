#if canImport(Glibc)
import Glibc
#endif
import SystemIO

/// Files the agent lays down (the subnet file, the CNI plugin and conflist): written whole under
/// a temporary name in the same directory, fsync'd, renamed into place and the directory
/// fsync'd, so a reader (the plugin, kubelet, the runtime) sees the old file or the new one,
/// never a part. rename(2) replaces a symlink at the target instead of writing through it.
public enum AtomicFile {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Writes `content` to `path` unless the file already holds exactly that (and has `mode`).
    /// Returns whether it wrote.
    @discardableResult
    public static func write(_ content: [UInt8], to path: String, mode: mode_t) throws(Error) -> Bool {
        if isCurrent(path, content: content, mode: mode) { return false }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        try makeDirectories(directory)
        let temporary = "\(directory)/.\(name).bridge-ipam-tmp.\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw failure("create \(temporary)") }
        var ok = fchmod(fd, mode) == 0
        if ok {
            do throws(SystemError) { try FileIO.writeAll(fd, content, path: temporary) } catch {
                errno = error.errno
                ok = false
            }
        }
        ok = ok && fsync(fd) == 0
        let savedErrno = errno
        close(fd)
        guard ok else {
            errno = savedErrno
            let e = failure("write \(temporary)")
            unlink(temporary)
            throw e
        }
        guard rename(temporary, path) == 0 else {
            let e = failure("rename \(temporary) to \(path)")
            unlink(temporary)
            throw e
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
        return true
    }

    /// The file at `path` is a regular file (not a symlink) with this content and mode.
    static func isCurrent(_ path: String, content: [UInt8], mode: mode_t) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, (info.st_mode & 0o7777) == mode,
            Int(info.st_size) == content.count
        else { return false }
        return readWholeFile(path) == content
    }

    static func makeDirectories(_ directory: String) throws(Error) {
        var prefix = ""
        for part in directory.split(separator: "/", omittingEmptySubsequences: false) {
            prefix += (prefix.isEmpty && part.isEmpty) ? "/" : (prefix.hasSuffix("/") || prefix.isEmpty ? "" : "/") + part
            if part.isEmpty { continue }
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw failure("create directory \(prefix)") }
        }
    }

    static func failure(_ what: String) -> Error {
        Error(message: "cannot \(what): \(String(cString: strerror(errno)))")
    }
}
