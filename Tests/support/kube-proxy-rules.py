#!/usr/bin/env python3
"""kube-proxy's rules for a few Services, in the shapes kube-proxy itself writes them.

  kube-proxy-rules.py iptables 4|6 CLUSTER_CIDR SERVICES.json   iptables-restore input (--noflush)
  kube-proxy-rules.py nftables 4|6 CLUSTER_CIDR SERVICES.json   nft -f input: table ip|ip6 kube-proxy

SERVICES.json: [{"namespace", "name", "portName", "protocol": "tcp"|"udp", "clusterIP", "port",
"nodePort" (optional), "endpoints": [{"ip", "port"}]}]. The shapes follow kubernetes
pkg/proxy/iptables/proxier.go (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-*, KUBE-EXT-* for
NodePorts, KUBE-MARK-MASQ and KUBE-POSTROUTING with the 0x4000 mark, KUBE-FORWARD in the filter
table; chain names are kube-proxy's sha256/base32 hashes) and pkg/proxy/nftables/proxier.go
(base chains at dstnat-10/dstnat/srcnat, the service-ips and service-nodeports verdict maps,
service-/external-/endpoint- chains, numgen load balancing, mark-for-masquerade and masquerading),
with the local traffic detector by cluster CIDR and nodePortAddresses unset (every local address).
The jump rules from the built-in iptables chains are the caller's (iptables -I, as kube-proxy's
EnsureRule does).
"""
import base64
import hashlib
import json
import sys

MARK = "0x4000"


def b32(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def host_port(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def iptables(family, cluster_cidr, services):
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MARK}/{MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MARK}",
    ]
    services_rules, nodeport_rules, per_service = [], [], []
    for s in services:
        name = f"{s['namespace']}/{s['name']}:{s['portName']}"
        proto = s["protocol"]
        svc = "KUBE-SVC-" + b32(name + proto)[:16]
        ext = "KUBE-EXT-" + b32(name + proto)[:16]
        nat_chains.append(svc)
        services_rules.append(
            f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m {proto} -p {proto} -d {s["clusterIP"]} --dport {s["port"]} -j {svc}')
        per_service.append(
            f'-A {svc} -m comment --comment "{name} cluster IP" -m {proto} -p {proto} -d {s["clusterIP"]} --dport {s["port"]} ! -s {cluster_cidr} -j KUBE-MARK-MASQ')
        if s.get("nodePort"):
            nat_chains.append(ext)
            nodeport_rules.append(f"-A KUBE-NODEPORTS -m comment --comment {name} -m {proto} -p {proto} --dport {s['nodePort']} -j {ext}")
            per_service.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external destinations" -j KUBE-MARK-MASQ')
            per_service.append(f"-A {ext} -j {svc}")
        endpoints = s["endpoints"]
        for i, ep in enumerate(endpoints):
            endpoint = host_port(ep["ip"], ep["port"])
            sep = "KUBE-SEP-" + b32(name + proto + endpoint)[:16]
            nat_chains.append(sep)
            left = len(endpoints) - i
            probability = f" -m statistic --mode random --probability {1.0 / left:.10f}" if left > 1 else ""
            per_service.append(f'-A {svc} -m comment --comment "{name} -> {endpoint}"{probability} -j {sep}')
            per_service.append(f"-A {sep} -m comment --comment {name} -s {ep['ip']} -j KUBE-MARK-MASQ")
            per_service.append(f"-A {sep} -m comment --comment {name} -m {proto} -p {proto} -j DNAT --to-destination {endpoint}")
    services_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" '
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"]]
    out += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MARK}/{MARK} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        "COMMIT",
        "*nat",
    ]
    out += [f":{c} - [0:0]" for c in nat_chains]
    out += services_rules + nodeport_rules + rules + per_service + ["COMMIT"]
    return "\n".join(out) + "\n"


def nft_hash_name(name):
    return b32(name)[:8] + "-" + name


