import Addresses
import SystemIO
/// Hands out addresses from range sets, host-local style: round robin after the last address
/// handed out, never the gateway, network or broadcast address, one address per range set.
///
/// The caller holds the store's lock (the store exists only inside `LeaseStore.withLock`). Cost does not grow with the number of leases: the walk
/// starts after `last_reserved_ip` and stops at the first address whose file can be created.
public struct Allocator {
    public let rangeSets: [RangeSet]

    public init(rangeSets: [RangeSet]) { self.rangeSets = rangeSets }

    public struct Allocation: Equatable, Sendable {
        public let address: IPAddress
        public let range: IPRange
        public let rangeSetIndex: Int
    }

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case exhausted(RangeSet)
        case requestedNotInRanges(IPAddress)
        case requestedTaken(IPAddress, by: LeaseOwner?)
        case requestedReserved(IPAddress)
        case store(SystemError)

        public var description: String {
            switch self {
            case .exhausted(let set): return "no free address left in range \(set)"
            case .requestedNotInRanges(let ip): return "requested address \(ip) is outside every configured range"
            case .requestedTaken(let ip, let owner):
                return "requested address \(ip) is already allocated"
                    + (owner.map { " to container \($0.containerID) (\($0.ifname))" } ?? "")
            case .requestedReserved(let ip): return "requested address \(ip) is a gateway, network or broadcast address"
            case .store(let error): return "lease store: \(error)"
            }
        }
    }

    /// Allocates one address in every range set (or exactly the `requested` ones), all or nothing:
    /// on failure the leases this call made are released again.
    public func allocate(for owner: LeaseOwner, requested: [IPAddress] = [], in store: borrowing LeaseStore) throws(Error) -> [Allocation] {
        var made: [Allocation] = []
        do throws(Error) {
            var remaining = requested
            for (index, set) in rangeSets.enumerated() {
                let allocation: Allocation
                if let i = remaining.firstIndex(where: { set.range(containing: $0) != nil }) {
                    allocation = try allocateRequested(remaining.remove(at: i), in: set, index: index, for: owner, store: store)
                } else {
                    allocation = try allocateNext(in: set, index: index, for: owner, store: store)
                }
                made.append(allocation)
            }
            if let stray = remaining.first { throw .requestedNotInRanges(stray) }
            return made
        } catch {
            for allocation in made { try? store.release(allocation.address) }
            throw error
        }
    }

    private func allocateRequested(
        _ ip: IPAddress, in set: RangeSet, index: Int, for owner: LeaseOwner,
        store: borrowing LeaseStore
    ) throws(Error) -> Allocation {
        let range = set.range(containing: ip)!
        guard range.isAssignable(ip) else { throw .requestedReserved(ip) }
        let reserved: Bool
        do { reserved = try store.reserve(ip, for: owner) } catch { throw .store(error) }
        guard reserved else { throw .requestedTaken(ip, by: store.owner(of: ip)) }
        return Allocation(address: ip, range: range, rangeSetIndex: index)
    }

    private func allocateNext(in set: RangeSet, index: Int, for owner: LeaseOwner, store: borrowing LeaseStore) throws(Error) -> Allocation
    {
        var iterator = RangeIterator(set: set, after: store.lastReserved(rangeSet: index))
        while let (ip, range) = iterator.next() {
            guard range.isAssignable(ip) else { continue }
            do {
                if try store.reserve(ip, for: owner) {
                    // Only a hint for where the next walk starts: losing it costs a longer walk, never a duplicate.
                    try? store.setLastReserved(ip, rangeSet: index)
                    return Allocation(address: ip, range: range, rangeSetIndex: index)
                }
            } catch { throw .store(error) }
        }
        throw .exhausted(set)
    }
}

/// Visits every address of a range set once, starting after `after` (when it lies in the set)
/// and wrapping around, as host-local does.
struct RangeIterator {
    let set: RangeSet
    private var rangeIndex: Int
    private var current: IPAddress?
    private var startRangeIndex: Int
    private var startAddress: IPAddress
    private var started = false

    init(set: RangeSet, after last: IPAddress?) {
        self.set = set
        if let last, let i = set.ranges.firstIndex(where: { $0.contains(last) }) {
            rangeIndex = i
            current = last
        } else {
            rangeIndex = 0
            current = nil
        }
        startRangeIndex = rangeIndex
        startAddress = set.ranges[0].rangeStart
    }

    mutating func next() -> (IPAddress, IPRange)? {
        let candidate: IPAddress
        if let current, current < set.ranges[rangeIndex].rangeEnd {
            candidate = current.advanced(by: 1)!
        } else if current == nil {
            candidate = set.ranges[rangeIndex].rangeStart
        } else {
            rangeIndex = (rangeIndex + 1) % set.ranges.count
            candidate = set.ranges[rangeIndex].rangeStart
        }
        if !started {
            started = true
            startAddress = candidate
            startRangeIndex = rangeIndex
        } else if candidate == startAddress && rangeIndex == startRangeIndex {
            return nil
        }
        current = candidate
        return (candidate, set.ranges[rangeIndex])
    }
}
