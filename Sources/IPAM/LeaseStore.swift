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
/// written whole as an unnamed file (`O_TMPFILE`) and then linked into place, so it never appears
/// empty or torn, and a kill at any moment leaves no temporary file behind (a file system without
/// `O_TMPFILE` gets one fixed temporary name instead, which the next ADD or DEL removes). A torn
/// or empty file left by anything else still counts as taken.
///
/// An index of our own lets DEL find an owner's leases without reading every lease file:
///
///     <dataDir>/<network>/.by.<CONTAINERID>:<IFNAME>  a symlink to "ips=<ip>,<ip>" (dangling)
///
/// It is complete, and DEL trusts it, only while the directory's mtime is the one recorded in the
/// lock file when it was last made complete. Every change to the directory (ours, or a lease the
/// reference host-local wrote or released) sets the mtime to the current time, so the record no
/// longer matches; the next DEL then reads every lease once and rebuilds the index. The recorded
/// mtime is set by us, two seconds in the past, so a change within the same clock tick still shows.
/// host-local ignores the entries: it reads a symlink's target, and "ips=..." does not exist.
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
    /// The temporary name of a lease file where `O_TMPFILE` is not supported, and of STATUS's probe.
    static let temporaryName = ".lease.tmp"
    static let probeName = ".probe.tmp"
    static let indexPrefix = ".by."
    static let gatewayPrefix = ".gateway."
    static let indexTargetPrefix = "ips="
    static let indexRecordPrefix = "bridge-ipam lease index complete at directory mtime "

    /// Whether the index was complete when the lock was taken (see the type's comment). Changes
    /// made under the lock keep it complete only through the methods that maintain the index.
    public let indexWasComplete: Bool

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
        let descriptors: (directory: Int32, lock: Int32)
        do throws(SystemError) {
            descriptors = try LeaseStore.openAndLock(directory)
        } catch {
            throw failure(error)
        }
        (directoryFD, lockFD) = descriptors
        self.directory = directory
        let record = LeaseStore.indexRecord(descriptors.directory)
        indexWasComplete = record.map { LeaseStore.lockFile(descriptors.lock, startsWith: $0) } ?? false
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
        let contents = Array("\(owner.containerID)\r\n\(owner.ifname)".utf8)
        // An unnamed file: until it is linked it has no name, so a kill leaves nothing behind.
        let fd = openat(directoryFD, ".", LeaseStore.unnamedFileFlags, 0o600)
        if fd >= 0 {
            defer { Glibc.close(fd) }
            try FileIO.writeAll(fd, contents, path: path(name))
            // linkat never replaces an existing name. AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH;
            // without it, the descriptor's /proc link does the same.
            if linkat(fd, "", directoryFD, name, LeaseStore.emptyPath) == 0 { return true }
            if errno == EEXIST { return false }
            if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", directoryFD, name, AT_SYMLINK_FOLLOW) == 0 { return true }
            if errno == EEXIST { return false }
            if errno != ENOENT { throw SystemError("link", path: path(name)) }
            // No /proc: the named temporary below.
        } else if errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL {
            throw SystemError("open (unnamed file)", path: directory)
        }
        // One fixed name: every writer holds the lock, so one found is a killed writer's.
        try writeNewFile(LeaseStore.temporaryName, contents: contents)
        defer { unlinkat(directoryFD, LeaseStore.temporaryName, 0) }
        // linkat without AT_SYMLINK_FOLLOW never follows, and never replaces an existing name.
        if linkat(directoryFD, LeaseStore.temporaryName, directoryFD, name, 0) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("link", path: path(name))
    }

    /// AT_EMPTY_PATH (glibc declares it only with _GNU_SOURCE): linkat links `fd` itself.
    static let emptyPath: Int32 = 0x1000

    /// UTIME_OMIT (a macro that does not reach Swift): futimens leaves that time alone.
    static let omitTime = (1 << 30) - 2

    /// O_TMPFILE (`__O_TMPFILE | O_DIRECTORY`; the macro does not reach Swift) for writing.
    static let unnamedFileFlags: Int32 = 0o20_000_000 | O_DIRECTORY | O_WRONLY | O_CLOEXEC

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
    /// temporary files of ours on the way (see `isStaleTemporary`).
    public func leases() throws(SystemError) -> [(ip: IPAddress, owner: LeaseOwner?)] {
        try scan(readingEntries: false).leases
    }

    /// Every lease and every index entry (by name, with the addresses it lists); sweeps stale
    /// temporary files.
    private func scan(readingEntries: Bool = true) throws(SystemError) -> (
        leases: [(ip: IPAddress, owner: LeaseOwner?)], entries: [String: [IPAddress]]
    ) {
        var leases: [(ip: IPAddress, owner: LeaseOwner?)] = []
        var entries: [String: [IPAddress]] = [:]
        try forEachName { name in
            if let ip = IPAddress(name) {
                leases.append((ip, readFile(name).flatMap(LeaseStore.parseOwner)))
            } else if name.hasPrefix(LeaseStore.indexPrefix) {
                if readingEntries { entries[name] = readEntry(name) ?? [] }
            } else if isStaleTemporary(name) {
                unlinkat(directoryFD, name, 0)
            }
            return true
        }
        return (leases, entries)
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

    /// Releases every address held by `owner`, reading every lease file, and rebuilds the index
    /// on the way. Returns what it released and how many leases of the network remain.
    /// `release(owner:hinted:)` is the cheap path.
    @discardableResult
    public func release(owner: LeaseOwner) throws(SystemError) -> (released: [IPAddress], remaining: Int) {
        var released: [IPAddress] = []
        var (all, entries) = try scan()
        for lease in all {
            guard let held = lease.owner, owner.matches(held) else { continue }
            try release(lease.ip)
            released.append(lease.ip)
        }
        all.removeAll { lease in released.contains(lease.ip) }
        reindex(leases: all, entries: entries)
        return (released, all.count)
    }

    /// Releases every address held by `owner`, at a cost that does not grow with the number of
    /// leases while the index is complete: the owner's index entries and `hinted` (a DEL's
    /// prevResult) name the candidates, and each is released only if its lease names `owner`.
    /// When the index is not complete and the candidates give nothing, every lease is read once
    /// (`release(owner:)`), which makes the index complete again.
    @discardableResult
    public func release(owner: LeaseOwner, hinted: [IPAddress]) throws(SystemError) -> [IPAddress] {
        // A killed writer's temporary (only where O_TMPFILE is missing): one call, usually ENOENT.
        var changed = unlinkat(directoryFD, LeaseStore.temporaryName, 0) == 0
        let names = LeaseStore.entryNames(owner)
        var candidates = hinted
        for name in names {
            for ip in readEntry(name) ?? [] where !candidates.contains(ip) { candidates.append(ip) }
        }
        let released = try release(candidates, ifOwnedBy: owner)
        if released.isEmpty && !indexWasComplete { return try release(owner: owner).released }
        var consistent = true
        for name in names {
            if unlinkat(directoryFD, name, 0) == 0 {
                changed = true
            } else if errno != ENOENT {
                consistent = false
            }
        }
        if indexWasComplete && consistent && (changed || !released.isEmpty) { markIndexComplete() }
        return released
    }

    /// Adds `addresses` to `owner`'s index entry (ADD calls it once its leases are made). When it
    /// cannot (a name too long for the file system, no space), the index is left incomplete.
    public func recordHolder(_ owner: LeaseOwner, of addresses: [IPAddress]) {
        guard let name = LeaseStore.entryNames(owner).first else { return }
        // Usually there is none yet: one symlinkat. An entry of an earlier ADD is merged.
        var written = symlinkat(LeaseStore.indexTarget(addresses), directoryFD, name) == 0
        if !written && errno == EEXIST {
            var ips = readEntry(name) ?? []
            for ip in addresses where !ips.contains(ip) { ips.append(ip) }
            written = writeEntry(name, ips)
        }
        if written && indexWasComplete { markIndexComplete() }
    }

    /// The index entries that can list `owner`'s leases: its own, and its container ID's alone
    /// (lease files without an ifname); none when a name would be too long.
    static func entryNames(_ owner: LeaseOwner) -> [String] {
        let own = indexPrefix + owner.containerID + ":" + owner.ifname
        guard own.utf8.count <= 255 else { return [] }
        return owner.ifname.isEmpty ? [own] : [own, indexPrefix + owner.containerID + ":"]
    }

    private func readEntry(_ name: String) -> [IPAddress]? {
        // On the stack: DEL reads two entries, most often missing ones.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 512) { buffer -> [IPAddress]? in
            let count = readlinkat(directoryFD, name, buffer.baseAddress!, buffer.count)
            let prefix = LeaseStore.indexTargetPrefix.utf8.count
            guard count > prefix, count < buffer.count else { return nil }
            let bytes = UnsafeRawBufferPointer(start: buffer.baseAddress!, count: count)
            guard bytes.prefix(prefix).elementsEqual(LeaseStore.indexTargetPrefix.utf8) else { return nil }
            var ips: [IPAddress] = []
            var start = prefix
            for end in prefix...count where end == count || bytes[end] == UInt8(ascii: ",") {
                if let ip = IPAddress(String(decoding: bytes[start..<end], as: UTF8.self)) { ips.append(ip) }
                start = end + 1
            }
            return ips
        }
    }

    /// Replaces entry `name` with one listing `ips` (none: removed). False when it could not.
    private func writeEntry(_ name: String, _ ips: [IPAddress]) -> Bool {
        guard unlinkat(directoryFD, name, 0) == 0 || errno == ENOENT else { return false }
        if ips.isEmpty { return true }
        return symlinkat(LeaseStore.indexTarget(ips), directoryFD, name) == 0
    }

    /// "ips=10.244.1.5,fd00::5"
    private static func indexTarget(_ ips: [IPAddress]) -> String {
        var target = indexTargetPrefix
        for (i, ip) in ips.enumerated() {
            if i > 0 { target += "," }
            target += ip.description
        }
        return target
    }

    /// Makes the index list exactly the owners of `leases` and, when every entry could be
    /// written, records it complete.
    private func reindex(leases: [(ip: IPAddress, owner: LeaseOwner?)], entries: [String: [IPAddress]]) {
        var wanted: [String: [IPAddress]] = [:]
        var complete = true
        for lease in leases {
            guard let owner = lease.owner else { continue }
            guard let name = LeaseStore.entryNames(owner).first else {
                complete = false
                continue
            }
            wanted[name, default: []].append(lease.ip)
        }
        for (name, ips) in wanted where entries[name].map(Set.init) != Set(ips) {
            if !writeEntry(name, ips) { complete = false }
        }
        for name in entries.keys where wanted[name] == nil {
            if !writeEntry(name, []) { complete = false }
        }
        if complete { markIndexComplete() }
    }

    /// What the lock file says while the index is complete: the directory's mtime, as text
    /// ("bridge-ipam lease index complete at directory mtime SECONDS.NANOSECONDS\n"). Bytes
    /// written by hand: every ADD and DEL reads it, and String interpolation of two integers cost
    /// more than the rest of the comparison.
    private static func indexRecord(_ directoryFD: Int32) -> [UInt8]? {
        var info = stat()
        guard fstat(directoryFD, &info) == 0 else { return nil }
        var bytes = Array(indexRecordPrefix.utf8)
        bytes.reserveCapacity(bytes.count + 32)
        appendDecimal(Int(info.st_mtim.tv_sec), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        appendDecimal(Int(info.st_mtim.tv_nsec), to: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    private static func appendDecimal(_ value: Int, to bytes: inout [UInt8]) {
        let magnitude = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var divisor: UInt = 1
        while divisor <= magnitude / 10 { divisor *= 10 }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(magnitude / divisor % 10))
            divisor /= 10
        }
    }

    /// Whether the lock file starts with `record`.
    private static func lockFile(_ lockFD: Int32, startsWith record: [UInt8]) -> Bool {
        var buffer = [UInt8](repeating: 0, count: record.count)
        let count = buffer.withUnsafeMutableBytes { pread(lockFD, $0.baseAddress, $0.count, 0) }
        return count == record.count && buffer == record
    }

    /// Sets the directory's mtime to a moment of our choosing (two seconds ago, so that even a file
    /// system that keeps mtimes to 2 s cannot round a later change onto it; with nanoseconds no
    /// clock tick will repeat) and records it; any later change of the directory moves it on.
    private func markIndexComplete() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // Any nanoseconds will do that a clock tick is unlikely to repeat: the clock's own, mixed.
        let nanoseconds = (Int(now.tv_nsec) &* 7919 &+ Int(getpid())) % 1_000_000_000
        var times = (timespec(tv_sec: 0, tv_nsec: LeaseStore.omitTime), timespec(tv_sec: now.tv_sec - 2, tv_nsec: nanoseconds))
        let set = withUnsafePointer(to: &times) { $0.withMemoryRebound(to: timespec.self, capacity: 2) { futimens(directoryFD, $0) } }
        guard set == 0, let record = LeaseStore.indexRecord(directoryFD) else { return }
        _ = record.withUnsafeBytes { pwrite(lockFD, $0.baseAddress, $0.count, 0) }
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

    /// Records that `gateway` (with its subnet's prefix) was put on the bridge for this network,
    /// so that after a podCIDR change the address it left can be told from someone else's: a
    /// dangling symlink `.gateway.<ip>` -> `<ip>/<prefix>`. A failure only loses the record.
    public func recordGateway(_ gateway: IPNetwork) {
        if symlinkat(gateway.description, directoryFD, LeaseStore.gatewayPrefix + gateway.address.description) == 0 && indexWasComplete {
            markIndexComplete()
        }
    }

    /// Whether `gateway` is one that `recordGateway` recorded.
    public func isRecordedGateway(_ gateway: IPNetwork) -> Bool {
        var buffer = [CChar](repeating: 0, count: 64)
        let name = LeaseStore.gatewayPrefix + gateway.address.description
        let count = buffer.withUnsafeMutableBufferPointer { readlinkat(directoryFD, name, $0.baseAddress!, $0.count) }
        guard count > 0, count < buffer.count else { return false }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) == gateway.description
    }

    /// Drops the record of a gateway that no longer serves.
    public func forgetGateway(_ gateway: IPNetwork) {
        unlinkat(directoryFD, LeaseStore.gatewayPrefix + gateway.address.description, 0)
    }

    /// Whether any lease lies in `subnet`, from the names alone (no lease file is opened).
    public func hasLease(in subnet: IPNetwork) throws(SystemError) -> Bool {
        var found = false
        try forEachName { name in
            found = IPAddress(name).map(subnet.contains) ?? false
            return !found
        }
        return found
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
        let fd = openat(directoryFD, ".", LeaseStore.unnamedFileFlags, 0o600)
        if fd >= 0 {
            Glibc.close(fd)
            return
        }
        guard errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL else { throw SystemError("open (unnamed file)", path: directory) }
        try writeNewFile(LeaseStore.probeName, contents: [])
        unlinkat(directoryFD, LeaseStore.probeName, 0)
        if indexWasComplete { markIndexComplete() }
    }

    /// Temporary files of ours: `.lease.tmp`, `.probe.tmp`, and older versions' `.IP.PID.tmp`,
    /// `.probe.PID.tmp` and `last_reserved_ip.N.PID.tmp`. Every writer holds the lock, so one
    /// found under the lock was left by a killed process, whatever its PID says (a killed
    /// process that its parent has not reaped yet still answers to its PID).
    func isStaleTemporary(_ name: String) -> Bool {
        if name == LeaseStore.temporaryName || name == LeaseStore.probeName { return true }
        guard name.hasSuffix(".tmp"), !name.hasPrefix(LeaseStore.indexPrefix),
            name.hasPrefix(".") || name.hasPrefix(LeaseStore.lastReservedPrefix)
        else { return false }
        let parts = name.dropLast(4).split(separator: ".")
        guard let pidText = parts.last, let pid = Int32(pidText), pid > 0 else { return false }
        return true
    }

    /// Creates `name` (which must not exist; a stale one of ours is replaced) and writes it whole.
    private func writeNewFile(_ name: String, contents: [UInt8]) throws(SystemError) {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(directoryFD, name, flags, 0o600)
        if fd < 0 && errno == EEXIST {
            // Ours by name, and we hold the lock: a leftover of a killed process.
            unlinkat(directoryFD, name, 0)
            fd = openat(directoryFD, name, flags, 0o600)
        }
        guard fd >= 0 else { throw SystemError("open", path: path(name)) }
        defer { Glibc.close(fd) }
        do { try FileIO.writeAll(fd, contents, path: path(name)) } catch {
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
