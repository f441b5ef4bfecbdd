#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
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

    /// Allocates the attachment's addresses. `whileLocked` runs after the allocation while the
    /// network's lease lock is still held (the ipMasq rule is set up there, serialised with the
    /// DEL that removes it); if it throws, the allocation is undone.
    func add(owner: LeaseOwner, requested: [IPAddress], whileLocked: () throws(CNIError) -> Void = {}) throws(CNIError) -> IPAMOutcome {
        switch self {
        case .builtIn(let ipam, let network):
            let store: LeaseStore
            do { store = try LeaseStore(dataDir: ipam.dataDir, network: network) } catch { throw .store(error) }
            let allocations: [Allocator.Allocation]
            do {
                allocations = try Allocator(rangeSets: ipam.rangeSets).allocate(for: owner, requested: requested, in: store)
            } catch { throw .allocation(error) }
            do { try whileLocked() } catch {
                for allocation in allocations { try? store.release(allocation.address) }
                throw error
            }
            var outcome = IPAMOutcome()
            outcome.ips = allocations.map {
                (IPNetwork(address: $0.address, prefixLength: $0.range.subnet.prefixLength)!, $0.range.gateway)
            }
            outcome.routes = ipam.routes
            if let path = ipam.resolvConf {
                guard let text = readSmallFile(path) else {
                    try? releaseBuiltIn(ipam, network: network, owner: owner)
                    throw CNIError(.invalidConfig, "invalid network configuration: ipam.resolvConf \(path) cannot be read")
                }
                outcome.dns = DNS.parseResolvConf(text)
            }
            return outcome
        case .layer2Only:
            guard requested.isEmpty else {
                throw CNIError(.invalidConfig, "invalid network configuration: a requested IP address needs an ipam section (it is empty: layer 2 only)")
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

    /// Releases the attachment's addresses; succeeds when there are none. `whileLocked` gets
    /// the number of leases the network still holds, under the lease lock.
    func delete(owner: LeaseOwner, whileLocked: (_ remaining: Int) throws(CNIError) -> Void = { _ in }) throws(CNIError) {
        switch self {
        case .builtIn(let ipam, let network): try releaseBuiltIn(ipam, network: network, owner: owner, whileLocked: whileLocked)
        case .delegated(let plugin): _ = try plugin.run(command: .del)
        case .layer2Only: break  // nothing leased (and ipMasq, the only user of whileLocked, is refused)
        }
    }

    private func releaseBuiltIn(_ ipam: IPAMConfig, network: String, owner: LeaseOwner,
                                whileLocked: (_ remaining: Int) throws(CNIError) -> Void = { _ in }) throws(CNIError) {
        let store: LeaseStore
        let remaining: Int
        do {
            store = try LeaseStore(dataDir: ipam.dataDir, network: network)
            remaining = try store.release(owner: owner).remaining
        } catch { throw .store(error) }
        try whileLocked(remaining)
        withExtendedLifetime(store) {}
    }
}

func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
