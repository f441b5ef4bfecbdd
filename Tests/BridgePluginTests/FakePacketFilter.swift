#if canImport(Glibc)
import Glibc
#endif
import CNI
import NFTables
import SystemIO
@testable import BridgePlugin

/// The node's nftables in memory: macspoofchk rules by comment, failures by operation name.
final class FakePacketFilter: PacketFilter {
    private(set) var spoofRules: [String: MacSpoofRule] = [:]
    private(set) var journal: [String] = []
    var failures: [String: Int32] = [:]

    private func record(_ operation: String) throws(CNIError) {
        journal.append(operation)
        if let errno = failures[operation] {
            throw CNIError(.netlinkFailure, "nftables: \(operation) failed", details: SystemError(operation, errno: errno).description)
        }
    }

    func addSpoofRule(_ rule: MacSpoofRule) throws(CNIError) {
        try record("addSpoofRule")
        spoofRules[rule.comment] = rule
    }

    func removeSpoofRules(where shouldRemove: (String) -> Bool) throws(CNIError) {
        try record("removeSpoofRules")
        spoofRules = spoofRules.filter { !shouldRemove($0.key) }
    }

    func spoofRuleComments() throws(CNIError) -> [String] {
        try record("spoofRuleComments")
        return Array(spoofRules.keys)
    }
}
