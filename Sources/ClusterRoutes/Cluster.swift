import Addresses
import JSON

/// One node of the cluster: its address on the node network and its slice of the pod network.
public struct ClusterNode: Equatable, Sendable {
    public var name: String
    public var addresses: [IPAddress]
    public var podCIDRs: [IPNetwork]

    public init(name: String, addresses: [IPAddress], podCIDRs: [IPNetwork]) {
        self.name = name
        self.addresses = addresses
        self.podCIDRs = podCIDRs
    }
}

/// The nodes of a cluster, read from either
/// - our small format: `{"nodes":[{"name":"node-1","ip":"192.168.1.3","podCIDR":"10.244.1.0/24"}]}`, or
/// - Kubernetes' NodeList (`kubectl get nodes -o json`): `spec.podCIDR`/`spec.podCIDRs` and the
///   `InternalIP` entries of `status.addresses`.
public struct Cluster: Equatable, Sendable {
    public var nodes: [ClusterNode]

    public init(nodes: [ClusterNode]) { self.nodes = nodes }

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case notJSON(String)
        case unknownFormat
        case malformed(String)
        case missingPodCIDR(node: String)
        case missingAddress(node: String, family: String)
        case invalidValue(node: String, field: String, value: String)
        case duplicateNode(String)
        case overlapping(node: String, IPNetwork, other: String, IPNetwork)

        public var description: String {
            switch self {
            case .notJSON(let why): return "the cluster file is not valid JSON: \(why)"
            case .unknownFormat: return "the cluster file is neither {\"nodes\": [...]} nor a Kubernetes NodeList"
            case .malformed(let why): return "the cluster file is malformed: \(why)"
            case .missingPodCIDR(let node): return "node \(node) has no podCIDR"
            case .missingAddress(let node, let family): return "node \(node) has no \(family) InternalIP address"
            case .invalidValue(let node, let field, let value): return "node \(node): \(field) \"\(value)\" is invalid"
            case .duplicateNode(let node): return "node \(node) is listed twice"
            case .overlapping(let a, let n, let b, let m): return "podCIDR \(n) of node \(a) overlaps podCIDR \(m) of node \(b)"
            }
        }
    }

    public static func parse(_ text: String) throws(Error) -> Cluster {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw .notJSON(error.description) }
        let cluster: Cluster
        if let items = value["items"]?.arrayValue {
            cluster = try Cluster(nodes: items.enumerated().map { (i, item) throws(Error) in try parseKubernetesNode(item, index: i) })
        } else if let nodes = value["nodes"]?.arrayValue {
            cluster = try Cluster(nodes: nodes.enumerated().map { (i, item) throws(Error) in try parseSimpleNode(item, index: i) })
        } else {
            throw .unknownFormat
        }
        try cluster.validate()
        return cluster
    }

    private static func parseSimpleNode(_ value: JSONValue, index: Int) throws(Error) -> ClusterNode {
        guard let o = value.objectValue else { throw .malformed("nodes[\(index)] is not an object") }
        let name = o["name"]?.stringValue ?? "nodes[\(index)]"
        var addresses: [IPAddress] = []
        for text in strings(o["ip"]) + strings(o["ips"]) {
            guard let ip = IPAddress(text) else { throw .invalidValue(node: name, field: "ip", value: text) }
            addresses.append(ip)
        }
        return ClusterNode(
            name: name, addresses: addresses, podCIDRs: try cidrs(strings(o["podCIDR"]) + strings(o["podCIDRs"]), node: name))
    }

    /// One Node object of the Kubernetes API (an item of a NodeList, or a watch event's object).
    public static func parseKubernetesNode(_ value: JSONValue, index: Int = 0) throws(Error) -> ClusterNode {
        guard let o = value.objectValue else { throw .malformed("items[\(index)] is not an object") }
        let name = o["metadata"]?["name"]?.stringValue ?? "items[\(index)]"
        var addresses: [IPAddress] = []
        for entry in o["status"]?["addresses"]?.arrayValue ?? [] where entry["type"]?.stringValue == "InternalIP" {
            guard let text = entry["address"]?.stringValue, let ip = IPAddress(text) else {
                throw .invalidValue(node: name, field: "status.addresses InternalIP", value: entry["address"]?.serialized() ?? "null")
            }
            addresses.append(ip)
        }
        let spec = o["spec"]
        return ClusterNode(
            name: name, addresses: addresses,
            podCIDRs: try cidrs(strings(spec?["podCIDRs"]) + strings(spec?["podCIDR"]), node: name))
    }

    private static func strings(_ value: JSONValue?) -> [String] {
        if let s = value?.stringValue { return [s] }
        return value?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    private static func cidrs(_ texts: [String], node: String) throws(Error) -> [IPNetwork] {
        var result: [IPNetwork] = []
        for text in texts {
            guard let n = IPNetwork(cidr: text), n.isNetworkAddress else { throw .invalidValue(node: node, field: "podCIDR", value: text) }
            if !result.contains(n) { result.append(n) }
        }
        return result
    }

    /// Every node has a podCIDR and an address of each podCIDR's family; names are unique and
    /// no two nodes' podCIDRs overlap.
    public func validate() throws(Error) {
        var seen: Set<String> = []
        for node in nodes {
            guard seen.insert(node.name).inserted else { throw .duplicateNode(node.name) }
            guard !node.podCIDRs.isEmpty else { throw .missingPodCIDR(node: node.name) }
            for cidr in node.podCIDRs where !node.addresses.contains(where: { $0.family == cidr.address.family }) {
                throw .missingAddress(node: node.name, family: cidr.address.family == .v4 ? "IPv4" : "IPv6")
            }
        }
        let all = nodes.flatMap { node in node.podCIDRs.map { (node.name, $0) } }
        for i in all.indices {
            for j in all.indices where j > i && all[i].0 != all[j].0 && all[i].1.overlaps(all[j].1) {
                throw .overlapping(node: all[i].0, all[i].1, other: all[j].0, all[j].1)
            }
        }
    }
}
