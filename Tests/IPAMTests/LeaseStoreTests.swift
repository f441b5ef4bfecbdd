#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import IPAM
import SystemIO
import Addresses

/// The lease store's safety: a lock scope that cannot be re-entered, nothing written through a
/// symlink, stale temporary files swept, a hint rewritten in place whose tearing is harmless.
@Suite struct LeaseStoreTests {
    let dir = TemporaryDataDir()
    let owner = LeaseOwner(containerID: "c1", ifname: "eth0")

    init() { mkdir(dir.path + "/net", 0o755) }

    func withStore<R>(_ body: (borrowing LeaseStore) throws -> R) throws -> R {
        try LeaseStore.withLock(dataDir: dir.path, network: "net", failure: { $0 as any Error }, body)
    }

    func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    @Test(.timeLimit(.minutes(1)))
    func takingTheSameLockAgainInsideItsScopeIsAnErrorNotAHang() throws {
        // A watchdog: if this ever blocks on the flock, the process dies instead of hanging CI.
        alarm(20)
        defer { alarm(0) }
        var inner: SystemError?
        try withStore { _ in
            do {
                try LeaseStore.withLock(dataDir: dir.path, network: "net", failure: { $0 }) {
                    (_: borrowing LeaseStore) throws(SystemError) in
                }
            } catch let error as SystemError { inner = error }
        }
        #expect(inner?.errno == EDEADLK)
        // ...and the lock is free again once the scope has ended.
        let reserved = try withStore { store in try store.reserve(IPAddress("10.0.0.2")!, for: owner) }
        #expect(reserved)
    }

    @Test func aSymlinkedLockIsRefusedAndNotFollowed() throws {
        let outside = dir.path + "/outside-lock"
        symlink(outside, dir.file("net", "lock"))
        var failure: SystemError?
        do { try withStore { _ in } } catch { failure = error as? SystemError }
        #expect(failure?.description.contains("symlink") == true)
        #expect(!exists(outside), "the symlink's target was not created")
    }

    @Test func aSymlinkedNetworkDirectoryIsRefused() throws {
        rmdir(dir.path + "/net")
        mkdir(dir.path + "/elsewhere", 0o755)
        symlink(dir.path + "/elsewhere", dir.path + "/net")
        #expect(throws: SystemError.self) { try withStore { _ in } }
        #expect(!exists(dir.path + "/elsewhere/lock"))
    }

    @Test func plantedSymlinksAreNeverWrittenThrough() throws {
        let victim = dir.path + "/victim"
        dir.write("", "victim", "precious")
        let ip = IPAddress("10.0.0.2")!
        // The temporary name we would use, the lease name and the hint, all pointing outside.
        symlink(victim, dir.file("net", ".10.0.0.2.\(getpid()).tmp"))
        symlink(victim, dir.file("net", "10.0.0.3"))
        symlink(victim, dir.file("net", "last_reserved_ip.0"))
        try withStore { store in
            let r101 = try store.reserve(ip, for: owner)
            #expect(r101, "a planted temporary name is replaced, not followed")
            let r102 = try !store.reserve(IPAddress("10.0.0.3")!, for: owner)
            #expect(r102, "a symlink lease name counts as taken")
            let v1 = store.owner(of: IPAddress("10.0.0.3")!)
            #expect(v1 == nil, "and is not read through")
            #expect(throws: SystemError.self) { try store.setLastReserved(ip, rangeSet: 0) }
        }
        #expect(dir.read("", "victim") == "precious")
        #expect(dir.read("net", "10.0.0.2") == "c1\r\neth0")
    }

    @Test(.timeLimit(.minutes(1)))
    func aFIFOPlantedAsALeaseFileNeverBlocks() throws {
        alarm(20)
        defer { alarm(0) }
        mkfifo(dir.file("net", "10.0.0.9"), 0o600)
        try withStore { store in
            let v2 = store.owner(of: IPAddress("10.0.0.9")!)
            #expect(v2 == nil)
            let r103 = try store.leases().count
            #expect(r103 == 1)
        }
    }

