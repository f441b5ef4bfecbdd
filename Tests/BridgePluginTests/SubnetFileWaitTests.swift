#if canImport(Glibc)
import Glibc
#endif
import CNI
import XCTest

@testable import BridgePlugin

/// ADD in the reboot window: the subnet file appears late, or not at all.
final class SubnetFileWaitTests: XCTestCase {
    /// A clock that advances only when the plugin pauses, and a file that appears after `appearsAfter` pauses.
    final class FakeSystem {
        var clock = 100.0
        var pauses = 0
        var appearsAfter: Int?
        var checked: [String] = []
        var system: SubnetFileWait.System {
            SubnetFileWait.System(
                exists: { [self] path in
                    checked.append(path)
                    return appearsAfter.map { pauses >= $0 } ?? false
                },
                now: { [self] in clock },
                pause: { [self] in
                    pauses += 1
                    clock += 0.05
                })
        }
    }

    func config(_ h: VerbHarness, file: String, wait: String = "") -> String {
        h.config(
            ipam: #"{"type":"host-local","subnetFile":"\#(file)","clusterCIDR":"10.244.0.0/16","dataDir":"\#(h.scratch.path)"\#(wait)}"#)
    }

    @available(*, noasync)
    func testAddWaitsForTheFileThenFailsWithCode11NamingItsWriter() {
        let h = VerbHarness()
        let fake = FakeSystem()
        let r = h.run("ADD", config: config(h, file: "/run/bridge-ipam/podcidr"), system: fake.system)
        XCTAssertEqual(r.code, 11)
        XCTAssertEqual(
            r.json?["msg"]?.stringValue, "try again later: ipam.subnetFile /run/bridge-ipam/podcidr does not exist yet (waited 10 s)")
        XCTAssertTrue(r.details.contains("bridge-ipam-agent"), r.details)
        XCTAssertEqual(fake.clock, 110, accuracy: 0.06, "waited the default 10 s")
        XCTAssertEqual(h.leases, [])
        XCTAssertTrue(h.lockIsFree)
    }

    @available(*, noasync)
    func testAddGoesOnOnceTheFileAppears() {
        let h = VerbHarness()
        let file = h.scratch.path + "/podcidr"
        let fake = FakeSystem()
        fake.appearsAfter = 20
        let appear = fake.system
        // The file is written by "the agent" when the plugin has paused 20 times (1 s).
        let system = SubnetFileWait.System(
            exists: { path in
                if appear.exists(path) {
                    let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    _ = "10.244.1.0/24\n".withCString { write(fd, $0, 14) }
                    close(fd)
                    return true
                }
                return false
            }, now: appear.now, pause: appear.pause)
        let r = h.run("ADD", config: config(h, file: file), system: system)
        XCTAssertEqual(r.exitCode, 0, "\(String(describing: r.json))")
        XCTAssertEqual(fake.pauses, 20)
        XCTAssertEqual(h.leases, ["10.244.1.2"])
    }

    @available(*, noasync)
    func testTheWaitIsConfigurableAndBounded() {
        let h = VerbHarness()
        let fake = FakeSystem()
        XCTAssertEqual(
            h.run("ADD", config: config(h, file: "/nonexistent/podcidr", wait: #","subnetFileWait":0"#), system: fake.system).code, 11)
        XCTAssertEqual(fake.pauses, 0, "0 fails at once")
        for bad in ["61", "-1", "1.5", #""10""#] {
            let r = h.run("ADD", config: config(h, file: "/nonexistent/podcidr", wait: #","subnetFileWait":\#(bad)"#), system: fake.system)
            XCTAssertEqual(r.code, 7, bad)
        }
        XCTAssertEqual(fake.pauses, 0)
    }

    @available(*, noasync)
    func testOnlyADDWaitsAndOnlyForAMissingFile() {
        let h = VerbHarness()
        let fake = FakeSystem()
        XCTAssertEqual(h.run("DEL", config: config(h, file: "/nonexistent/podcidr"), system: fake.system).exitCode, 0)
        XCTAssertEqual(fake.checked, [], "DEL works without the file and does not wait")
        // A file that exists but is garbage fails at once with code 7 (the kernel's view).
        let file = h.scratch.path + "/garbage"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = "nonsense\n".withCString { write(fd, $0, 9) }
        close(fd)
        XCTAssertEqual(h.run("ADD", config: config(h, file: file)).code, 7)
    }
}
