#!/usr/bin/env python3
"""Drives the NetworkPolicy truth tables of Tests/integration/test-netpol.sh: for each case of a cases file
it sets the policies (and labels) in the stand-in API server, waits the promised second, probes
every source (pods, nodes, the outside host) against every pod on TCP and UDP 80 and 81 in
parallel, and compares each verdict with Tests/support/netpol-model.py. Prints the table of each case in
the upstream e2e style and one `ok`/`FAIL` line per case.

usage: netpol-truth.py CLUSTER_JSON CASES_JSON [CASE_NAME_FILTER]
CLUSTER_JSON: {"run", "pods": {"x/a": {"ip", "node"}}, "nodes": {"node0": ip}, "outside": ip}
"""
import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("netpol_model", os.path.join(HERE, "netpol-model.py"))
model_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_module)

PROBES = [("tcp", 80), ("tcp", 81), ("udp", 80), ("udp", 81), ("sctp", 80)]
TIMEOUT = float(os.environ.get("PROBE_TIMEOUT", "0.6"))
SETTLE = float(os.environ.get("SETTLE", "1.0"))


def api(cluster, method, path, body):
    return subprocess.run(
        ["ip", "netns", "exec", f'{cluster["run"]}-underlay', "curl", "-sS", "-X", method, "--data-binary",
         json.dumps(body), f"http://127.0.0.1:8080{path}"], check=True, capture_output=True, text=True).stdout


def pod_object(key, info, labels):
    ns, name = key.split("/")
    ports = [{"name": f"serve-{p}-{proto}", "containerPort": p, "protocol": proto.upper()} for p in (80, 81) for proto in ("tcp", "udp")]
    ports.append({"name": "serve-80-sctp", "containerPort": 80, "protocol": "SCTP"})
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": info["node"], "containers": [{"name": "c", "image": "busybox", "ports": ports}]},
            "status": {"phase": "Running", "podIP": info["ip"], "podIPs": [{"ip": info["ip"]}]}}


def namespace_object(name, labels):
    return {"metadata": {"name": name, "labels": labels}}


def policy_object(ns, name, spec_):
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec_}


class World:
    def __init__(self, cluster):
        self.cluster = cluster
        self.pods = {k: pod_object(k, v, {"pod": k.split("/")[1]}) for k, v in cluster["pods"].items()}
        self.namespaces = {n: namespace_object(n, {"ns": n}) for n in sorted({k.split("/")[0] for k in cluster["pods"]})}
        self.policies = {}

    def publish_all(self):
        api(self.cluster, "POST", "/objects", {"resource": "namespaces", "items": list(self.namespaces.values())})
        api(self.cluster, "POST", "/objects", {"resource": "pods", "items": list(self.pods.values())})

    def set_case(self, case):
        """Makes the API hold exactly the case's policies and labels; only what differs is sent."""
        wanted = {f"{ns}/{name}": policy_object(ns, name, s) for ns, name, s in case["policies"]}
        gone = [k for k in self.policies if k not in wanted]
        if gone:
            api(self.cluster, "POST", "/delete-objects", {"resource": "networkpolicies", "keys": gone})
        changed = [v for k, v in wanted.items() if self.policies.get(k) != v]
        if changed:
            api(self.cluster, "POST", "/objects", {"resource": "networkpolicies", "items": changed})
        self.policies = wanted
        pods, namespaces = [], []
        for key, obj in self.pods.items():
            labels = case.get("podLabels", {}).get(key, {"pod": key.split("/")[1]})
            if obj["metadata"]["labels"] != labels:
                obj["metadata"]["labels"] = labels
                pods.append(obj)
        for name, obj in self.namespaces.items():
            labels = case.get("namespaceLabels", {}).get(name, {"ns": name})
            if obj["metadata"]["labels"] != labels:
                obj["metadata"]["labels"] = labels
                namespaces.append(obj)
        if pods:
            api(self.cluster, "POST", "/objects", {"resource": "pods", "items": pods})
        if namespaces:
            api(self.cluster, "POST", "/objects", {"resource": "namespaces", "items": namespaces})

    def model(self):
        return model_module.Model(list(self.pods.values()), list(self.namespaces.values()), list(self.policies.values()),
                                  self.cluster["nodes"])

    def sources(self):
        run = self.cluster["run"]
        out = [(("pod", k), f"{run}-{k.replace('/', '-')}") for k in sorted(self.cluster["pods"])]
        out += [(("node", n), f"{run}-{n}") for n in sorted(self.cluster["nodes"])]
        out.append((("host", self.cluster["outside"]), f"{run}-outside"))
        return out


