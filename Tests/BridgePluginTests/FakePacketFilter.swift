#if canImport(Glibc)
import Glibc
#endif
import CNI
import NFTables
import SystemIO
@testable import BridgePlugin

/// The node's nftables in memory: masquerade rules by network, macspoofchk rules by comment,
/// failures by operation name.
final class FakePacketFilter: PacketFilter {
    private(set) var masquerade: [String: [MasqueradeRule]] = [:]
    private(set) var spoofRules: [String: MacSpoofRule] = [:]
    private(set) var journal: [String] = []
    var failures: [String: Int32] = [:]

    private func record(_ operation: String) throws(CNIError) {
        journal.append(operation)
        if let errno = failures[operation] {
            throw CNIError(.netlinkFailure, "nftables: \(operation) failed", details: SystemError(operation, errno: errno).description)
        }
    }

    func ensureMasquerade(_ rules: [MasqueradeRule]) throws(CNIError) {
        try record("ensureMasquerade")
        for rule in rules { masquerade[rule.network, default: []].removeAll { $0.family == rule.family } }
        for rule in rules { masquerade[rule.network, default: []].append(rule) }
    }

    func removeMasquerade(network: String) throws(CNIError) {
        try record("removeMasquerade")
        masquerade[network] = nil
    }

    func containsMasquerade(_ rules: [MasqueradeRule]) throws(CNIError) -> Bool {
        try record("containsMasquerade")
        return rules.allSatisfy { rule in masquerade[rule.network]?.contains(rule) ?? false }
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
