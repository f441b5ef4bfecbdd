#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import BridgePlugin
import CNI
import IPAM
import Addresses

/// The built-in IPAM's lock scope, driven without netlink.
@Suite struct IPAMBackendTests {
    let dataDir: String = {
        var template = Array("/tmp/bridge-ipam-backend-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }()
    let owner = LeaseOwner(containerID: "c1", ifname: "eth0")

    func config(resolvConf: String) throws -> NetworkConfig {
        let text =
            #"{"cniVersion":"1.0.0","name":"net","type":"bridge-ipam","ipam":{"type":"host-local","subnet":"10.0.0.0/24","dataDir":"\#(dataDir)","resolvConf":"\#(resolvConf)"}}"#
        return try NetworkConfig.parse(Array(text.utf8))
    }

    func leaseNames() -> [String] {
        guard let dir = opendir(dataDir + "/net") else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if IPAddress(name) != nil { names.append(name) }
        }
        return names
    }

    /// This hung forever before: the error path released through a second store, which waited
    /// for the flock the first one still held. The alarm turns a regression into a failure.
    @Test(.timeLimit(.minutes(1)), arguments: ["/nonexistent/resolv.conf", "/tmp", "/dev/null"])
    func anUnreadableResolvConfIsAPromptConfigErrorThatAllocatesNothing(path: String) throws {
        alarm(20)
        defer { alarm(0) }
        let backend = IPAMBackend.builtIn(try config(resolvConf: path).ipam, network: "net")
        var failure: CNIError?
        do { _ = try backend.add(owner: owner, requested: []) } catch { failure = error }
        // Missing, a directory, a device (not a regular file: refused rather than read).
        #expect(failure?.code == CNIError.Code.invalidConfig.rawValue)
        #expect(leaseNames().isEmpty, "nothing was allocated")
        // The lock is free: a normal ADD and DEL go through at once.
        let good = IPAMBackend.builtIn(
            try NetworkConfig.parse(
                Array(
                    #"{"cniVersion":"1.0.0","name":"net","type":"bridge-ipam","ipam":{"type":"host-local","subnet":"10.0.0.0/24","dataDir":"\#(dataDir)"}}"#
                        .utf8)
            ).ipam, network: "net")
        let outcome = try good.add(owner: owner, requested: [])
        #expect(leaseNames() == ["10.0.0.2"])
        try good.delete(owner: owner, addresses: outcome.ips.map(\.address.address))
        #expect(leaseNames().isEmpty)
    }

    @Test func aFIFOAsResolvConfDoesNotBlock() throws {
        alarm(20)
        defer { alarm(0) }
        let fifo = dataDir + "/resolv.fifo"
        mkfifo(fifo, 0o600)
        let backend = IPAMBackend.builtIn(try config(resolvConf: fifo).ipam, network: "net")
        #expect(throws: CNIError.self) { try backend.add(owner: owner, requested: []) }
        #expect(leaseNames().isEmpty)
    }

    @Test func delReleasesByPrevResultAddressesOnlyWhenOwned() throws {
        let good = IPAMBackend.builtIn(
            try NetworkConfig.parse(
                Array(
                    #"{"cniVersion":"1.0.0","name":"net","type":"bridge-ipam","ipam":{"type":"host-local","subnet":"10.0.0.0/24","dataDir":"\#(dataDir)"}}"#
                        .utf8)
            ).ipam, network: "net")
        _ = try good.add(owner: owner, requested: [])
        let other = LeaseOwner(containerID: "c2", ifname: "eth0")
        _ = try good.add(owner: other, requested: [])
        // A prevResult naming the other container's address releases nothing of it; the scan
        // fallback then finds c1's own lease.
        try good.delete(owner: owner, addresses: [IPAddress("10.0.0.3")!])
        #expect(leaseNames() == ["10.0.0.3"])
        try good.delete(owner: other, addresses: [IPAddress("10.0.0.3")!])
        #expect(leaseNames().isEmpty)
    }
}
