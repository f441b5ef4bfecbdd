#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import IPAM
import Addresses

/// A fresh data directory per test, removed afterwards.
final class TemporaryDataDir {
    let path: String
    init() {
        var template = Array("/tmp/bridge-ipam-test-XXXXXX".utf8CString)
        path = String(cString: mkdtemp(&template)!)
    }
    deinit { removeTree(path) }

    func file(_ network: String, _ name: String) -> String { "\(path)/\(network)/\(name)" }

    func write(_ network: String, _ name: String, _ contents: String) {
        let fd = open(file(network, name), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = contents.utf8CString.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    func read(_ network: String, _ name: String) -> String? {
        let fd = open(file(network, name), O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = Glibc.read(fd, &buffer, 256)
        return String(decoding: buffer[..<max(n, 0)], as: UTF8.self)
    }
}

func removeTree(_ path: String) {
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            removeTree(path + "/" + name)
        }
        closedir(dir)
        rmdir(path)
    } else {
        unlink(path)
    }
}

@Suite struct AllocatorTests {
    let dir = TemporaryDataDir()

    func rangeSet(_ cidr: String, start: String? = nil, end: String? = nil) throws -> RangeSet {
        try RangeSet([
            IPRange(subnet: IPNetwork(cidr: cidr)!, rangeStart: start.flatMap(IPAddress.init), rangeEnd: end.flatMap(IPAddress.init))
        ])
    }

    func withStore<R>(_ body: (borrowing LeaseStore) throws -> R) throws -> R {
        try LeaseStore.withLock(dataDir: dir.path, network: "net", failure: { $0 as any Error }, body)
    }

    func allocate(_ allocator: Allocator, _ id: String, requested: [IPAddress] = []) throws -> String {
        try withStore { store in
            try allocator.allocate(for: LeaseOwner(containerID: id, ifname: "eth0"), requested: requested, in: store)[0].address.description
        }
    }

    @Test func handsOutAddressesInOrderSkippingTheGateway() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        #expect(try allocate(allocator, "a") == "10.244.1.2")
        #expect(try allocate(allocator, "b") == "10.244.1.3")
    }

    @Test func writesLeasesInHostLocalLayout() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        _ = try allocate(allocator, "abc")
        #expect(dir.read("net", "10.244.1.2") == "abc\r\neth0")
        #expect(dir.read("net", "last_reserved_ip.0") == "10.244.1.2")
    }

    @Test func continuesRoundRobinAfterTheLastReservedAddress() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        _ = try allocate(allocator, "a")
        _ = try allocate(allocator, "b")
        try withStore { try $0.release(IPAddress("10.244.1.2")!) }
        #expect(try allocate(allocator, "c") == "10.244.1.4")
    }

    @Test func wrapsAroundToFreedAddresses() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/29")])  // .2 ... .6
        for id in ["a", "b", "c", "d", "e"] { _ = try allocate(allocator, id) }
        try withStore { try $0.release(IPAddress("10.244.1.3")!) }
        #expect(try allocate(allocator, "f") == "10.244.1.3")
    }

    @Test func exhaustionNamesTheRange() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24", start: "10.244.1.10", end: "10.244.1.11")])
        _ = try allocate(allocator, "a")
        _ = try allocate(allocator, "b")
        #expect(throws: Allocator.Error.self) { try allocate(allocator, "c") }
        do { _ = try allocate(allocator, "c") } catch {
            #expect("\(error)" == "no free address left in range 10.244.1.10-10.244.1.11")
        }
    }

    @Test func anEmptyOrTornLeaseFileStillCountsAsTaken() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        try withStore { _ in }
        dir.write("net", "10.244.1.2", "")
        dir.write("net", "10.244.1.3", "abc\r")
        #expect(try allocate(allocator, "x") == "10.244.1.4")
    }

    @Test func aTornLastReservedFileNeverCausesADuplicate() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        _ = try allocate(allocator, "a")
        dir.write("net", "last_reserved_ip.0", "10.24")
        #expect(try allocate(allocator, "b") == "10.244.1.3")
    }

    @Test func requestedAddressIsHonouredOrRefused() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        #expect(try allocate(allocator, "a", requested: [IPAddress("10.244.1.50")!]) == "10.244.1.50")
        #expect(throws: Allocator.Error.requestedTaken(IPAddress("10.244.1.50")!, by: LeaseOwner(containerID: "a", ifname: "eth0"))) {
            try allocate(allocator, "b", requested: [IPAddress("10.244.1.50")!])
        }
        #expect(throws: Allocator.Error.requestedReserved(IPAddress("10.244.1.1")!)) {
            try allocate(allocator, "b", requested: [IPAddress("10.244.1.1")!])
        }
        #expect(throws: Allocator.Error.requestedNotInRanges(IPAddress("10.9.9.9")!)) {
            try allocate(allocator, "b", requested: [IPAddress("10.9.9.9")!])
        }
    }

    @Test func oneAddressPerRangeSetAllOrNothing() throws {
        let v4 = try rangeSet("10.244.1.0/24")
        let full = try rangeSet("10.244.2.0/24", start: "10.244.2.10", end: "10.244.2.10")
        try withStore { store in
            _ = try store.reserve(IPAddress("10.244.2.10")!, for: LeaseOwner(containerID: "other", ifname: "eth0"))
            do {
                _ = try Allocator(rangeSets: [v4, full]).allocate(for: LeaseOwner(containerID: "a", ifname: "eth0"), in: store)
                Issue.record("allocation should fail")
            } catch {}
            let v1 = store.isTaken(IPAddress("10.244.1.2")!)
            #expect(!v1, "the first range set's lease is rolled back")
        }
    }

    @Test func releaseByOwnerMatchesContainerAndInterface() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("10.244.1.0/24")])
        _ = try allocate(allocator, "a")
        try withStore { store in
            let r101 = try store.release(owner: LeaseOwner(containerID: "a", ifname: "eth1")).released.isEmpty
            #expect(r101)
            let first = try store.release(owner: LeaseOwner(containerID: "a", ifname: "eth0"))
            #expect(first.released == [IPAddress("10.244.1.2")!] && first.remaining == 0)
            let r102 = try store.release(owner: LeaseOwner(containerID: "a", ifname: "eth0")).released.isEmpty
            #expect(r102, "release is idempotent")
        }
    }

    @Test func leasesWrittenByOlderHostLocalWithoutIfnameAreReleasedByContainerID() throws {
        try withStore { _ in }
        dir.write("net", "10.244.1.7", "old-container")
        try withStore { store in
            let released = try store.release(owner: LeaseOwner(containerID: "old-container", ifname: "eth0")).released
            #expect(released == [IPAddress("10.244.1.7")!])
        }
    }

    @Test func ipv6RangesAllocateToo() throws {
        let allocator = Allocator(rangeSets: [try rangeSet("fd00:10:244:1::/64")])
        #expect(try allocate(allocator, "a") == "fd00:10:244:1::2")
    }
}
