#!/usr/bin/env python3
"""Objects for the NetworkPolicy bench (bench/bench-netpol.sh), as JSON for the stand-in API
server's control channel, and a connection-latency client.

cluster PODS POLICIES      {"namespaces": [...], "pods": [...], "policies": [...]}: PODS pods in
                           20 namespaces over node0/node1 (labels app=aN, tier), POLICIES policies
                           (10 per namespace) with pod, namespace and port selectors, half with egress
latency-policies N SERVER_LABEL CLIENT_IP   N policies selecting the server pod, none admitting the
                           client, then one that does: the worst case, every rule is tried first
connect ADDRESS PORT COUNT median and p90 of COUNT TCP connects (connect + first byte), in microseconds
"""
import json
import socket
import sys
import time


def cluster(pods, policies):
    namespaces = [{"metadata": {"name": f"ns{i}", "labels": {"team": f"t{i % 5}", "ns": f"ns{i}"}}} for i in range(20)]
    items = []
    for i in range(pods):
        ns = f"ns{i % 20}"
        ip = f"10.{100 + (i // 250)}.{(i // 250) % 2}.{i % 250 + 2}"
        items.append({"metadata": {"namespace": ns, "name": f"p{i}", "labels": {"app": f"a{i % 10}", "tier": "web" if i % 3 else "db"}},
                      "spec": {"nodeName": f"node{i % 2}", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                      "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
    pols = []
    for j in range(policies):
        ns = f"ns{j % 20}"
        spec = {"podSelector": {"matchLabels": {"app": f"a{j % 10}"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": f"t{j % 5}"}},
                                       "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}},
                                      {"ipBlock": {"cidr": "192.168.0.0/16", "except": [f"192.168.{j % 256}.0/24"]}}],
                             "ports": [{"port": 80}, {"port": "http"}]}]}
        if j % 2:
            spec["egress"] = [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": f"a{(j + 1) % 10}"}}}],
                               "ports": [{"port": "http"}, {"protocol": "UDP", "port": 53}]}]
        pols.append({"metadata": {"namespace": ns, "name": f"np{j}"}, "spec": spec})
    return {"namespaces": namespaces, "pods": items, "policies": pols}


def latency_policies(n, server_label, client_ip):
    pols = []
    for j in range(n):
        pols.append({"metadata": {"namespace": "bench", "name": f"deny-{j:04d}"},
                     "spec": {"podSelector": {"matchLabels": {"app": server_label}},
                              "ingress": [{"from": [{"ipBlock": {"cidr": f"172.{16 + j // 256}.{j % 256}.0/24"}}], "ports": [{"port": 80}]}]}})
    pols.append({"metadata": {"namespace": "bench", "name": "zz-allow"},
                 "spec": {"podSelector": {"matchLabels": {"app": server_label}},
                          "ingress": [{"from": [{"ipBlock": {"cidr": f"{client_ip}/32"}}], "ports": [{"port": 80}]}]}})
    return pols


def connect(address, port, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        with socket.create_connection((address, port), timeout=2) as s:
            s.recv(3)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    print(f"{samples[len(samples) // 2]:.0f} {samples[int(len(samples) * 0.9)]:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "cluster":
        print(json.dumps(cluster(int(sys.argv[2]), int(sys.argv[3]))))
    elif sys.argv[1] == "latency-policies":
        print(json.dumps(latency_policies(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
    else:
        connect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
