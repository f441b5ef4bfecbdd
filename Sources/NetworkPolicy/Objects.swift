import Addresses
import JSON

/// The three kinds of API object NetworkPolicy enforcement reads, decoded from their JSON (as a
/// list's items or a watch event's object). Only the fields enforcement needs are kept.

/// A label selector (`metav1.LabelSelector`): every matchLabels pair and every expression must
/// hold. An empty selector (`{}`) selects everything.
public struct LabelSelector: Equatable, Sendable {
    public enum Operator: String, Sendable {
        case `in` = "In"
        case notIn = "NotIn"
        case exists = "Exists"
        case doesNotExist = "DoesNotExist"
    }
    public struct Requirement: Equatable, Sendable {
        public var key: String
        /// nil for an operator the API server would have refused: the requirement then holds for
        /// no object, so a malformed selector selects nothing rather than everything.
        public var op: Operator?
        public var values: [String]
        public init(key: String, op: Operator?, values: [String] = []) {
            self.key = key
            self.op = op
            self.values = values
        }
    }
    public var matchLabels: [String: String]
    public var requirements: [Requirement]

    public init(matchLabels: [String: String] = [:], requirements: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.requirements = requirements
    }

    public static let everything = LabelSelector()

    public init(json: JSONValue) {
        var labels: [String: String] = [:]
        for (key, value) in json["matchLabels"]?.objectValue?.entries ?? [] { labels[key] = value.stringValue ?? "" }
        let requirements = (json["matchExpressions"]?.arrayValue ?? []).map { expression in
            Requirement(
                key: expression["key"]?.stringValue ?? "", op: expression["operator"]?.stringValue.flatMap(Operator.init(rawValue:)),
                values: (expression["values"]?.arrayValue ?? []).compactMap(\.stringValue))
        }
        self.init(matchLabels: labels, requirements: requirements)
    }

    /// As labels.Selector: NotIn and DoesNotExist hold for an object without the key.
    public func matches(_ labels: [String: String]) -> Bool {
        for (key, value) in matchLabels where labels[key] != value { return false }
        for r in requirements {
            let value = labels[r.key]
            switch r.op {
            case .in?: if value.map({ r.values.contains($0) }) != true { return false }
            case .notIn?: if let value, r.values.contains(value) { return false }
            case .exists?: if value == nil { return false }
            case .doesNotExist?: if value != nil { return false }
            case nil: return false
            }
        }
        return true
    }
}

public enum PortProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"
    /// The IP protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: return 6
        case .udp: return 17
        case .sctp: return 132
        }
    }
}

/// A named port a container declares (`spec.containers[].ports[]`).
public struct ContainerPort: Equatable, Sendable {
    public var name: String
    public var port: Int
    public var proto: PortProtocol
    public init(name: String, port: Int, proto: PortProtocol = .tcp) {
        self.name = name
        self.port = port
        self.proto = proto
    }
}

/// Namespaced objects are keyed by `namespace/name`.
public struct ObjectKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public init(_ namespace: String, _ name: String) {
        self.namespace = namespace
        self.name = name
    }
    public var description: String { "\(namespace)/\(name)" }
    public static func < (l: ObjectKey, r: ObjectKey) -> Bool { (l.namespace, l.name) < (r.namespace, r.name) }

    /// metadata.namespace and metadata.name of an object, when it has both.
    public init?(metadataOf object: JSONValue) {
        guard let name = object["metadata"]?["name"]?.stringValue, !name.isEmpty else { return nil }
        self.init(object["metadata"]?["namespace"]?.stringValue ?? "", name)
    }
}

func objectLabels(_ object: JSONValue) -> [String: String] {
    var labels: [String: String] = [:]
    for (key, value) in object["metadata"]?["labels"]?.objectValue?.entries ?? [] { labels[key] = value.stringValue ?? "" }
    return labels
}

public struct Pod: Equatable, Sendable {
    public var key: ObjectKey
    public var labels: [String: String]
    /// status.podIPs (or status.podIP); empty until the pod has its network.
    public var ips: [IPAddress]
    public var node: String
    public var ports: [ContainerPort]
    /// Host-network pods share their node's address: policy neither selects them nor sees them
    /// as pods (their traffic is the node's).
    public var hostNetwork: Bool
    /// Succeeded or Failed: its address may already belong to a new pod.
    public var finished: Bool

    public init(
        key: ObjectKey, labels: [String: String] = [:], ips: [IPAddress] = [], node: String = "", ports: [ContainerPort] = [],
        hostNetwork: Bool = false, finished: Bool = false
    ) {
        self.key = key
        self.labels = labels
        self.ips = ips
        self.node = node
        self.ports = ports
        self.hostNetwork = hostNetwork
        self.finished = finished
    }

    public init?(json: JSONValue) {
        guard let key = ObjectKey(metadataOf: json) else { return nil }
        var ips = (json["status"]?["podIPs"]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue.flatMap(IPAddress.init) }
        if ips.isEmpty, let single = json["status"]?["podIP"]?.stringValue.flatMap(IPAddress.init) { ips = [single] }
        var ports: [ContainerPort] = []
        for container in (json["spec"]?["containers"]?.arrayValue ?? []) + (json["spec"]?["initContainers"]?.arrayValue ?? []) {
            for port in container["ports"]?.arrayValue ?? [] {
                guard let name = port["name"]?.stringValue, !name.isEmpty, let number = port["containerPort"]?.intValue else { continue }
                let proto = PortProtocol(rawValue: port["protocol"]?.stringValue ?? "TCP") ?? .tcp
                ports.append(ContainerPort(name: name, port: number, proto: proto))
            }
        }
        let phase = json["status"]?["phase"]?.stringValue
        self.init(
            key: key, labels: objectLabels(json), ips: ips, node: json["spec"]?["nodeName"]?.stringValue ?? "", ports: ports,
            hostNetwork: json["spec"]?["hostNetwork"]?.boolValue ?? false, finished: phase == "Succeeded" || phase == "Failed")
    }

