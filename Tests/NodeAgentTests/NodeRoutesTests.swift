#if canImport(Glibc)
import Glibc
#endif
import Addresses
import ClusterRoutes
import JSON
import SystemIO
import XCTest
@testable import NodeAgent

/// A node's network in memory for the agent's logic: records what it is asked to apply and
/// refuses routes to the podCIDRs in `refused`.
private final class MemoryKernel: NetworkKernel {
    var state = InstalledNetwork()
    var refused: Set<String> = []
    var mtu: UInt32 = 1500

    func localAddresses(excluding excluded: String) throws(KernelError) -> [(index: Int32, network: IPNetwork)] {
        [(2, IPNetwork(cidr: "192.168.1.2/24")!)]
    }
    func linkMTU(index: Int32) throws(KernelError) -> UInt32? { mtu }
    func ensureTunnel(_ device: TunnelDevice) throws(KernelError) -> (index: Int32, created: Bool) { (9, false) }
    func removeTunnel(named name: String) throws(KernelError) -> Bool { false }
    func installed(tunnelIndex: Int32?) throws(KernelError) -> InstalledNetwork { state }
    func apply(_ changes: [NetworkChange], tunnelIndex: Int32?) throws(KernelError) -> [Int: String] {
        var failures: [Int: String] = [:]
        for (i, change) in changes.enumerated() {
            switch change {
            case .addRoute(let r), .replaceRoute(let r, _):
                if refused.contains(r.destination.description) {
                    failures[i] = "File exists"
                } else {
                    state.routes[r.destination] = InstalledRoute(gateway: r.gateway, tunnel: r.tunnel)
                }
            case .removeRoute(let d, _): state.routes[d] = nil
            case .setNeighbour(let ip, let mac): state.neighbours[ip] = mac.value
            case .removeNeighbour(let ip, _): state.neighbours[ip] = nil
            case .setForwarding(let mac, let dst): state.forwarding[mac] = dst.value
            case .removeForwarding(let mac, _): state.forwarding[mac] = nil
            }
        }
        return failures
    }
}

private func nodeJSON(_ name: String, ips: [String], cidrs: [String]) -> JSONValue {
    let addresses = ips.map { #"{"type":"InternalIP","address":"\#($0)"}"# }.joined(separator: ",")
    let podCIDRs = cidrs.map { "\"\($0)\"" }.joined(separator: ",")
    return try! JSONValue.parse(
        #"{"metadata":{"name":"\#(name)"},"spec":{"podCIDRs":[\#(podCIDRs)]},"status":{"addresses":[\#(addresses)]}}"#)
}

final class NodeRoutesTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        var template = Array("/tmp/node-routes-XXXXXX".utf8CString)
        directory = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() {
        unlink("\(directory)/podcidr")
        rmdir(directory)
    }

    private func make(_ kernel: MemoryKernel, mode: RoutingMode = .auto) -> NodeRoutes {
        NodeRoutes(nodeName: "a", subnetFile: "\(directory)/podcidr", network: NodeNetwork(mode: mode, kernel: kernel))
    }

    private func subnetFile() -> String {
        FileIO.readText("\(directory)/podcidr", limit: 4096) ?? ""
    }

    func testFaultsStayWithTheirNodeAndFamily() {
        let kernel = MemoryKernel()
        kernel.refused = ["10.244.5.0/24"]
        let routes = make(kernel)
        routes.replaceAll([
            nodeJSON("a", ips: ["192.168.1.2"], cidrs: ["10.244.0.0/24"]),
            // Dual-stack, but only an IPv4 InternalIP: its IPv4 route is direct, its IPv6 one tunnelled.
            nodeJSON("b", ips: ["192.168.1.3"], cidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"]),
            nodeJSON("c", ips: ["192.168.2.3"], cidrs: ["10.244.2.0/24"]),
            nodeJSON("x", ips: ["192.168.2.4"], cidrs: ["10.244.7.0/24"]),
            nodeJSON("y", ips: ["192.168.2.5"], cidrs: ["10.244.7.0/25"]),
            nodeJSON("refused", ips: ["192.168.2.6"], cidrs: ["10.244.5.0/24"]),
            nodeJSON("bad", ips: ["not-an-ip"], cidrs: ["10.244.6.0/24"]),
        ])
        XCTAssertTrue(routes.reconcile())
        XCTAssertEqual(
            Set(kernel.state.routes.keys.map(\.description)), ["10.244.1.0/24", "fd00:10:244:1::/64", "10.244.2.0/24"])
        XCTAssertEqual(
            kernel.state.routes[IPNetwork(cidr: "10.244.1.0/24")!], InstalledRoute(gateway: IPAddress("192.168.1.3"), tunnel: false))
        XCTAssertEqual(kernel.state.forwarding.count, 3, "b (for IPv6), c and the refused node's entries are in place")
        XCTAssertEqual(subnetFile(), "10.244.0.0/24\nFLANNEL_MTU=1450\n")
    }

    func testDirectModeWritesTheUnderlayMTU() {
        let kernel = MemoryKernel()
        kernel.mtu = 9000
        let routes = make(kernel, mode: .direct)
        routes.replaceAll([nodeJSON("a", ips: ["192.168.1.2"], cidrs: ["10.244.0.0/24"])])
        XCTAssertTrue(routes.reconcile())
        XCTAssertEqual(subnetFile(), "10.244.0.0/24\nFLANNEL_MTU=9000\n")
    }
}
