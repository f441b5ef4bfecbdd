import Testing
@testable import CNI

/// DEL releases leases by owner, so it must not need the node's subnet file: after a reboot /run
/// is empty until the node's agent rewrites it, and a failing DEL makes containerd keep the pod's
/// sandbox and network namespace (state SANDBOX_UNKNOWN) until it succeeds.
@Suite struct SubnetFileOnDeleteTests {
    let config =
        #"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"bridge-ipam","ipam":{"type":"host-local","subnetFile":"/nonexistent/podcidr","clusterCIDR":"10.244.0.0/16","dataDir":"/tmp/leases"}}"#

    @Test func deleteParsesWithoutTheSubnetFile() throws {
        let c = try NetworkConfig.parse(Array(config.utf8), subnetFileOptional: true)
        #expect(c.name == "k8s-pod-network")
        #expect(c.ipam.dataDir == "/tmp/leases")
        #expect(c.ipam.rangeSets.isEmpty)
    }

    @Test func otherVerbsStillNeedIt() {
        #expect(code(of: config) == 7)
    }

    @Test func aBadConfigIsStillAnErrorOnDelete() {
        let bad = #"{"cniVersion":"1.0.0","name":"../x","ipam":{"type":"host-local","subnetFile":"/nonexistent/podcidr"}}"#
        #expect(throws: CNIError.self) { try NetworkConfig.parse(Array(bad.utf8), subnetFileOptional: true) }
    }
}