    @Test func everyTemporaryOfOursFoundUnderTheLockIsSwept() throws {
        // Every writer holds the lock: whatever its PID says (a killed writer not yet reaped
        // still answers to its PID, this process's own included), the file is a leftover.
        dir.write("net", ".10.0.0.5.4194305.tmp", "x")
        dir.write("net", "last_reserved_ip.0.4194305.tmp", "x")
        dir.write("net", ".10.0.0.6.\(getpid()).tmp", "a killed writer's, its PID alive")
        dir.write("net", ".lease.tmp", "x")
        dir.write("net", ".probe.tmp", "")
        dir.write("net", "unrelated.tmp", "not ours")
        try withStore { store in _ = try store.leases() }
        for name in [".10.0.0.5.4194305.tmp", "last_reserved_ip.0.4194305.tmp", ".10.0.0.6.\(getpid()).tmp", ".lease.tmp", ".probe.tmp"] {
            #expect(!exists(dir.file("net", name)), "\(name) swept")
        }
        #expect(exists(dir.file("net", "unrelated.tmp")))
    }

    @Test func aLeaseIsWrittenWithoutATemporaryName() throws {
        // O_TMPFILE: the directory never holds anything but the lease itself (and the index).
        try withStore { store in
            let reserved = try store.reserve(IPAddress("10.0.0.2")!, for: owner)
            #expect(reserved)
        }
        #expect(names().filter { $0.hasSuffix(".tmp") }.isEmpty)
        #expect(dir.read("net", "10.0.0.2") == "c1\r\neth0")
    }

    @Test func theRuntimesDELOfAKilledWritersNamedTemporaryRemovesIt() throws {
        dir.write("net", ".lease.tmp", "c9\r\neth0")
        try withStore { store in _ = try store.release(owner: owner, hinted: []) }
        #expect(!exists(dir.file("net", ".lease.tmp")))
    }

