import CNI
import IPAM
import Netlink

/// How lower layers' errors read to a runtime.
extension CNIError {
    static func netlink(_ error: NetlinkError) -> CNIError {
        CNIError(.netlinkFailure, "netlink: \(error.operation) failed", details: error.description)
    }

    static func namespace(_ error: NetworkNamespace.Error) -> CNIError {
        CNIError(.invalidNamespace, error.description)
    }

    static func store(_ error: SystemError) -> CNIError {
        CNIError(.ioFailure, "lease store: \(error.operation) failed", details: error.description)
    }

    static func allocation(_ error: Allocator.Error) -> CNIError {
        switch error {
        case .exhausted: return CNIError(.rangeExhausted, error.description)
        case .requestedNotInRanges, .requestedTaken, .requestedReserved: return CNIError(.addressUnavailable, error.description)
        case .store(let e): return .store(e)
        }
    }
}

/// Runs `body`, turning a netlink error into its CNI error.
func netlink<T>(_ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
    do { return try body() } catch { throw .netlink(error) }
}
