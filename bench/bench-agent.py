#!/usr/bin/env python3
"""One row of the agent's bench (see bench/bench-agent.sh): runs inside the underlay namespace,
where the stand-in API server's control channel is 127.0.0.1:8080; the agent runs in $RUN-node."""
import argparse
import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--run", required=True)
p.add_argument("--agent", required=True)
p.add_argument("--kubeconfig", required=True)
p.add_argument("--dir", required=True)
p.add_argument("--nodes", type=int, required=True)
args = p.parse_args()
NS = f"{args.run}-node"
PORT = 9461


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:8080{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def node(i, ip_offset=0, heartbeat=0):
    a = 2 + i + ip_offset
    name = f"node-{i:05d}"
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "node.kubernetes.io/instance-type": "m5.large",
                                                  "topology.kubernetes.io/zone": f"zone-{i % 3}"},
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"podCIDR": f"10.{128 + i // 256}.{i % 256}.0/24", "podCIDRs": [f"10.{128 + i // 256}.{i % 256}.0/24"],
                     "providerID": f"aws:///zone-{i % 3}/i-{i:017x}"},
            "status": {"addresses": [{"type": "InternalIP", "address": f"172.20.{a // 250}.{a % 250 + 2}"},
                                     {"type": "Hostname", "address": name}],
                       "capacity": {"cpu": "2", "memory": "8009924Ki", "pods": "110", "ephemeral-storage": "81106868Ki"},
                       "allocatable": {"cpu": "1930m", "memory": "7311556Ki", "pods": "110", "ephemeral-storage": "74747856225"},
                       "conditions": [{"type": t, "status": "False" if t != "Ready" else "True",
                                       "lastHeartbeatTime": f"2026-12-07T10:{heartbeat // 60 % 60:02d}:{heartbeat % 60:02d}Z",
                                       "lastTransitionTime": "2026-12-01T00:00:00Z", "reason": f"Kubelet{t}",
                                       "message": f"kubelet has no {t.lower()}"}
                                      for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"machineID": f"{i:032x}", "systemUUID": f"ec2{i:029x}", "bootID": f"{i:032x}",
                                    "kernelVersion": "6.1.0-28-cloud-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.31.4",
                                    "kubeProxyVersion": "v1.31.4", "operatingSystem": "linux", "architecture": "amd64"},
                       "images": [{"names": [f"registry.k8s.io/image-{j}@sha256:{j:064x}", f"registry.k8s.io/image-{j}:v1.{j}.0"],
                                   "sizeBytes": 1000000 * (j + 1)} for j in range(20)]}}


def self_node():
    n = node(0)
    n["metadata"]["name"] = "self"
    n["spec"] = {"podCIDR": "10.127.255.0/24", "podCIDRs": ["10.127.255.0/24"]}
    n["status"]["addresses"] = [{"type": "InternalIP", "address": "172.20.0.1"}]
    return n


def route_count():
    out = subprocess.run(["ip", "-n", NS, "-4", "route", "show", "proto", "212"], capture_output=True, text=True).stdout
    return out.count("\n")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(pid):
    return dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())


def readyz():
    r = subprocess.run(["ip", "netns", "exec", NS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2",
                        f"http://127.0.0.1:{PORT}/readyz"], capture_output=True, text=True)
    return r.stdout.strip()


# The cluster: this node and N others.
existing = control("GET", "/state")["nodes"]
if existing:
    control("POST", "/delete", existing)
nodes = [self_node()] + [node(i) for i in range(1, args.nodes + 1)]
for start in range(0, len(nodes), 1000):
    control("POST", "/nodes", nodes[start:start + 1000])
pages_before = control("GET", "/state")["list_pages"]

log = open(f"{args.dir}/agent.log", "w")
started = time.monotonic()
agent = subprocess.Popen(["ip", "netns", "exec", NS, args.agent, "--kubeconfig", args.kubeconfig, "--node", "self",
                          "--subnet-file", f"{args.dir}/podcidr", "--resync", "600", "--metrics-address", f"127.0.0.1:{PORT}"],
                         stdout=log, stderr=log)
# ip netns exec execs the agent: same pid.
pid = agent.pid
while True:
    # /readyz 200 means every route is applied; the count is checked once after.
    if readyz() == "200":
        break
    if time.monotonic() - started > 120:
        raise SystemExit(f"not synced after 120 s: {route_count()} routes")
    time.sleep(0.01)
initial = time.monotonic() - started
initial_cpu = cpu_seconds(pid)
if route_count() != args.nodes:
    raise SystemExit(f"ready with {route_count()} routes of {args.nodes}")
pages = control("GET", "/state")["list_pages"] - pages_before


# Changes: one node's InternalIP at a time, timed to its route by ip monitor.
def change_latency(i, offset):
    dest = f"10.{128 + i // 256}.{i % 256}.0/24"
    monitor = subprocess.Popen(["ip", "-n", NS, "monitor", "route"], stdout=subprocess.PIPE, text=True)
    seen = threading.Event()

    def read():
        for line in monitor.stdout:
            if line.startswith(dest) and "via" in line:
                seen.set()
                return
    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.3)
    t0 = time.monotonic()
    control("POST", "/nodes", [node(i, ip_offset=offset)])
    seen.wait(10)
    elapsed = time.monotonic() - t0
    monitor.kill()
    monitor.wait()
    return elapsed


changed = [1 + k * (args.nodes // 5) for k in range(5)]
latencies = [change_latency(i, 6000) for i in changed]

# 1000 heartbeats (MODIFIED, nothing routed changes).
time.sleep(0.5)
before = cpu_seconds(pid)
for start in range(0, 1000, 250):
    beats = [1 + (j % args.nodes) for j in range(start, start + 250)]
    control("POST", "/nodes", [node(i, ip_offset=6000 if i in changed else 0, heartbeat=start + k + 1) for k, i in enumerate(beats)])
time.sleep(2.5)
cpu = cpu_seconds(pid) - before

rss = status(pid)["VmHWM"].strip()
agent.terminate()
agent.wait()
log.close()
rss_mib = int(rss.split()[0]) / 1024
print(f"| {args.nodes} | {initial * 1000:.0f} ms ({initial_cpu * 1000:.0f} ms CPU) | {statistics.median(latencies) * 1000:.0f} ms (max {max(latencies) * 1000:.0f}) "
      f"| {rss_mib:.1f} MiB | {cpu * 1000:.0f} ms | {pages} |")
