import Addresses
import JSON

/// What the agent knows of the cluster's pods, namespaces and policies, kept up to date from
/// lists and watch events, and the selections policy enforcement is built from.
public struct ClusterState: Sendable {
    public var pods: [ObjectKey: Pod] = [:]
    public var namespaces: [String: Namespace] = [:]
    public var policies: [ObjectKey: NetworkPolicy] = [:]

    public init(pods: [Pod] = [], namespaces: [Namespace] = [], policies: [NetworkPolicy] = []) {
        for pod in pods { self.pods[pod.key] = pod }
        for namespace in namespaces { self.namespaces[namespace.name] = namespace }
        for policy in policies { self.policies[policy.key] = policy }
    }

    public enum Kind: String, Sendable, CaseIterable {
        case pods, namespaces, networkpolicies
    }

    /// Replaces every object of `kind` with the items of a list. Returns whether anything changed.
    @discardableResult
    public mutating func replaceAll(_ kind: Kind, items: [JSONValue]) -> Bool {
        switch kind {
        case .pods:
            let new = Dictionary(items.compactMap(Pod.init(json:)).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
            defer { pods = new }
            return new != pods
        case .namespaces:
            let new = Dictionary(items.compactMap(Namespace.init(json:)).map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            defer { namespaces = new }
            return new != namespaces
        case .networkpolicies:
            let new = Dictionary(items.compactMap(NetworkPolicy.init(json:)).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
            defer { policies = new }
            return new != policies
        }
    }

    /// Applies an ADDED/MODIFIED (`deleted` false) or DELETED event's object. Returns whether
    /// anything enforcement depends on changed.
    @discardableResult
    public mutating func apply(_ kind: Kind, object: JSONValue, deleted: Bool) -> Bool {
        switch kind {
        case .pods:
            guard let key = ObjectKey(metadataOf: object) else { return false }
            let new = deleted ? nil : Pod(json: object)
            defer { pods[key] = new }
            return pods[key] != new
        case .namespaces:
            guard let name = object["metadata"]?["name"]?.stringValue else { return false }
            let new = deleted ? nil : Namespace(json: object)
            defer { namespaces[name] = new }
            return namespaces[name] != new
        case .networkpolicies:
            guard let key = ObjectKey(metadataOf: object) else { return false }
            let new = deleted ? nil : NetworkPolicy(json: object)
            defer { policies[key] = new }
            return policies[key] != new
        }
    }

    // MARK: - Selections

    func namespaceLabels(_ name: String) -> [String: String] { namespaces[name]?.labels ?? [:] }

    /// Pods that take part in policy (running, with their own addresses), in key order.
    public var targetPods: [Pod] { pods.values.filter(\.isPolicyTarget).sorted { $0.key < $1.key } }

    /// Whether `policy` applies to `pod`.
    public func selects(_ policy: NetworkPolicy, _ pod: Pod) -> Bool {
        pod.isPolicyTarget && pod.key.namespace == policy.key.namespace && policy.podSelector.matches(pod.labels)
    }

    /// The policies that apply to `pod` in `direction`, in key order. None: the pod is not
    /// isolated in that direction and everything passes.
    public func policies(isolating pod: Pod, _ direction: Direction) -> [NetworkPolicy] {
        policies.values.filter { $0.policyTypes.contains(direction) && selects($0, pod) }.sorted { $0.key < $1.key }
    }

    /// Whether `peer` of a rule of a policy in `namespace` selects `pod`.
    public func peer(_ peer: NetworkPolicy.Peer, in namespace: String, selects pod: Pod) -> Bool {
        guard pod.isPolicyTarget else { return false }
        switch peer {
        case .pods(let podSelector, let namespaceSelector):
            if let namespaceSelector {
                guard namespaceSelector.matches(namespaceLabels(pod.key.namespace)) else { return false }
            } else if pod.key.namespace != namespace {
                return false
            }
            return podSelector?.matches(pod.labels) ?? true
        case .ipBlock(let cidr, let except):
            return pod.ips.contains { ip in cidr.contains(ip) && !except.contains { $0.contains(ip) } }
        case .invalid:
            return false
        }
    }
}