    /// Whether policy applies to it: it has its own addresses and is running.
    public var isPolicyTarget: Bool { !hostNetwork && !finished && !ips.isEmpty }

    /// The number a named port stands for on this pod, if it declares it for `proto`.
    public func port(named name: String, proto: PortProtocol) -> Int? {
        ports.first { $0.name == name && $0.proto == proto }?.port
    }
}

public struct Namespace: Equatable, Sendable {
    public var name: String
    public var labels: [String: String]
    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
    public init?(json: JSONValue) {
        guard let name = json["metadata"]?["name"]?.stringValue, !name.isEmpty else { return nil }
        self.init(name: name, labels: objectLabels(json))
    }
}

public enum Direction: String, Sendable, Hashable, CaseIterable {
    case ingress = "Ingress"
    case egress = "Egress"
}

public struct NetworkPolicy: Equatable, Sendable {
    /// One `from` / `to` entry.
    public enum Peer: Equatable, Sendable {
        /// podSelector and/or namespaceSelector; nil means the field is absent. With only a
        /// podSelector, the pods are those of the policy's namespace; both mean AND.
        case pods(podSelector: LabelSelector?, namespaceSelector: LabelSelector?)
        case ipBlock(cidr: IPNetwork, except: [IPNetwork])
        /// A peer the API server would have refused (no field, or a malformed ipBlock): matches nothing.
        case invalid
    }
    public enum PortValue: Equatable, Sendable {
        case number(Int)
        case name(String)
    }
    public struct Port: Equatable, Sendable {
        public var proto: PortProtocol
        /// nil: every port of the protocol.
        public var port: PortValue?
        public var endPort: Int?
        public init(proto: PortProtocol = .tcp, port: PortValue? = nil, endPort: Int? = nil) {
            self.proto = proto
            self.port = port
            self.endPort = endPort
        }
    }
    public struct Rule: Equatable, Sendable {
        /// Empty (or absent in the object): every port of every protocol.
        public var ports: [Port]
        /// Empty (or absent): every peer.
        public var peers: [Peer]
        public init(ports: [Port] = [], peers: [Peer] = []) {
            self.ports = ports
            self.peers = peers
        }
    }

    public var key: ObjectKey
    public var podSelector: LabelSelector
    public var ingress: [Rule]
    public var egress: [Rule]
    public var policyTypes: Set<Direction>

    public init(
        key: ObjectKey, podSelector: LabelSelector = .everything, ingress: [Rule] = [], egress: [Rule] = [],
        policyTypes: Set<Direction>? = nil
    ) {
        self.key = key
        self.podSelector = podSelector
        self.ingress = ingress
        self.egress = egress
        self.policyTypes = policyTypes ?? NetworkPolicy.defaultPolicyTypes(hasEgressRules: !egress.isEmpty)
    }

    /// As the API server defaults an empty policyTypes: Ingress always, Egress when there are egress rules.
    public static func defaultPolicyTypes(hasEgressRules: Bool) -> Set<Direction> {
        hasEgressRules ? [.ingress, .egress] : [.ingress]
    }

    public init?(json: JSONValue) {
        guard let key = ObjectKey(metadataOf: json) else { return nil }
        let spec = json["spec"] ?? .object([:])
        func rules(_ field: String, _ peerField: String) -> [Rule] {
            (spec[field]?.arrayValue ?? []).map { rule in
                Rule(
                    ports: (rule["ports"]?.arrayValue ?? []).map(NetworkPolicy.port(json:)),
                    peers: (rule[peerField]?.arrayValue ?? []).map(NetworkPolicy.peer(json:)))
            }
        }
        let types = (spec["policyTypes"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(Direction.init(rawValue:)) }
        let egress = rules("egress", "to")
        self.init(
            key: key, podSelector: spec["podSelector"].map(LabelSelector.init(json:)) ?? .everything, ingress: rules("ingress", "from"),
            egress: egress, policyTypes: types.isEmpty ? nil : Set(types))
    }

    static func peer(json: JSONValue) -> Peer {
        if let block = json["ipBlock"] {
            guard let cidr = block["cidr"]?.stringValue.flatMap({ IPNetwork(cidr: $0) }) else { return .invalid }
            var except: [IPNetwork] = []
            for text in block["except"]?.arrayValue ?? [] {
                guard let network = text.stringValue.flatMap({ IPNetwork(cidr: $0) }) else { return .invalid }
                except.append(network.masked)
            }
            return .ipBlock(cidr: cidr.masked, except: except)
        }
        let pods = json["podSelector"].map(LabelSelector.init(json:))
        let namespaces = json["namespaceSelector"].map(LabelSelector.init(json:))
        if pods == nil && namespaces == nil { return .invalid }
        return .pods(podSelector: pods, namespaceSelector: namespaces)
    }

    static func port(json: JSONValue) -> Port {
        let proto = PortProtocol(rawValue: json["protocol"]?.stringValue ?? "TCP") ?? .tcp
        var value: PortValue?
        if let n = json["port"]?.intValue {
            value = .number(n)
        } else if let s = json["port"]?.stringValue {
            value = Int(s).map(PortValue.number) ?? .name(s)
        }
        return Port(proto: proto, port: value, endPort: json["endPort"]?.intValue)
    }
}
