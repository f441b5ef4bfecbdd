#if canImport(Glibc)
import Glibc
#endif
import Addresses
import SystemIO

/// Who holds an address: the lease file's content.
public struct LeaseOwner: Hashable, Sendable {
    public let containerID: String
    public let ifname: String
    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }
}

/// Leases on disk, in the reference host-local plugin's layout so that a node can switch between
/// it and us without handing an address out twice:
///
///     <dataDir>/<network>/<ip>                   "CONTAINERID\r\nIFNAME"
///     <dataDir>/<network>/last_reserved_ip.<N>   the last address handed out from range set N
///     <dataDir>/<network>/lock                   flock'd by every allocator of the network
///
/// The existence of `<ip>` is the allocation; its content only says who holds it. A lease file is
/// written whole under a temporary name and then hard-linked into place, so it never appears
/// empty or torn, and a torn or empty file left by anything else still counts as taken.
public final class LeaseStore {
    public let directory: String
    private let lockFD: Int32

    static let lockName = "lock"
    static let lastReservedPrefix = "last_reserved_ip."

    /// Opens (creating if needed) the network's directory and takes its lock, exclusively.
    /// The lock is held until the store is deinitialised (or the process exits).
    public init(dataDir: String, network: String) throws(SystemError) {
        directory = dataDir.hasSuffix("/") ? dataDir + network : dataDir + "/" + network
        try LeaseStore.makeDirectories(directory)
        let lockPath = directory + "/" + LeaseStore.lockName
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: lockPath) }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let error = SystemError("flock", path: lockPath)
            close(fd)
            throw error
        }
        lockFD = fd
    }

    deinit { close(lockFD) }

    private static func makeDirectories(_ path: String) throws(SystemError) {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw SystemError("mkdir", path: path) }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SystemError("mkdir", path: path) }
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Records `ip` as held by `owner`. Returns false, changing nothing, when it is already taken.
    public func reserve(_ ip: IPAddress, for owner: LeaseOwner) throws(SystemError) -> Bool {
        let target = path(ip.description)
        let temporary = path(".\(ip).\(getpid()).tmp")
        try writeFile(temporary, contents: "\(owner.containerID)\r\n\(owner.ifname)")
        defer { unlink(temporary) }
        if link(temporary, target) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("link", path: target)
    }

    /// Whether a lease file exists for `ip`, whatever its content.
    public func isTaken(_ ip: IPAddress) -> Bool { access(path(ip.description), F_OK) == 0 }

    /// The holder of `ip`, or nil when it is free or its file has no readable owner.
    public func owner(of ip: IPAddress) -> LeaseOwner? {
        guard let text = readFile(path(ip.description)) else { return nil }
        return LeaseStore.parseOwner(text)
    }

    static func parseOwner(_ text: String) -> LeaseOwner? {
        // host-local writes "ID\r\nIFNAME"; files from before ifnames were recorded hold only "ID".
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        guard let id = lines.first.map({ String($0).trimmingSpaces() }), !id.isEmpty else { return nil }
        let ifname = lines.count > 1 ? String(lines[1]).trimmingSpaces() : ""
        return LeaseOwner(containerID: id, ifname: ifname)
    }

    /// Removes the lease of `ip`; succeeds when there is none.
    public func release(_ ip: IPAddress) throws(SystemError) {
        let target = path(ip.description)
        guard unlink(target) == 0 || errno == ENOENT else { throw SystemError("unlink", path: target) }
    }

    /// Every lease of the network: its address and, when the file says, its holder.
    public func leases() throws(SystemError) -> [(ip: IPAddress, owner: LeaseOwner?)] {
        guard let dir = opendir(directory) else { throw SystemError("opendir", path: directory) }
        defer { closedir(dir) }
        var result: [(ip: IPAddress, owner: LeaseOwner?)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let ip = IPAddress(name) else { continue }
            result.append((ip, readFile(path(name)).flatMap(LeaseStore.parseOwner)))
        }
        return result
    }

    /// Releases every address held by `owner`; returns what it released and how many leases
    /// of the network remain. An owner recorded without an ifname (older host-local files)
    /// matches on the container ID alone.
    @discardableResult
    public func release(owner: LeaseOwner) throws(SystemError) -> (released: [IPAddress], remaining: Int) {
        var released: [IPAddress] = []
        let all = try leases()
        for lease in all {
            guard let held = lease.owner, held.containerID == owner.containerID,
                  held.ifname == owner.ifname || held.ifname.isEmpty else { continue }
            try release(lease.ip)
            released.append(lease.ip)
        }
        return (released, all.count - released.count)
    }

    /// The last address handed out from range set `index`, or nil when unknown or unreadable.
    public func lastReserved(rangeSet index: Int) -> IPAddress? {
        readFile(path(LeaseStore.lastReservedPrefix + String(index))).flatMap { IPAddress($0.trimmingSpaces()) }
    }

    public func setLastReserved(_ ip: IPAddress, rangeSet index: Int) throws(SystemError) {
        let target = path(LeaseStore.lastReservedPrefix + String(index))
        let temporary = target + ".\(getpid()).tmp"
        try writeFile(temporary, contents: ip.description)
        guard rename(temporary, target) == 0 else {
            let error = SystemError("rename", path: target)
            unlink(temporary)
            throw error
        }
    }

    /// Whether a file could be created in the directory now (STATUS uses it).
    public func checkWritable() throws(SystemError) {
        let probe = path(".probe.\(getpid()).tmp")
        try writeFile(probe, contents: "")
        unlink(probe)
    }

    private func writeFile(_ path: String, contents: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        var bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let error = SystemError("write", path: path)
                unlink(path)
                throw error
            }
            written += n
        }
    }

    private func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: buffer[..<total], as: UTF8.self)
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
