#!/usr/bin/env python3
"""The semantics of networking.k8s.io/v1 NetworkPolicy, written from the API reference, as the
truth the namespace tests compare the kernel's verdicts with. Literal and slow on purpose; it
shares nothing with the agent's Swift code.

An endpoint is ("pod", "ns/name"), ("node", "nodeN") or ("host", "address").
"""


def labels(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def selector_matches(selector, lbls):
    """metav1.LabelSelector: matchLabels and matchExpressions ANDed; {} matches everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if lbls.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and lbls.get(key) not in values:
            return False
        if op == "NotIn" and key in lbls and lbls[key] in values:
            return False
        if op == "Exists" and key not in lbls:
            return False
        if op == "DoesNotExist" and key in lbls:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def in_cidr(ip, cidr):
    import ipaddress
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)


class Model:
    def __init__(self, pods, namespaces, policies, nodes):
        self.pods = {f'{p["metadata"]["namespace"]}/{p["metadata"]["name"]}': p for p in pods}
        self.namespaces = {n["metadata"]["name"]: n for n in namespaces}
        self.policies = policies
        self.nodes = nodes  # name -> address

    def ip(self, endpoint):
        kind, name = endpoint
        if kind == "pod":
            return self.pods[name]["status"]["podIP"]
        if kind == "node":
            return self.nodes[name]
        return name

    @staticmethod
    def policy_types(policy):
        """policyTypes, or as defaulted: Ingress always, Egress when the policy has egress rules."""
        spec = policy.get("spec") or {}
        if spec.get("policyTypes"):
            return spec["policyTypes"]
        return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]

    def selecting(self, pod_key, direction):
        ns = pod_key.split("/")[0]
        pod = self.pods[pod_key]
        return [p for p in self.policies
                if p["metadata"]["namespace"] == ns and direction in self.policy_types(p)
                and selector_matches((p.get("spec") or {}).get("podSelector") or {}, labels(pod))]

    def peer_matches(self, peer, policy_ns, endpoint):
        if "ipBlock" in peer:
            ip = self.ip(endpoint)
            block = peer["ipBlock"]
            return in_cidr(ip, block["cidr"]) and not any(in_cidr(ip, e) for e in block.get("except") or [])
        if endpoint[0] != "pod":
            return False  # pod and namespace selectors select pods only
        ns = endpoint[1].split("/")[0]
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"] or {}, labels(self.namespaces.get(ns, {}))):
                return False
        elif ns != policy_ns:
            return False
        if "podSelector" in peer:
            return selector_matches(peer["podSelector"] or {}, labels(self.pods[endpoint[1]]))
        return True

    def port_matches(self, ports, destination, proto, port):
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != proto:
                continue
            if "port" not in p:
                return True
            if isinstance(p["port"], int):
                if p["port"] <= port <= p.get("endPort", p["port"]):
                    return True
                continue
            # A named port: the destination pod's container port of that name and protocol.
            if destination[0] != "pod":
                continue
            for c in self.pods[destination[1]]["spec"].get("containers", []):
                for cp in c.get("ports") or []:
                    if cp.get("name") == p["port"] and cp.get("protocol", "TCP") == proto and cp["containerPort"] == port:
                        return True
        return False

    def rules_allow(self, policies, direction, self_ns, peer_endpoint, destination, proto, port):
        field, peers_field = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in (policy.get("spec") or {}).get(field) or []:
                peers = rule.get(peers_field) or []
                if peers and not any(self.peer_matches(peer, self_ns, peer_endpoint) for peer in peers):
                    continue
                if self.port_matches(rule.get("ports") or [], destination, proto, port):
                    return True
        return False

    def allows(self, source, destination, proto, port):
        """A new connection: the source pod's egress (if it is isolated for egress) and the
        destination pod's ingress (if isolated for ingress) must both allow it; a node's own
        pods always accept it (kubelet's probes)."""
        if source[0] == "pod":
            policies = self.selecting(source[1], "Egress")
            if policies and not self.rules_allow(policies, "Egress", source[1].split("/")[0], destination, destination, proto, port):
                return False
        if destination[0] == "pod":
            if source[0] == "node" and self.pods[destination[1]]["spec"].get("nodeName") == source[1]:
                return True
            policies = self.selecting(destination[1], "Ingress")
            if policies and not self.rules_allow(policies, "Ingress", destination[1].split("/")[0], source, destination, proto, port):
                return False
        return True
