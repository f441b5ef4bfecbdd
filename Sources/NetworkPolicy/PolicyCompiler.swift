import Addresses

/// Turns the cluster's policies into the `Ruleset` of one node: a chain for each local pod that
/// some policy isolates, in each isolated direction, holding one rule per (policy rule, port);
/// the peers of a policy rule are one address set per family, shared by every pod the policy
/// selects, so a pod that starts or is relabelled elsewhere changes set elements only.
public enum PolicyCompiler {
    public static func compile(_ state: ClusterState, node: String) -> Ruleset {
        var compiler = Compilation(state: state)
        // Which policies select each local pod: each policy looks at its own namespace's pods only.
        var selecting: [ObjectKey: [NetworkPolicy]] = [:]
        for key in state.policies.keys.sorted() {
            let policy = state.policies[key]!
            for pod in compiler.targetsByNamespace[key.namespace] ?? [] where pod.node == node && state.selects(policy, pod) {
                selecting[pod.key, default: []].append(policy)
            }
        }
        for pod in compiler.targets where pod.node == node {
            for direction in Direction.allCases {
                let policies = (selecting[pod.key] ?? []).filter { $0.policyTypes.contains(direction) }
                guard !policies.isEmpty else { continue }
                let name = chainName(direction, pod.key)
                var rules: [Ruleset.Rule] = []
                for policy in policies {
                    for (index, rule) in (direction == .ingress ? policy.ingress : policy.egress).enumerated() {
                        rules += compiler.rules(policy, direction, index, rule, target: pod)
                    }
                }
                compiler.ruleset.chains[name] = Ruleset.Chain(direction: direction, pod: pod.key, rules: rules)
                for ip in pod.ips {
                    if direction == .ingress { compiler.ruleset.ingress[ip] = name } else { compiler.ruleset.egress[ip] = name }
                }
            }
        }
        return compiler.ruleset
    }

    /// `ingress/NAMESPACE/POD`, `egress/NAMESPACE/POD`: `nft list chain inet bridge_ipam_policy
    /// ingress/x/a` shows what reaches pod x/a. Names past nftables' limit are cut and hashed.
    public static func chainName(_ direction: Direction, _ pod: ObjectKey) -> String {
        bounded("\(direction == .ingress ? "ingress" : "egress")/\(pod.namespace)/\(pod.name)")
    }

    static func bounded(_ name: String) -> String {
        guard name.utf8.count > 200 else { return name }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(name.utf8.prefix(180))! + "~" + String(hash, radix: 16)
    }

    static func familyName(_ family: IPAddress.Family) -> String { family == .v4 ? "v4" : "v6" }

    struct Compilation {
        let state: ClusterState
        var ruleset = Ruleset()
        /// Computed once per compilation: every pod in the cluster that takes part in policy.
        let targets: [Pod]
        /// The same by namespace, so a peer looks only at the namespaces it can select.
        let targetsByNamespace: [String: [Pod]]
        /// Peer sets already computed, empty ones included (those are not put in the ruleset).
        var computed: [String: Ruleset.AddressSet] = [:]
        /// Egress rules' named ports, resolved once per (rule, port entry): the rules they become.
        var namedPortRules: [String: [Ruleset.Rule]] = [:]

        init(state: ClusterState) {
            self.state = state
            self.targets = state.targetPods
            self.targetsByNamespace = Dictionary(grouping: targets, by: \.key.namespace)
        }

        /// The pods `peer` (of a policy in `namespace`) selects.
        func pods(selectedBy peer: NetworkPolicy.Peer, namespace: String) -> [Pod] {
            switch peer {
            case .pods(_, let namespaceSelector?):
                return targetsByNamespace.keys.sorted().filter { namespaceSelector.matches(state.namespaceLabels($0)) }
                    .flatMap { targetsByNamespace[$0] ?? [] }.filter { state.peer(peer, in: namespace, selects: $0) }
            case .pods(_, nil):
                return (targetsByNamespace[namespace] ?? []).filter { state.peer(peer, in: namespace, selects: $0) }
            case .ipBlock:
                return targets.filter { state.peer(peer, in: namespace, selects: $0) }
            case .invalid:
                return []
            }
        }

