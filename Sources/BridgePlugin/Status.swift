#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
import JSON
import SystemIO
import Netlink
import Addresses

/// STATUS: whether an ADD could be served now: the lease directory is writable, some range set
/// still has a free address, and the bridge name is free or a bridge.
struct Status {
    let context: Context
    init(_ context: Context) { self.context = context }

    func unavailable(_ msg: String, details: String = "") -> CNIError { CNIError(.notAvailable, msg, details: details) }

    func run() throws(CNIError) {
        try context.require(.v1_1_0, for: "STATUS")
        let config = context.config
        if config.ipam.isBuiltIn {
            let unusable = { (error: SystemError) in unavailable("lease directory is not usable", details: error.description) }
            let leases = try LeaseStore.withLock(dataDir: config.ipam.dataDir, network: config.name, failure: unusable) {
                (store) throws(CNIError) -> [(ip: IPAddress, owner: LeaseOwner?)] in
                do throws(SystemError) {
                    try store.checkWritable()
                    return try store.leases()
                } catch { throw unusable(error) }
            }
            for set in config.ipam.rangeSets {
                let held = leases.filter { lease in set.ranges.contains { $0.isAssignable(lease.ip) } }.count
                if UInt128(held) >= set.assignableCount {
                    throw unavailable("no free address left in range \(set)", details: "\(held) addresses are leased")
                }
            }
        } else if !config.ipam.isLayer2Only {
            _ = try DelegatedPlugin(type: config.ipam.type, environment: context.environment, stdin: context.stdin).run(command: .status)
        }
        if let link = try context.namespaces.node().link(named: config.bridge), link.kind != "bridge" {
            throw unavailable("\(config.bridge) exists but is not a bridge")
        }
        if let error = BridgeNetfilterCheck.unavailable(on: try context.namespaces.node()) { throw error }
    }
}

extension Status {
    /// STATUS's answer when the config cannot be read because the node's subnet file is missing
    /// or empty: code 50, the plugin cannot serve ADD *now* (its provisioner has not written the
    /// file yet), rather than the config error (code 7) that ADD gets. Nil when the file is there
    /// with content, so that a malformed one stays a config error.
    static func unprovisioned(config object: JSONObject) -> CNIError? {
        guard let path = object["ipam"]?["subnetFile"]?.stringValue else { return nil }
        let problem: String
        do throws(SystemError) {
            let bytes = try FileIO.read(path, limit: 64 * 1024)
            guard String(decoding: bytes, as: UTF8.self).trimmingWhitespace().isEmpty else { return nil }
            problem = "is empty"
        } catch {
            guard error.errno == ENOENT else { return nil }
            problem = "does not exist"
        }
        return CNIError(
            .notAvailable, "the node's subnet file \(path) \(problem)",
            details: "its provisioner (bridge-ipam-agent, flannel) has not written this node's pod subnet yet")
    }
}