    func names() -> [String] {
        var result: [String] = []
        guard let d = opendir(dir.file("net", "")) else { return [] }
        defer { closedir(d) }
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { result.append(name) }
        }
        return result
    }

    /// Reserves `ip` for `holder` and records it in the index, as ADD does.
    func add(_ ip: String, _ holder: LeaseOwner) throws {
        try withStore { store in
            let reserved = try store.reserve(IPAddress(ip)!, for: holder)
            #expect(reserved)
            store.recordHolder(holder, of: [IPAddress(ip)!])
        }
    }

    func indexComplete() throws -> Bool { try withStore { store in store.indexWasComplete } }

    @Test func aCompleteIndexFindsTheOwnersLeasesAndStaysComplete() throws {
        try withStore { store in _ = try store.release(owner: owner, hinted: []) }
        #expect(try indexComplete(), "the first DEL reads the (empty) directory and completes the index")
        try add("10.0.0.2", owner)
        try add("10.0.0.3", LeaseOwner(containerID: "c2", ifname: "eth0"))
        #expect(try indexComplete(), "our own ADDs keep it complete")
        let released = try withStore { store in try store.release(owner: owner, hinted: []) }
        #expect(released == [IPAddress("10.0.0.2")!])
        #expect(try indexComplete())
        #expect(!exists(dir.file("net", ".by.c1:eth0")), "the entry goes with the lease")
        #expect(exists(dir.file("net", "10.0.0.3")))
    }

    @Test func aLeaseAnotherWriterAddsMakesTheIndexIncompleteAndDELStillFindsIt() throws {
        try add("10.0.0.2", LeaseOwner(containerID: "c2", ifname: "eth0"))
        try withStore { store in _ = try store.release(owner: owner, hinted: []) }
        #expect(try indexComplete())
        // As the reference host-local does: O_EXCL create, then write; no index entry. Right
        // after our own change, within the same clock tick.
        dir.write("net", "10.0.0.7", "c1\r\neth0")
        #expect(try !indexComplete())
        let released = try withStore { store in try store.release(owner: owner, hinted: []) }
        #expect(released == [IPAddress("10.0.0.7")!])
        #expect(try indexComplete(), "the scan rebuilt it")
        #expect(exists(dir.file("net", ".by.c2:eth0")))
    }

    @Test func aLeaseAnotherWriterReleasesLeavesAStaleEntryThatIsHarmless() throws {
        try add("10.0.0.2", owner)
        unlink(dir.file("net", "10.0.0.2"))  // host-local's DEL of our lease
        dir.write("net", "10.0.0.2", "c7\r\neth0")  // ...and its ADD of the same address to another
        let released = try withStore { store in try store.release(owner: owner, hinted: []) }
        #expect(released.isEmpty, "the lease names another owner now")
        #expect(dir.read("net", "10.0.0.2") == "c7\r\neth0")
        #expect(try indexComplete())
        #expect(!exists(dir.file("net", ".by.c1:eth0")))
        #expect(exists(dir.file("net", ".by.c7:eth0")))
    }

    @Test func aTornOrForeignRecordInTheLockFileMeansIncomplete() throws {
        try withStore { store in _ = try store.release(owner: owner, hinted: []) }
        #expect(try indexComplete())
        let record = dir.read("net", "lock") ?? ""
        for torn in [String(record.dropLast()), "", "garbage\n", String(record.map { $0 == "1" ? "2" : $0 })] {
            dir.write("net", "lock", torn)
            #expect(try !indexComplete(), "record \(torn.debugDescription)")
        }
    }

    @Test func leasesWithoutAnIfnameAreFoundThroughTheContainersEntry() throws {
        dir.write("net", "10.0.0.4", "c1")  // an older host-local's file
        try withStore { store in _ = try store.release(owner: LeaseOwner(containerID: "x", ifname: "eth0"), hinted: []) }
        #expect(try indexComplete())
        #expect(exists(dir.file("net", ".by.c1:")))
        let released = try withStore { store in try store.release(owner: owner, hinted: []) }
        #expect(released == [IPAddress("10.0.0.4")!])
    }

    @Test func anOwnerTooLongToIndexKeepsTheIndexIncomplete() throws {
        let long = LeaseOwner(containerID: String(repeating: "a", count: 300), ifname: "eth0")
        try add("10.0.0.2", long)
        try withStore { store in _ = try store.release(owner: owner, hinted: []) }
        #expect(try !indexComplete())
        let released = try withStore { store in try store.release(owner: long, hinted: []) }
        #expect(released == [IPAddress("10.0.0.2")!], "found by reading every lease")
    }

    @Test func theHintIsRewrittenInPlaceAndATornOneIsIgnored() throws {
        try withStore { store in
            try store.setLastReserved(IPAddress("10.0.0.200")!, rangeSet: 0)
            try store.setLastReserved(IPAddress("10.0.0.3")!, rangeSet: 0)
            let v3 = store.lastReserved(rangeSet: 0)
            #expect(v3 == IPAddress("10.0.0.3")!, "a shorter value leaves no tail")
        }
        #expect(dir.read("net", "last_reserved_ip.0") == "10.0.0.3")
        for torn in ["10.0.0.", "", "garbage\n\n", "10.0.0.2000", "10.0.0.3x"] {
            dir.write("net", "last_reserved_ip.0", torn)
            try withStore { store in
                let v4 = store.lastReserved(rangeSet: 0)
                #expect(v4 == nil, "torn hint \(torn.debugDescription)")
            }
        }
    }

    @Test func releaseByAddressChecksTheOwner() throws {
        try withStore { store in
            let r104 = try store.reserve(IPAddress("10.0.0.2")!, for: owner)
            #expect(r104)
            let r105 = try store.reserve(IPAddress("10.0.0.3")!, for: LeaseOwner(containerID: "other", ifname: "eth0"))
            #expect(r105)
            let released = try store.release([IPAddress("10.0.0.2")!, IPAddress("10.0.0.3")!, IPAddress("10.0.0.4")!], ifOwnedBy: owner)
            #expect(released == [IPAddress("10.0.0.2")!])
            let v5 = store.isTaken(IPAddress("10.0.0.3")!)
            #expect(v5, "another container's lease is left alone")
            let v6 = try store.hasLeases()
            #expect(v6)
            try store.release(IPAddress("10.0.0.3")!)
            let v7 = try store.hasLeases()
            #expect(!v7)
        }
    }
}