LOOKS = [0]


def probe_from(netns, targets, base, timeout=TIMEOUT):
    out = subprocess.run(["ip", "netns", "exec", netns, "python3", os.path.join(HERE, "netpol-probe.py"), "probe", str(timeout),
                          "--udp-source-base", str(base)] + targets,
                         capture_output=True, text=True).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def sctp_tags_seen(world):
    """Tags of the SCTP packets the pods' listeners saw."""
    seen = set()
    for key in world.cluster["pods"]:
        try:
            with open(os.path.join(world.cluster["rundir"], f"serve-{key.replace('/', '-')}.log")) as f:
                seen.update(line.split()[4] for line in f if line.startswith("sctp "))
        except OSError:
            pass
    return seen


def measure(world):
    """Every (source, pod, probe) verdict of the kernel, all sources at once."""
    targets = {k: [f'{v["ip"]}/{proto}/{port}' for proto, port in PROBES] for k, v in world.cluster["pods"].items()}
    results = {}
    # Every look uses UDP source ports of its own (targets are fewer than 64 per source).
    LOOKS[0] += 1
    base = 10000 + 64 * LOOKS[0]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = {}
        for endpoint, netns in world.sources():
            mine = [t for k, ts in targets.items() if not (endpoint[0] == "pod" and endpoint[1] == k) for t in ts]
            futures[endpoint] = pool.submit(probe_from, netns, mine, base)
        for endpoint, f in futures.items():
            results[endpoint] = f.result()
    # SCTP goes one way: a probe connects if its packet reached the listener.
    time.sleep(0.3)
    seen = sctp_tags_seen(world)
    return {e: {t: (v == "1" if not v.startswith("s") else v[1:] in seen) for t, v in r.items()} for e, r in results.items()}


def table(world, verdict):
    """Rows: sources; columns: pods; a cell shows TCP80 TCP81 UDP80 UDP81 SCTP80 as . (connects) or X."""
    pods = sorted(world.cluster["pods"])
    lines = ["          " + " ".join(f"{p:>5}" for p in pods)]
    for endpoint, _ in world.sources():
        name = endpoint[1] if endpoint[0] != "host" else "outside"
        cells = []
        for p in pods:
            if endpoint == ("pod", p):
                cells.append("    -")
                continue
            cells.append("".join("." if verdict(endpoint, p, proto, port) else "X" for proto, port in PROBES))
        lines.append(f"{name:>9} " + " ".join(cells))
    return "\n".join(lines)


def compare(world, results):
    model = world.model()
    mismatches = []
    for endpoint, got in results.items():
        for pod, info in world.cluster["pods"].items():
            if endpoint == ("pod", pod):
                continue
            for proto, port in PROBES:
                want = model.allows(endpoint, ("pod", pod), proto.upper(), port)
                have = got.get(f'{info["ip"]}/{proto}/{port}')
                if want != have:
                    mismatches.append(f"{endpoint[1]}->{pod} {proto}/{port}: model {want}, kernel {have}")
    return model, mismatches


def main():
    cluster = json.load(open(sys.argv[1]))
    cases = json.load(open(sys.argv[2]))
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    world = World(cluster)
    world.publish_all()
    time.sleep(SETTLE)
    total = 0
    for case in cases:
        if only and only not in case["name"]:
            continue
        world.set_case(case)
        time.sleep(SETTLE)
        results = measure(world)
        model, mismatches = compare(world, results)
        total += sum(len(v) for v in results.values())
        late = ""
        if mismatches:
            # Semantics or speed? A second look after 3 s tells which.
            time.sleep(3)
            _, again = compare(world, measure(world))
            late = " (correct after 4 s: enforcement was late)" if not again else ""
        print(f"--- {case['name']}   (cells: TCP80 TCP81 UDP80 UDP81 SCTP80; . connects, X blocked)")
        print(table(world, lambda e, p, proto, port: model.allows(e, ("pod", p), proto.upper(), port)))
        status = "ok" if not mismatches else "FAIL"
        detail = f"{len(mismatches)} of {sum(len(v) for v in results.values())} verdicts differ{late}: " + "; ".join(mismatches[:6]) if mismatches else \
            f"{sum(len(v) for v in results.values())} verdicts as the model"
        print(f"RESULT {status} truth table: {case['name']}: {detail}", flush=True)
    print(f"probed {total} connections", flush=True)


if __name__ == "__main__":
    main()