        /// The rules of one policy rule for `target`: one per port entry and peer family.
        mutating func rules(_ policy: NetworkPolicy, _ direction: Direction, _ index: Int, _ rule: NetworkPolicy.Rule, target: Pod)
            -> [Ruleset.Rule]
        {
            let base = "\(policy.key.namespace)/\(policy.key.name)/\(direction == .ingress ? "ingress" : "egress")\(index)"
            let comment = "\(policy.key) \(direction == .ingress ? "ingress" : "egress")[\(index)]"
            let ports: [NetworkPolicy.Port?] = rule.ports.isEmpty ? [nil] : rule.ports
            var result: [Ruleset.Rule] = []
            for (portIndex, port) in ports.enumerated() {
                switch port?.port {
                case nil:
                    result += withPeers(base, rule, policy) { Ruleset.Rule(peers: $0, proto: port?.proto, comment: comment) }
                case .number(let number)?:
                    let end = port?.endPort ?? number
                    guard end >= number else { continue }  // refused by the API server: allows nothing
                    result += withPeers(base, rule, policy) {
                        Ruleset.Rule(peers: $0, proto: port!.proto, ports: number...end, comment: comment)
                    }
                case .name(let name)?:
                    let proto = port!.proto
                    if direction == .ingress {
                        // The destination is the target pod itself.
                        guard let number = target.port(named: name, proto: proto) else { continue }
                        result += withPeers(base, rule, policy) {
                            Ruleset.Rule(peers: $0, proto: proto, ports: number...number, comment: comment + " port \(name)")
                        }
                    } else if let known = namedPortRules["\(base)/port\(portIndex)"] {
                        result += known
                    } else {
                        // The destination decides: one set per number the name stands for.
                        var byNumber: [Int: [IPAddress]] = [:]
                        var candidates: [ObjectKey: Pod] = [:]
                        if rule.peers.isEmpty {
                            for pod in targets { candidates[pod.key] = pod }
                        } else {
                            for peer in rule.peers {
                                for pod in pods(selectedBy: peer, namespace: policy.key.namespace) { candidates[pod.key] = pod }
                            }
                        }
                        for key in candidates.keys.sorted() {
                            let pod = candidates[key]!
                            if let number = pod.port(named: name, proto: proto) { byNumber[number, default: []] += pod.ips }
                        }
                        var resolved: [Ruleset.Rule] = []
                        for number in byNumber.keys.sorted() {
                            for family in [IPAddress.Family.v4, .v6] {
                                let set = Ruleset.AddressSet.of(family: family, networks: byNumber[number]!.map(\.single))
                                guard !set.ranges.isEmpty else { continue }
                                let setName = PolicyCompiler.bounded(
                                    "\(base)/port\(portIndex)/\(number)/\(PolicyCompiler.familyName(family))")
                                ruleset.sets[setName] = set
                                resolved.append(
                                    Ruleset.Rule(peers: setName, proto: proto, ports: number...number, comment: comment + " port \(name)"))
                            }
                        }
                        namedPortRules["\(base)/port\(portIndex)"] = resolved
                        result += resolved
                    }
                }
            }
            return result
        }

        /// `make` once without a peer restriction when the rule has no peers, else once per
        /// family with a non-empty peer set.
        mutating func withPeers(_ base: String, _ rule: NetworkPolicy.Rule, _ policy: NetworkPolicy, _ make: (String?) -> Ruleset.Rule)
            -> [Ruleset.Rule]
        {
            if rule.peers.isEmpty { return [make(nil)] }
            var result: [Ruleset.Rule] = []
            for family in [IPAddress.Family.v4, .v6] {
                let name = PolicyCompiler.bounded("\(base)/\(PolicyCompiler.familyName(family))")
                let set = computed[name] ?? peerSet(rule.peers, namespace: policy.key.namespace, family: family)
                computed[name] = set
                if !set.ranges.isEmpty {
                    ruleset.sets[name] = set
                    result.append(make(name))
                }
            }
            return result
        }

        /// The addresses of every peer: pods selected (all of their addresses of `family`) and
        /// ip blocks without their exceptions.
        func peerSet(_ peers: [NetworkPolicy.Peer], namespace: String, family: IPAddress.Family) -> Ruleset.AddressSet {
            var ranges: [ClosedRange<IPAddress>] = []
            for peer in peers {
                switch peer {
                case .pods:
                    for pod in pods(selectedBy: peer, namespace: namespace) {
                        ranges += pod.ips.filter { $0.family == family }.map(\.single)
                    }
                case .ipBlock(let cidr, let except):
                    ranges += Ruleset.AddressSet.of(family: family, networks: [cidr.range], holes: except.map(\.range)).ranges
                case .invalid:
                    break
                }
            }
            return Ruleset.AddressSet.of(family: family, networks: ranges)
        }
    }
}
