import XCTest
@testable import NodeAgent

final class ServicesSetupTests: XCTestCase {
    func testClusterCIDRFlagsOnePerFamilyMasked() throws {
        let o = try AgentOptions.parse(
            ["--node", "n1", "--cluster-cidr", "10.244.7.0/16", "--cluster-cidr", "fd00:10:244::/56"], environment: [:])
        XCTAssertEqual(o.clusterCIDRs.map { "\($0)" }, ["10.244.0.0/16", "fd00:10:244::/56"])
        XCTAssertTrue(try AgentOptions.parse(["--node", "n1"], environment: [:]).clusterCIDRs.isEmpty)
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "n1", "--cluster-cidr", "10.244.0.0"], environment: [:]))
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "n1", "--cluster-cidr"], environment: [:]))
    }

    func testNotReadyWithoutBridgeNetfilterAndReadyOnceItIsThere() {
        var loaded = false
        let setup = ServicesSetup(clusterCIDRs: [], hasBridgeNetfilter: { loaded })
        XCTAssertFalse(setup.reconcile())
        XCTAssertFalse(setup.reconcile(), "checked again at every sync")
        loaded = true
        XCTAssertTrue(setup.reconcile())
        XCTAssertTrue(ServicesSetup.notReadyReason.contains("modprobe br_netfilter"))
        XCTAssertTrue(ServicesSetup.notReadyReason.contains("/etc/modules-load.d/"))
    }
}
