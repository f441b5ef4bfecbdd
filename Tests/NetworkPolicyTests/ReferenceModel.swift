import Addresses
import JSON

/// The semantics of networking.k8s.io/v1 NetworkPolicy written straight from the API reference,
/// on the raw objects, with nothing shared with the compiler: the truth the compiled rules are
/// compared with. Deliberately slow and literal.
struct ReferenceModel {
    var pods: [JSONValue]
    var namespaces: [JSONValue]
    var policies: [JSONValue]

    enum Endpoint {
        case pod(String, String)  // namespace, name
        case host(String)  // an address outside every pod, e.g. another node or a host outside the cluster
        case node(String, String)  // a node itself: name, address
    }

    func pod(_ ns: String, _ name: String) -> JSONValue? {
        pods.first { $0["metadata"]?["namespace"]?.stringValue == ns && $0["metadata"]?["name"]?.stringValue == name }
    }

    static func labels(_ o: JSONValue?) -> [String: String] {
        var r: [String: String] = [:]
        for (k, v) in o?["metadata"]?["labels"]?.objectValue?.entries ?? [] { r[k] = v.stringValue }
        return r
    }

    /// "A label selector ... The result of matchLabels and matchExpressions are ANDed. An empty
    /// label selector matches all objects."
    static func selectorMatches(_ selector: JSONValue, _ labels: [String: String]) -> Bool {
        for (k, v) in selector["matchLabels"]?.objectValue?.entries ?? [] where labels[k] != v.stringValue { return false }
        for e in selector["matchExpressions"]?.arrayValue ?? [] {
            let key = e["key"]!.stringValue!
            let values = (e["values"]?.arrayValue ?? []).map { $0.stringValue! }
            switch e["operator"]!.stringValue! {
            case "In": if !(labels[key].map { values.contains($0) } ?? false) { return false }
            case "NotIn": if let v = labels[key], values.contains(v) { return false }
            case "Exists": if labels[key] == nil { return false }
            case "DoesNotExist": if labels[key] != nil { return false }
            default: return false
            }
        }
        return true
    }

    func ip(of e: Endpoint) -> String {
        switch e {
        case .pod(let ns, let n): return pod(ns, n)!["status"]!["podIP"]!.stringValue!
        case .host(let a): return a
        case .node(_, let a): return a
        }
    }

    /// "policyTypes ... If this field is not specified, it will default based on the existence
    /// of ingress or egress rules; policies that contain an egress section are assumed to affect
    /// egress, and all policies (whether or not they contain an ingress section) are assumed to
    /// affect ingress."
    static func types(_ p: JSONValue) -> [String] {
        if let t = p["spec"]?["policyTypes"]?.arrayValue, !t.isEmpty { return t.map { $0.stringValue! } }
        return (p["spec"]?["egress"]?.arrayValue ?? []).isEmpty ? ["Ingress"] : ["Ingress", "Egress"]
    }

    func policiesSelecting(_ ns: String, _ name: String, _ type: String) -> [JSONValue] {
        guard let p = pod(ns, name) else { return [] }
        return policies.filter {
            $0["metadata"]?["namespace"]?.stringValue == ns && ReferenceModel.types($0).contains(type)
                && ReferenceModel.selectorMatches($0["spec"]?["podSelector"] ?? .object([:]), ReferenceModel.labels(p))
        }
    }

    /// Whether a peer entry (from/to) of a policy in `policyNS` covers `e`.
    func peerMatches(_ peer: JSONValue, policyNS: String, _ e: Endpoint) -> Bool {
        if let block = peer["ipBlock"] {
            let a = IPAddress(ip(of: e))!
            guard IPNetwork(cidr: block["cidr"]!.stringValue!)!.masked.contains(a) else { return false }
            return !(block["except"]?.arrayValue ?? []).contains { IPNetwork(cidr: $0.stringValue!)!.masked.contains(a) }
        }
        guard case .pod(let ns, let name) = e, let p = pod(ns, name) else { return false }
        if let nsSel = peer["namespaceSelector"] {
            let nsObject = namespaces.first { $0["metadata"]?["name"]?.stringValue == ns }
            if !ReferenceModel.selectorMatches(nsSel, ReferenceModel.labels(nsObject)) { return false }
        } else if ns != policyNS {
            return false
        }
        if let podSel = peer["podSelector"] { return ReferenceModel.selectorMatches(podSel, ReferenceModel.labels(p)) }
        return true
    }

    /// "ports ... If this field is empty or missing, this rule matches all ports." A named port
    /// is looked up on the destination pod.
    func portMatches(_ ports: [JSONValue], destination: Endpoint, proto: String, port: Int) -> Bool {
        if ports.isEmpty { return true }
        return ports.contains { p in
            guard (p["protocol"]?.stringValue ?? "TCP") == proto else { return false }
            guard let value = p["port"] else { return true }
            if let n = value.intValue { return port >= n && port <= (p["endPort"]?.intValue ?? n) }
            let name = value.stringValue!
            guard case .pod(let ns, let pn) = destination, let d = pod(ns, pn) else { return false }
            for c in d["spec"]?["containers"]?.arrayValue ?? [] {
                for cp in c["ports"]?.arrayValue ?? []
                where cp["name"]?.stringValue == name && (cp["protocol"]?.stringValue ?? "TCP") == proto
                    && cp["containerPort"]?.intValue == port
                {
                    return true
                }
            }
            return false
        }
    }

    /// Whether a new connection from `source` to `destination` on `proto`/`port` is allowed:
    /// the source's egress policies (if any select it) and the destination's ingress policies
    /// (if any) must each allow it. A node's connections to its own pods always are.
    func allows(_ source: Endpoint, _ destination: Endpoint, proto: String, port: Int) -> Bool {
        if case .pod(let ns, let n) = source {
            let egress = policiesSelecting(ns, n, "Egress")
            if !egress.isEmpty {
                let ok = egress.contains { p in
                    (p["spec"]?["egress"]?.arrayValue ?? []).contains { rule in
                        let to = rule["to"]?.arrayValue ?? []
                        let peerOK =
                            to.isEmpty
                            || to.contains { peerMatches($0, policyNS: ns, destination) }
                        return peerOK && portMatches(rule["ports"]?.arrayValue ?? [], destination: destination, proto: proto, port: port)
                    }
                }
                if !ok { return false }
            }
        }
        if case .pod(let ns, let n) = destination {
            if case .node(let nodeName, _) = source, pod(ns, n)?["spec"]?["nodeName"]?.stringValue == nodeName { return true }
            let ingress = policiesSelecting(ns, n, "Ingress")
            if !ingress.isEmpty {
                return ingress.contains { p in
                    (p["spec"]?["ingress"]?.arrayValue ?? []).contains { rule in
                        let from = rule["from"]?.arrayValue ?? []
                        let peerOK = from.isEmpty || from.contains { peerMatches($0, policyNS: ns, source) }
                        return peerOK && portMatches(rule["ports"]?.arrayValue ?? [], destination: destination, proto: proto, port: port)
                    }
                }
            }
        }
        return true
    }
}
