#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing whole files and descriptors, the one way the project does it: every
/// descriptor close-on-exec, EINTR retried, a size cap on everything read, and no file that
/// could block (a FIFO or a device named by a config) ever read.
public enum FileIO {
    /// The bytes of the regular file at `path` (relative to `directory`, a descriptor, or the
    /// working directory), at most `limit` of them: a longer file is an error (EFBIG), never
    /// silently cut. With `followSymlinks: false` a symlink is refused (ELOOP). A FIFO, device,
    /// socket or directory is refused (EINVAL) without blocking, unless `regularOnly` is false
    /// (a path given on a command line, such as `<(kubectl get nodes -o json)`, may be a pipe).
    public static func read(
        _ path: String, in directory: Int32 = AT_FDCWD, limit: Int, followSymlinks: Bool = true,
        regularOnly: Bool = true
    ) throws(SystemError) -> [UInt8] {
        let flags = O_RDONLY | O_CLOEXEC | (regularOnly ? O_NONBLOCK : 0) | (followSymlinks ? 0 : O_NOFOLLOW)
        let fd = openat(directory, path, flags)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        if regularOnly {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw SystemError("stat", path: path) }
            guard info.st_mode & S_IFMT == S_IFREG else { throw SystemError(FileIO.notARegularFile, path: path, errno: EINVAL) }
        }
        return try readAll(fd, limit: limit, path: path)
    }

    /// The operation of the error `read` throws for a FIFO, device, socket or directory.
    public static let notARegularFile = "open (not a regular file, refused)"

    /// The text of a small regular file (see `read`), or nil when it cannot be read whole.
    public static func readText(_ path: String, in directory: Int32 = AT_FDCWD, limit: Int, followSymlinks: Bool = true) -> String? {
        guard let bytes = try? read(path, in: directory, limit: limit, followSymlinks: followSymlinks) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Everything `fd` yields until end of file, at most `limit` bytes (more is EFBIG). `path`
    /// names the descriptor in errors.
    public static func readAll(_ fd: Int32, limit: Int = .max, path: String) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        // Uninitialised, and small for a small cap: lease files, sysctls and stdin are read on
        // every pod event, and zeroing a 16 KiB buffer cost 16K instructions (callgrind).
        let size = limit < 16 * 1024 ? limit + 1 : 16 * 1024
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let n = Glibc.read(fd, chunk.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if n == 0 { return bytes }
            guard n <= limit - bytes.count else {
                throw SystemError("read", path: path, errno: EFBIG, kernelMessage: "larger than \(limit) bytes")
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<n]))
        }
    }

    /// Writes all of `bytes` to `fd`, however many calls that takes. `path` names it in errors.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: path)
            }
            written += n
        }
    }
}

extension String {
    /// Without leading and trailing ASCII whitespace (space, tab, CR, LF, VT, FF): how the
    /// project reads values out of files. (Not generic: a generic one is called unspecialised
    /// across modules, and its witness tables cost thousands of instructions on first use.)
    public func trimmingWhitespace() -> String {
        let bytes = utf8
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
