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

    @Test func staleTemporaryFilesAreSweptLiveOnesKept() throws {
        // PID 2^22+1 is above the kernel's pid_max limit: never alive.
        dir.write("net", ".10.0.0.5.4194305.tmp", "x")
        dir.write("net", "last_reserved_ip.0.4194305.tmp", "x")
        dir.write("net", ".10.0.0.6.\(getpid()).tmp", "ours, fresh")
        dir.write("net", "unrelated.tmp", "not ours")
        try withStore { store in _ = try store.leases() }
        #expect(!exists(dir.file("net", ".10.0.0.5.4194305.tmp")))
        #expect(!exists(dir.file("net", "last_reserved_ip.0.4194305.tmp")))
        #expect(exists(dir.file("net", ".10.0.0.6.\(getpid()).tmp")))
        #expect(exists(dir.file("net", "unrelated.tmp")))
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
