#if canImport(Glibc)
import Glibc
#endif

/// A log file that many plugin processes append to at once, kept near `maxSize`.
///
/// Each record goes out in one write(2) on an O_APPEND descriptor, so concurrent records never
/// interleave or overwrite each other. The file is opened with O_NOFOLLOW (never written through
/// a symlink), O_CLOEXEC, and O_NONBLOCK (a FIFO planted at the path cannot block us); anything
/// but a regular file is left alone. Every failure is swallowed: the log must never fail a verb.
struct LogFile {
    let path: String
    let maxSize: Int

    func append(_ record: [UInt8]) {
        guard var (fd, info) = open() else { return }
        if info.st_size > 0 && Int(info.st_size) + record.count > maxSize {
            if rotate(fd, info) {
                close(fd)
                guard let reopened = open() else { return }
                (fd, info) = reopened
            } else if Int(info.st_size) + record.count > 2 * maxSize {
                // It cannot be rotated (e.g. its directory is read-only): stop it growing.
                close(fd)
                return
            }
        }
        record.withUnsafeBytes { buffer in
            var n: Int
            repeat { n = write(fd, buffer.baseAddress, buffer.count) } while n < 0 && errno == EINTR
        }
        close(fd)
    }

    /// Opens (creating) the file and its directory's last level if missing.
    private func open() -> (Int32, stat)? {
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK
        var fd = Glibc.open(path, flags, 0o640)
        if fd < 0 && errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            mkdir(String(path[..<slash]), 0o755)
            fd = Glibc.open(path, flags, 0o640)
        }
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return nil
        }
        return (fd, info)
    }

    /// Renames the full file to `<path>.1` (replacing the older one); returns whether `path`
    /// must be opened again. Two writers may find the file full at once: the rename happens
    /// under an exclusive flock of the file and only while `path` still names the file this
    /// writer opened, so a file is renamed once and a newer file is never moved over the
    /// older one. A writer that lost the race appends its record to the renamed file.
    private func rotate(_ fd: Int32, _ opened: stat) -> Bool {
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        defer { flock(fd, LOCK_UN) }
        var current = stat()
        guard lstat(path, &current) == 0, current.st_dev == opened.st_dev, current.st_ino == opened.st_ino else {
            return true  // already rotated by another writer
        }
        return rename(path, path + ".1") == 0
    }
}
