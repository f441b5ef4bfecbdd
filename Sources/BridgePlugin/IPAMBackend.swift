#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
import SystemIO
import JSON
import Addresses

/// What IPAM hands the plugin for one attachment.
struct IPAMOutcome {
    var ips: [(address: IPNetwork, gateway: IPAddress?)] = []
    var routes: [Route] = []
    var dns = DNS()
}

/// The built-in host-local allocator, a delegated IPAM plugin found in CNI_PATH, or none at
/// all (layer 2 only: `"ipam": {}`).
enum IPAMBackend {
    case builtIn(IPAMConfig, network: String)
    case delegated(DelegatedPlugin)
    case layer2Only

    init(config: NetworkConfig, environment: Environment, stdin: [UInt8]) {
        if config.ipam.isLayer2Only {
            self = .layer2Only
        } else if config.ipam.isBuiltIn {
            self = .builtIn(config.ipam, network: config.name)
        } else {
            self = .delegated(DelegatedPlugin(type: config.ipam.type, environment: environment, stdin: stdin))
        }
    }

    /// Allocates the attachment's addresses. With `masquerade` the network's ipMasq rule is made
    /// present under the same lease lock, serialised with the DEL that removes it; if that
    /// fails, the allocation is undone before the lock is let go.
    func add(owner: LeaseOwner, requested: [IPAddress], masquerade: Masquerade? = nil) throws(CNIError) -> IPAMOutcome {
        switch self {
        case .builtIn(let ipam, let network):
            var outcome = IPAMOutcome()
            // Read before anything is allocated: a bad resolvConf is a config error that changes nothing.
            if let path = ipam.resolvConf {
                guard let text = FileIO.readText(path, limit: 64 * 1024) else {
                    throw CNIError(
                        .invalidConfig,
                        "invalid network configuration: ipam.resolvConf \(path) cannot be read (a readable regular file of at most 64 KiB is needed)"
                    )
                }
                outcome.dns = DNS.parseResolvConf(text)
            }
            let allocations = try ipam.withLeases(network: network) { (store) throws(CNIError) -> [Allocator.Allocation] in
                let allocations: [Allocator.Allocation]
                do throws(Allocator.Error) {
                    allocations = try Allocator(rangeSets: ipam.rangeSets).allocate(for: owner, requested: requested, in: store)
                } catch { throw .allocation(error) }
                do throws(CNIError) { try masquerade?.ensure() } catch {
                    for allocation in allocations { try? store.release(allocation.address) }
                    throw error
                }
                store.recordHolder(owner, of: allocations.map(\.address))
                return allocations
            }
            outcome.ips = allocations.map {
                (IPNetwork(address: $0.address, prefixLength: $0.range.subnet.prefixLength)!, $0.range.gateway)
            }
            outcome.routes = ipam.routes
            return outcome
        case .layer2Only:
            guard requested.isEmpty else {
                throw CNIError(
                    .invalidConfig,
                    "invalid network configuration: a requested IP address needs an ipam section (it is empty: layer 2 only)")
            }
            return IPAMOutcome()
        case .delegated(let plugin):
            guard requested.isEmpty else {
                throw CNIError(.unsupportedField, "a requested IP address can only be honoured by the built-in host-local IPAM")
            }
            let value = try plugin.run(command: .add)
            let result = try CNIResult.parse(value ?? .null, what: "the result of IPAM plugin \(plugin.type)")
            var outcome = IPAMOutcome()
            outcome.ips = result.ips.map { ($0.address, $0.gateway) }
            outcome.routes = result.routes
            outcome.dns = result.dns
            return outcome
        }
    }

    /// Releases the attachment's addresses; succeeds when there are none. The store's index and
    /// `addresses` (from a DEL's prevResult, or what a failed ADD allocated) name them, and each
    /// is released only if its lease names `owner`, so the cost does not grow with the number of
    /// leases; only after another writer changed the directory is every lease file read, once
    /// (see `LeaseStore`). With `masquerade` the network's rule goes with its last lease, under
    /// the same lock.
    /// Returns the addresses it released (none for a delegated IPAM).
    @discardableResult
    func delete(owner: LeaseOwner, addresses: [IPAddress] = [], masquerade: Masquerade? = nil) throws(CNIError) -> [IPAddress] {
        switch self {
        case .builtIn(let ipam, let network):
            // Filled inside: a closure that returns nothing costs no generic metadata.
            var released: [IPAddress] = []
            try ipam.withLeases(network: network) { (store) throws(CNIError) in
                let leasesRemain: Bool
                do throws(SystemError) {
                    released = try store.release(owner: owner, hinted: addresses)
                    leasesRemain = masquerade == nil ? true : try store.hasLeases()
                } catch { throw .store(error) }
                if !leasesRemain { try masquerade?.remove() }
            }
            return released
        case .delegated(let plugin):
            _ = try plugin.run(command: .del)
            return []
        case .layer2Only: return []  // nothing leased (and ipMasq is refused without IPAM)
        }
    }
}

extension IPAMConfig {
    /// Runs `body` with the network's lease store, under its lock; the lock ends with `body`.
    func withLeases<Result>(network: String, _ body: (borrowing LeaseStore) throws(CNIError) -> Result) throws(CNIError) -> Result {
        try LeaseStore.withLock(dataDir: dataDir, network: network, failure: CNIError.store, body)
    }
}
