import CNI
import IPAM
import SystemIO
import Netlink
import Addresses

/// GC: releases every lease of this network whose attachment the runtime no longer lists,
/// deletes such attachments' host veths, and with ipMasq the network's rule once no lease is left. Keeps going past individual failures
/// and reports them together.
struct GarbageCollect {
    let context: Context
    init(_ context: Context) { self.context = context }

    func run() throws(CNIError) {
        try context.require(.v1_1_0, for: "GC")
        let config = context.config
        guard config.ipam.isBuiltIn || config.ipam.isLayer2Only else {
            _ = try DelegatedPlugin(type: config.ipam.type, environment: context.environment, stdin: context.stdin).run(command: .gc)
            return
        }
        let valid = config.validAttachments ?? []
        var failures: [String] = []
        if config.ipam.isBuiltIn { releaseLeases(valid: valid, failures: &failures) }
        // Host veths of attachments the runtime no longer lists (their pods may still exist).
        do throws(CNIError) {
            let node = try context.namespaces.node()
            for link in try node.links() {
                guard let tag = link.alias.flatMap(HostVethTag.init(alias:)), tag.network == config.name,
                    !valid.contains(where: { $0.containerID == tag.owner.containerID && $0.ifname == tag.owner.ifname })
                else { continue }
                do throws(CNIError) { try node.deleteLink(index: link.index, name: link.name) } catch { failures.append(error.reason) }
            }
        } catch {
            failures.append(error.reason)
        }
        if config.macSpoofCheck {
            do throws(CNIError) {
                try MacSpoofCheck(network: config.name, filter: context.namespaces.packetFilter()).removeAll(except: valid)
            } catch { failures.append(error.reason) }
        }
        if !failures.isEmpty {
            throw CNIError(
                .ioFailure, "GC could not release \(failures.count) lease(s) or rule(s)", details: failures.joined(separator: "; "))
        }
    }

    /// Releases the leases of unlisted attachments and, with ipMasq, the rules once none is
    /// left, all under one lease lock.
    private func releaseLeases(valid: [LeaseOwner], failures: inout [String]) {
        let config = context.config
        do throws(CNIError) {
            try config.ipam.withLeases(network: config.name) { (store) throws(CNIError) in
                let leases: [(ip: IPAddress, owner: LeaseOwner?)]
                do throws(SystemError) { leases = try store.leases() } catch { throw .store(error) }
                for lease in leases {
                    let kept =
                        lease.owner.map { owner in
                            valid.contains { $0.containerID == owner.containerID && (owner.ifname.isEmpty || $0.ifname == owner.ifname) }
                        } ?? false
                    if kept { continue }
                    do throws(SystemError) { try store.release(lease.ip) } catch { failures.append(error.description) }
                }
                if config.ipMasq {
                    do throws(CNIError) {
                        let leasesRemain: Bool
                        do throws(SystemError) { leasesRemain = try store.hasLeases() } catch { throw CNIError.store(error) }
                        if !leasesRemain { try Masquerade(config: config, filter: context.namespaces.packetFilter()).remove() }
                    } catch {
                        failures.append(error.reason)
                    }
                }
            }
        } catch {
            failures.append(error.reason)
        }
    }
}
