#if canImport(Glibc)
import Glibc
#endif
import Addresses
import ClusterRoutes
import RouteKernel
import Netlink
import SystemIO

/// `bridge-ipam routes sync --cluster FILE [--node NAME] [--dry-run]`: makes this node's main
/// routing table hold exactly one route per other node's podCIDR, via that node's address.
/// Run it on every node whenever the node list changes (e.g. from a DaemonSet loop over
/// `kubectl get nodes -o json`). Nothing is changed unless the whole file is valid.
public enum RoutesCommand {
    public static let usage = """
        usage: bridge-ipam routes sync --cluster FILE [--node NAME] [--dry-run]
          FILE   {"nodes":[{"name","ip","podCIDR"}]} or the output of `kubectl get nodes -o json`
          NAME   this node's name in FILE (default: the node owning one of this namespace's addresses)
        """

    /// Runs the command; returns the exit status (0 done, 1 failed, 2 usage).
    public static func run(_ arguments: [String]) -> Int32 {
        guard arguments.first == "sync" else { return fail(usage, status: 2) }
        var clusterPath: String?
        var nodeName: String?
        var dryRun = false
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            switch flag {
            case "--cluster": clusterPath = rest.popFirst()
            case "--node": nodeName = rest.popFirst()
            case "--dry-run": dryRun = true
            case "-h", "--help":
                print(usage)
                return 0
            default: return fail("unknown argument \(flag)\n\(usage)", status: 2)
            }
        }
        guard let clusterPath else { return fail("--cluster FILE is required\n\(usage)", status: 2) }
        let text: String
        do throws(SystemError) {
            text = String(decoding: try FileIO.read(clusterPath, limit: RoutesCommand.clusterFileLimit, regularOnly: false), as: UTF8.self)
        } catch {
            return fail("cannot read cluster file \(clusterPath): \(String(cString: strerror(error.errno)))")
        }
        do {
            let cluster = try Cluster.parse(text)
            let sync = RouteSync(socket: try NetlinkSocket(strictDumps: true))
            let desired = try RoutePlan.desiredRoutes(cluster: cluster, selfName: nodeName, localAddresses: try sync.localAddresses())
            let plan = RoutePlan(desired: desired, current: try sync.currentRoutes())
            for route in plan.add { print("add      \(route)") }
            for route in plan.replace { print("replace  \(route)") }
            for route in plan.remove { print("remove   \(route.destination)\(route.gateway.map { " via \($0)" } ?? "")") }
            for route in plan.keep { print("keep     \(route)") }
            if !dryRun { try sync.apply(plan) }
            print(
                "\(dryRun ? "would have " : "")added \(plan.add.count), replaced \(plan.replace.count), removed \(plan.remove.count), kept \(plan.keep.count)"
            )
            return 0
        } catch let error as Cluster.Error {
            return fail("\(clusterPath): \(error); the routing table was not changed")
        } catch let error as RoutePlan.Error {
            return fail("\(error); the routing table was not changed")
        } catch {
            return fail("\(error)")
        }
    }

    static func fail(_ message: String, status: Int32 = 1) -> Int32 {
        writeError("bridge-ipam routes: \(message)\n")
        return status
    }

    /// `kubectl get nodes -o json` of 5000 nodes is about 60 MB.
    static let clusterFileLimit = 256 * 1024 * 1024
}

/// Writes to standard error (fd 2) without touching C's `stderr` global.
public func writeError(_ text: String) {
    try? FileIO.writeAll(2, Array(text.utf8), path: "standard error")
}
