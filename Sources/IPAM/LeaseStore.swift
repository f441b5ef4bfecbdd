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

    /// Whether a lease file's holder is this owner. An owner recorded without an ifname (older
    /// host-local files) matches on the container ID alone.
    public func matches(_ held: LeaseOwner) -> Bool {
        held.containerID == containerID && (held.ifname == ifname || held.ifname.isEmpty)
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
///
/// A store exists only inside `withLock`: the lock's scope is the closure's, and the store
/// cannot escape it (it is non-copyable and lent to the closure). Every file is reached through
/// the directory's descriptor (`openat`, `linkat`, `unlinkat`) and never through a symlink, so a
/// link planted in the directory cannot make us write, create or truncate anything outside it.
public struct LeaseStore: ~Copyable {
    public let directory: String
    private let directoryFD: Int32
    private let lockFD: Int32

    static let lockName = "lock"
    static let lastReservedPrefix = "last_reserved_ip."
    /// A temporary file older than this is stale even if a process of its PID runs (PIDs are reused).
    static let staleTemporaryAge = 30

    /// The network directories whose lock each thread of this process holds. flock is per open
    /// file, so a second store on the same directory in the same thread would wait for the first
    /// one forever: that is refused instead. (The plugin has one thread; tests run many.)
    private static let held = HeldLocks()

    /// Opens (creating if needed) the network's directory, takes its lock exclusively, runs
    /// `body` with the store, and unlocks. `failure` turns a failure to open or lock into the
    /// caller's error type. Taking a lock of the same network again inside `body` is an error
    /// (EDEADLK), never a hang.
    public static func withLock<Result, Failure: Error>(
        dataDir: String, network: String, failure: (SystemError) -> Failure,
        _ body: (borrowing LeaseStore) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let directory = dataDir.hasSuffix("/") ? dataDir + network : dataDir + "/" + network
        guard held.claim(directory) else {
            throw failure(SystemError("lock (already held by this thread)", path: directory + "/" + lockName, errno: EDEADLK))
        }
        defer { held.release(directory) }
        let store = try LeaseStore(directory: directory, failure: failure)
        defer { store.close() }
        return try body(store)
    }

    private init<Failure: Error>(directory: String, failure: (SystemError) -> Failure) throws(Failure) {
        do throws(SystemError) {
            (directoryFD, lockFD) = try LeaseStore.openAndLock(directory)
        } catch {
            throw failure(error)
        }
        self.directory = directory
    }

    /// The directory's and the locked lock file's descriptors.
    private static func openAndLock(_ directory: String) throws(SystemError) -> (Int32, Int32) {
        try LeaseStore.makeDirectories(directory)
        // O_NOFOLLOW: the network's directory itself must not be a symlink to elsewhere.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirFD >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw SystemError("open (a symlink or not a directory, refused)", path: directory)
            }
            throw SystemError("open", path: directory)
        }
        let lockPath = directory + "/" + LeaseStore.lockName
        let fd = openat(dirFD, LeaseStore.lockName, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let error = SystemError(errno == ELOOP ? "open (lock is a symlink, refused)" : "open", path: lockPath)
            Glibc.close(dirFD)
            throw error
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            Glibc.close(dirFD)
            throw SystemError("open (lock is not a regular file, refused)", path: lockPath, errno: EINVAL)
        }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let error = SystemError("flock", path: lockPath)
            Glibc.close(fd)
            Glibc.close(dirFD)
            throw error
        }
        return (dirFD, fd)
    }

    /// Unlocks (closing the lock file releases the flock) and closes the directory.
    private func close() {
        Glibc.close(lockFD)
        Glibc.close(directoryFD)
    }

    private static func makeDirectories(_ path: String) throws(SystemError) {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw SystemError("mkdir", path: path) }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SystemError("mkdir", path: path) }
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Records `ip` as held by `owner`. Returns false, changing nothing, when it is already taken
    /// (by a file, or by anything else of that name, a planted symlink included).
    public func reserve(_ ip: IPAddress, for owner: LeaseOwner) throws(SystemError) -> Bool {
        let name = ip.description
        let temporary = ".\(name).\(getpid()).tmp"
        try writeNewFile(temporary, contents: "\(owner.containerID)\r\n\(owner.ifname)")
        defer { unlinkat(directoryFD, temporary, 0) }
        // linkat without AT_SYMLINK_FOLLOW never follows, and never replaces an existing name.
        if linkat(directoryFD, temporary, directoryFD, name, 0) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("link", path: path(name))
    }

    /// Whether a lease file exists for `ip`, whatever its content.
    public func isTaken(_ ip: IPAddress) -> Bool {
        var info = stat()
        return fstatat(directoryFD, ip.description, &info, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// The holder of `ip`, or nil when it is free or its file has no readable owner.
    public func owner(of ip: IPAddress) -> LeaseOwner? {
        readFile(ip.description).flatMap(LeaseStore.parseOwner)
    }

    static func parseOwner(_ text: String) -> LeaseOwner? {
        // host-local writes "ID\r\nIFNAME"; files from before ifnames were recorded hold only "ID".
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        guard let id = lines.first.map({ String($0).trimmingWhitespace() }), !id.isEmpty else { return nil }
        let ifname = lines.count > 1 ? String(lines[1]).trimmingWhitespace() : ""
        return LeaseOwner(containerID: id, ifname: ifname)
    }

    /// Removes the lease of `ip`; succeeds when there is none.
    public func release(_ ip: IPAddress) throws(SystemError) {
        let name = ip.description
        guard unlinkat(directoryFD, name, 0) == 0 || errno == ENOENT else { throw SystemError("unlink", path: path(name)) }
    }

    /// Every lease of the network: its address and, when the file says, its holder. Sweeps
    /// stale temporary files of ours on the way (see `isStaleTemporary`).
    public func leases() throws(SystemError) -> [(ip: IPAddress, owner: LeaseOwner?)] {
        var result: [(ip: IPAddress, owner: LeaseOwner?)] = []
        try forEachName { name in
            if let ip = IPAddress(name) {
                result.append((ip, readFile(name).flatMap(LeaseStore.parseOwner)))
            } else if isStaleTemporary(name) {
                unlinkat(directoryFD, name, 0)
            }
            return true
        }
        return result
    }

    /// Whether any lease is left, from the names alone (no lease file is opened).
    public func hasLeases() throws(SystemError) -> Bool {
        var found = false
        try forEachName { name in
            found = IPAddress(name) != nil
            return !found
        }
        return found
    }

    /// Calls `body` with each entry's name until it returns false.
    private func forEachName(_ body: (String) -> Bool) throws(SystemError) {
        // A descriptor of its own: readdir's position belongs to the open file.
        let fd = openat(directoryFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, let dir = fdopendir(fd) else {
            let error = SystemError("opendir", path: directory)
            if fd >= 0 { Glibc.close(fd) }
            throw error
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !body(name) { return }
        }
    }

    /// Releases every address held by `owner`; returns what it released and how many leases
    /// of the network remain. Reads every lease file: `release(_:ifOwnedBy:)` is the cheap path.
    @discardableResult
    public func release(owner: LeaseOwner) throws(SystemError) -> (released: [IPAddress], remaining: Int) {
        var released: [IPAddress] = []
        let all = try leases()
        for lease in all {
            guard let held = lease.owner, owner.matches(held) else { continue }
            try release(lease.ip)
            released.append(lease.ip)
        }
        return (released, all.count - released.count)
    }

    /// Releases those of `addresses` whose lease file names `owner` (e.g. the addresses of a
    /// DEL's prevResult), opening only their files. Returns the ones it released.
    @discardableResult
    public func release(_ addresses: [IPAddress], ifOwnedBy owner: LeaseOwner) throws(SystemError) -> [IPAddress] {
        var released: [IPAddress] = []
        for ip in addresses {
            guard let held = self.owner(of: ip), owner.matches(held) else { continue }
            try release(ip)
            released.append(ip)
        }
        return released
    }

    /// The last address handed out from range set `index`, or nil when unknown or unreadable
    /// (a torn file parses as nothing and is ignored: it is only where the next walk starts).
    public func lastReserved(rangeSet index: Int) -> IPAddress? {
        readFile(LeaseStore.lastReservedPrefix + String(index)).flatMap { IPAddress($0.trimmingWhitespace()) }
    }

    /// Rewrites the hint in place (no temporary file and rename: on ext4 a rename over an
    /// existing file flushes its data, which costs more than the rest of the allocation).
    public func setLastReserved(_ ip: IPAddress, rangeSet index: Int) throws(SystemError) {
        let name = LeaseStore.lastReservedPrefix + String(index)
        let fd = openat(directoryFD, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: path(name)) }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw SystemError("open (not a regular file)", path: path(name), errno: EINVAL)
        }
        let bytes = Array(ip.description.utf8)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count else { throw SystemError("write", path: path(name)) }
        guard ftruncate(fd, off_t(bytes.count)) == 0 else { throw SystemError("truncate", path: path(name)) }
    }

    /// Whether a file could be created in the directory now (STATUS uses it).
    public func checkWritable() throws(SystemError) {
        let probe = ".probe.\(getpid()).tmp"
        try writeNewFile(probe, contents: "")
        unlinkat(directoryFD, probe, 0)
    }

    /// Temporary files of ours: `.IP.PID.tmp`, `.probe.PID.tmp`, and older versions'
    /// `last_reserved_ip.N.PID.tmp`. Every writer holds the lock, so one found under the lock
    /// was left by a killed process; the PID and age checks are a second safety.
    func isStaleTemporary(_ name: String) -> Bool {
        guard name.hasSuffix(".tmp"), name.hasPrefix(".") || name.hasPrefix(LeaseStore.lastReservedPrefix) else { return false }
        let parts = name.dropLast(4).split(separator: ".")
        guard let pidText = parts.last, let pid = Int32(pidText), pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        var info = stat()
        guard fstatat(directoryFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        return Int(time(nil)) - Int(info.st_mtim.tv_sec) > LeaseStore.staleTemporaryAge
    }

    /// Creates `name` (which must not exist; a stale one of ours is replaced) and writes it whole.
    private func writeNewFile(_ name: String, contents: String) throws(SystemError) {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(directoryFD, name, flags, 0o600)
        if fd < 0 && errno == EEXIST {
            // Ours by name and PID, and we hold the lock: a leftover of a killed process with our PID.
            unlinkat(directoryFD, name, 0)
            fd = openat(directoryFD, name, flags, 0o600)
        }
        guard fd >= 0 else { throw SystemError("open", path: path(name)) }
        defer { Glibc.close(fd) }
        do { try FileIO.writeAll(fd, Array(contents.utf8), path: path(name)) } catch {
            unlinkat(directoryFD, name, 0)
            throw error
        }
    }

    /// The first 512 bytes of a regular file in the directory; nil for a symlink, a FIFO
    /// (O_NONBLOCK: opening one never waits) or anything unreadable.
    /// A file of the directory, never through a symlink; nil when it cannot be read whole (a
    /// host-local lease is under 100 bytes, so 4 KiB is generous).
    private func readFile(_ name: String) -> String? {
        FileIO.readText(name, in: directoryFD, limit: 4096, followSymlinks: false)
    }
}

/// (thread, directory) pairs, behind a mutex.
private final class HeldLocks: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var held: Set<String> = []

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    private func key(_ directory: String) -> String { "\(pthread_self()) \(directory)" }

    /// Records that the calling thread holds `directory`'s lock; false if it already does.
    func claim(_ directory: String) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return held.insert(key(directory)).inserted
    }

    func release(_ directory: String) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        held.remove(key(directory))
    }
}
