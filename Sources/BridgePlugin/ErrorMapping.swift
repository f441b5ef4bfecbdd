import CNI
import IPAM
import Netlink
import SystemIO

/// How lower layers' errors read to a runtime.
extension CNIError {
    static func netlink(_ error: NetlinkError) -> CNIError {
        CNIError(.netlinkFailure, "netlink: \(error.operation) failed", details: error.description)
    }

    static func namespace(_ error: SystemError) -> CNIError {
        CNIError(.invalidNamespace, "cannot use network namespace \(error.path)", details: error.description)
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

extension CNIError {
    /// This error with what a rollback could not undo added to its details, so that the runtime
    /// (and whoever reads its log) learns what was left behind.
    func addingRollbackFailures(_ failures: [String]) -> CNIError {
        guard !failures.isEmpty else { return self }
        var error = self
        let note = "rollback left behind: " + failures.joined(separator: "; ")
        error.details = details.isEmpty ? note : details + "; " + note
        return error
    }

    /// The cause without the code: the lower layer's own text when there is one.
    var reason: String { details.isEmpty ? msg : details }
}