def nftables(family, cluster_cidr, services):
    ipx = "ip" if family == "4" else "ip6"
    addr_type = "ipv4_addr" if family == "4" else "ipv6_addr"
    no_localhost = "ip daddr != 127.0.0.0/8" if family == "4" else "ip6 daddr != ::1"
    masq = "0x004000"  # fmt.Sprintf("%#08x", 1<<14), as kube-proxy formats the mark
    lines = [
        f"add table {ipx} kube-proxy {{ comment \"rules for kube-proxy\" ; }}",
        f"flush table {ipx} kube-proxy",
    ]
    t = f"{ipx} kube-proxy"
    # kube-proxy names the priorities "dstnat-10", "dstnat" and "srcnat"; Debian 12's nft 1.0.6
    # accepts those names on fewer hooks than newer ones do, so they are given as the numbers
    # they stand for (dstnat -100, srcnat 100): the kernel sees the same chains.
    base = [
        ("filter-prerouting", "filter", "prerouting", "-110"),
        ("filter-input", "filter", "input", "-110"),
        ("filter-forward", "filter", "forward", "-110"),
        ("filter-output", "filter", "output", "-110"),
        ("nat-prerouting", "nat", "prerouting", "-100"),
        ("nat-output", "nat", "output", "-100"),
        ("nat-postrouting", "nat", "postrouting", "100"),
    ]
    for name, kind, hook, prio in base:
        lines.append(f"add chain {t} {name} {{ type {kind} hook {hook} priority {prio} ; }}")
    for chain in ["endpoints-check", "firewall-check", "services", "masquerading", "mark-for-masquerade"]:
        lines.append(f"add chain {t} {chain}")
    for dst, src, extra in [
        ("endpoints-check", "filter-input", "ct state new"), ("endpoints-check", "filter-forward", "ct state new"),
        ("endpoints-check", "filter-output", "ct state new"), ("firewall-check", "filter-prerouting", "ct state new"),
        ("firewall-check", "filter-output", "ct state new"), ("services", "nat-output", ""),
        ("services", "nat-prerouting", ""), ("masquerading", "nat-postrouting", ""),
    ]:
        lines.append(f"add rule {t} {src} {extra} jump {dst}".replace("  ", " "))
    lines += [
        f"add rule {t} mark-for-masquerade mark set mark or {masq}",
        f"add rule {t} masquerading mark and {masq} == 0 return",
        f"add rule {t} masquerading mark set mark xor {masq}",
        f"add rule {t} masquerading masquerade fully-random",
        f'add map {t} no-endpoint-services {{ type {addr_type} . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }}',
        f'add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}',
        f'add chain {t} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}',
        f"add rule {t} reject-chain reject",
        f"add rule {t} endpoints-check {ipx} daddr . meta l4proto . th dport vmap @no-endpoint-services",
        f"add rule {t} endpoints-check fib daddr type local {no_localhost} meta l4proto . th dport vmap @no-endpoint-nodeports",
        f'add map {t} firewall-ips {{ type {addr_type} . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }}',
        f"add rule {t} firewall-check {ipx} daddr . meta l4proto . th dport vmap @firewall-ips",
        f'add map {t} service-ips {{ type {addr_type} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}',
        f'add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}',
        f"add rule {t} services {ipx} daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services fib daddr type local {no_localhost} meta l4proto . th dport vmap @service-nodeports",
    ]
    for s in services:
        proto = s["protocol"]
        base_name = nft_hash_name(f"{s['namespace']}/{s['name']}/{proto}/{s['portName']}")
        svc_chain = "service-" + base_name
        ext_chain = "external-" + base_name
        endpoint_chains = []
        for ep in s["endpoints"]:
            ip = ep["ip"].replace(":", ".")
            chain = "endpoint-" + nft_hash_name(f"{s['namespace']}/{s['name']}/{proto}/{s['portName']}__{ip}/{ep['port']}")
            endpoint_chains.append(chain)
            lines.append(f"add chain {t} {chain}")
            lines.append(f"add rule {t} {chain} {ipx} saddr {ep['ip']} jump mark-for-masquerade")
            lines.append(f"add rule {t} {chain} meta l4proto {proto} dnat to {host_port(ep['ip'], ep['port'])}")
        lines.append(f"add chain {t} {svc_chain}")
        lines.append(
            f"add rule {t} {svc_chain} {ipx} daddr {s['clusterIP']} {proto} dport {s['port']} {ipx} saddr != {cluster_cidr} jump mark-for-masquerade")
        vmap = " , ".join(f"{i} : goto {c}" for i, c in enumerate(endpoint_chains))
        lines.append(f"add rule {t} {svc_chain} numgen random mod {len(endpoint_chains)} vmap {{ {vmap} }}")
        lines.append(f"add element {t} service-ips {{ {s['clusterIP']} . {proto} . {s['port']} : goto {svc_chain} }}")
        if s.get("nodePort"):
            lines.append(f"add chain {t} {ext_chain}")
            lines.append(f"add rule {t} {ext_chain} jump mark-for-masquerade")
            lines.append(f"add rule {t} {ext_chain} goto {svc_chain}")
            lines.append(f"add element {t} service-nodeports {{ {proto} . {s['nodePort']} : goto {ext_chain} }}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    mode, family, cidr, path = sys.argv[1:5]
    with open(path) as f:
        services = json.load(f)
    print((iptables if mode == "iptables" else nftables)(family, cidr, services), end="")
