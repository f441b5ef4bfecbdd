#!/usr/bin/env python3
"""Fuzzes bridge-ipam's configs and environments with a fixed seed.

Run inside the namespace that plays the node (the test's own), e.g.
  ip netns exec RUN-node python3 fuzz-cni.py --bin PLUGIN --sandbox DIR --pod-netns /run/netns/RUN-fz1 ...

Every case runs the plugin under a timeout and checks: no signal, no hang, every failure a CNI
error object ({"code": int, "msg": str}) on stdout, every success of ADD a result object; a
successful ADD is followed by the runtime's DEL. At the end nothing may be left: no lease file in
the sandbox, no veth in the node, no interface but lo in the pods, no masquerade rule.
Every path the plugin is given lies inside the sandbox or is a namespace the test created (the
node's own namespace is offered only as CNI_NETNS, which the plugin must refuse).
"""
import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys

JUNK = [None, True, False, 0, -1, 1.5, 2**64, -(2**63), 1e308, "", "x" * 300, "\u00e9\u4e2d\U0001f600", "\x00",
        [], {}, [1, "a", None], {"a": {"b": {"c": [1]}}}, "10.0.0.0/8", "fd00::/64", "::", "0.0.0.0/0",
        "255.255.255.255/32", "10.0.0.1", "../../etc", "/", "eth0", "cni0", "a" * 16, "a" * 15]
SUBNETS = ["10.88.0.0/24", "10.88.0.0/30", "10.88.0.0/31", "10.88.0.0/32", "10.88.0.0/33", "10.88.0.0/16",
           "fd00:88::/64", "fd00:88::/127", "fd00:88::/128", "0.0.0.0/0", "::/0", "10.88.0.5/24", "bogus", ""]
COMMANDS = ["ADD"] * 6 + ["DEL"] * 3 + ["CHECK", "VERSION", "GC", "STATUS", "", "add", "NOPE"]


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.sandbox = args.sandbox
        self.figures = {"cases": 0, "adds_ok": 0, "signals": 0, "hangs": 0, "bad_output": 0, "del_failed": 0, "leaks": 0}
        self.failures = []
        os.makedirs(self.sandbox, exist_ok=True)
        self.plain_file = os.path.join(self.sandbox, "plain-file")
        with open(self.plain_file, "w") as f:
            f.write("not a directory\n")
        with open(os.path.join(self.sandbox, "resolv.conf"), "w") as f:
            f.write("nameserver 10.0.0.53\nsearch example.test\noptions ndots:5\n")
        with open(os.path.join(self.sandbox, "subnet.env"), "w") as f:
            f.write("FLANNEL_NETWORK=10.88.0.0/16\nFLANNEL_SUBNET=10.88.3.1/24\n")
        self.fifo = os.path.join(self.sandbox, "fifo")
        if not os.path.exists(self.fifo):
            os.mkfifo(self.fifo)

    # ---- configs -------------------------------------------------------------------------------
    def data_dir(self):
        return self.rng.choice([os.path.join(self.sandbox, "leases"), os.path.join(self.sandbox, "leases") + "/",
                                os.path.join(self.sandbox, "deep/a/b/c"), os.path.join(self.plain_file, "below"),
                                os.path.join(self.sandbox, "leases")])

    def base_config(self):
        r = self.rng
        name = r.choice(["fz", "fz", "fz-2", "fz.net", "a" * 100, "a" * 101, "../x", "", "-x", "fz/x"])
        ipam = {"type": "host-local", "dataDir": self.data_dir()}
        shape = r.randrange(5)
        if shape == 0:
            ipam["subnet"] = r.choice(SUBNETS)
        elif shape == 1:
            ipam["ranges"] = [[{"subnet": r.choice(SUBNETS)}] for _ in range(r.randrange(0, 4))]
        elif shape == 2:
            ipam.update({"subnet": "10.88.0.0/24", "rangeStart": r.choice(["10.88.0.10", "10.88.1.1", "x", "10.88.0.255"]),
                         "rangeEnd": r.choice(["10.88.0.20", "10.88.0.5", "fd00::1"]), "gateway": r.choice(["10.88.0.1", "10.88.0.15", "10.99.0.1"])})
        elif shape == 3:
            ipam["subnetFile"] = r.choice([os.path.join(self.sandbox, "subnet.env"), self.plain_file, self.fifo, "/nonexistent"])
            # ADD waits up to subnetFileWait (default 10 s) for a missing file: none here, so a
            # case stays quick (a mutation that drops this still ends within --timeout).
            ipam["subnetFileWait"] = 0
            if r.random() < 0.5:
                ipam["clusterCIDR"] = r.choice(["10.88.0.0/16", "10.0.0.0/8", "192.168.0.0/16", "x"])
        else:
            ipam["type"] = r.choice(["fake-ipam", "bad-ipam", "mute-ipam", "missing-ipam", "../bridge-ipam", ""])
        if r.random() < 0.3:
            ipam["routes"] = [{"dst": r.choice(["0.0.0.0/0", "10.96.0.0/12", "fd00::/8", "x", "10.%d.0.0/16" % i]),
                               **({"gw": r.choice(["10.88.0.1", "10.88.0.99", "x"])} if r.random() < 0.3 else {})}
                              for i in range(r.choice([0, 1, 3, 256, 257]))]
        if r.random() < 0.2:
            ipam["resolvConf"] = r.choice([os.path.join(self.sandbox, "resolv.conf"), self.fifo, self.sandbox, "/nonexistent", "/dev/null"])
        config = {"cniVersion": r.choice(["1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.2.0", "0.1.0", "9.9.9", "", None]),
                  "name": name, "type": "bridge-ipam", "bridge": r.choice(["fz0", "fz1", "lo", "a" * 16, "", "fz0"]),
                  "ipam": ipam}
        for key, values in [("isGateway", [True, False, "yes"]), ("isDefaultGateway", [True, False]),
                            ("ipMasq", [True, False, 1]), ("hairpinMode", [True, False]), ("promiscMode", [True, False]),
                            ("forceAddress", [True, False]), ("mtu", [1500, 0, 68, 65536, 70000, -5, "1500"]),
                            ("dns", [{"nameservers": ["10.0.0.53"]}, {"nameservers": "x"}, []]),
                            ("vlan", [0, 5]), ("runtimeConfig", [{"ips": ["10.88.0.7/24"]}, {"mac": "02:00:00:00:00:01"}, {"mac": "zz"}, {"ips": "x"}]),
                            ("args", [{"cni": {"ips": ["10.88.0.8"]}}, {"cni": 5}])]:
            if r.random() < 0.25:
                config[key] = r.choice(values)
        if r.random() < 0.3:
            config["ipMasqExclude"] = [r.choice(["192.168.1.0/24", "fd00:1::/64", "x", "10.0.0.0/8", "0.0.0.0/0"])
                                       for _ in range(r.choice([0, 1, 5, 256, 257, 300]))]
        if r.random() < 0.15:
            config["prevResult"] = r.choice([{"cniVersion": "1.0.0", "ips": [{"address": "10.88.0.2/24"}]},
                                             {"ips": "x"}, {"interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": [{"address": "bad"}]}, 5])
        if r.random() < 0.1:
            config["cni.dev/valid-attachments"] = r.choice([[], [{"containerID": "fz-1", "ifname": "eth0"}], "x"])
        return config

    def mutate(self, value, depth=0):
        r = self.rng
        if isinstance(value, dict) and value and depth < 3 and r.random() < 0.7:
            key = r.choice(list(value))
            action = r.randrange(3)
            if action == 0:
                del value[key]
            elif action == 1:
                value[key] = r.choice(JUNK)
            else:
                value[key] = self.mutate(value[key], depth + 1)
            return value
        if isinstance(value, list) and value and r.random() < 0.5:
            value[r.randrange(len(value))] = r.choice(JUNK)
            return value
        return r.choice(JUNK)

    def stdin(self, config):
        r = self.rng
        roll = r.random()
        text = json.dumps(config)
        if roll < 0.05:
            return text[: r.randrange(len(text) + 1)].encode()
        if roll < 0.08:
            return bytes(r.randrange(256) for _ in range(r.randrange(64)))
        if roll < 0.09:
            return b""
        if roll < 0.10:
            return b"[" * 10000
        if roll < 0.11:
            return ('{"a":' + " " * 1_000_000 + "1}").encode()
        if roll < 0.12:
            return text.replace('"name"', '"name":"dup","name"', 1).encode()
        return text.encode()

    # ---- environments --------------------------------------------------------------------------
    def environment(self, case):
        r = self.rng
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "CNI_COMMAND": r.choice(COMMANDS),
               "CNI_CONTAINERID": r.choice([f"fz-{case}"] * 6 + ["", "../../x", "a" * 300, "with space", "\u00e9"]),
               "CNI_NETNS": r.choice([r.choice(self.args.pod_netns)] * 6 + ["", "/proc/self/ns/uts", "/proc/self/ns/net",
                                     "/nonexistent", "/dev/null", self.plain_file, self.fifo, self.sandbox]),
               "CNI_IFNAME": r.choice(["eth0"] * 6 + ["", "a" * 16, "a/b", "lo", "eth0 ", "..", "net1"]),
               "CNI_PATH": r.choice([self.args.cni_path] * 5 + ["", "/nonexistent", self.sandbox])}
        if r.random() < 0.2:
            env["CNI_ARGS"] = r.choice(["", "IP=10.88.0.9", "garbage", "IgnoreUnknown=1;FOO=bar", "MAC=zz", "IP=x;IP=y", "K8S_POD_NAME=a=b"])
        if r.random() < 0.1:
            del env[r.choice([k for k in env if k.startswith("CNI_")])]
        if r.random() < 0.05:
            env["BRIDGE_IPAM_TEST_ABORT_AT"] = "masquerade"  # must be a no-op in every build we ship
        return env

    # ---- running -------------------------------------------------------------------------------
    def run(self, env, data, what):
        try:
            p = subprocess.run([self.args.bin], input=data, env=env, capture_output=True, timeout=self.args.timeout, cwd=self.sandbox)
        except subprocess.TimeoutExpired:
            self.figures["hangs"] += 1
            self.failures.append(f"{what}: hang (> {self.args.timeout}s)")
            return None
        if p.returncode < 0:
            self.figures["signals"] += 1
            self.failures.append(f"{what}: signal {-p.returncode}")
            return p
        command = env.get("CNI_COMMAND", "")
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            out = "unparsable"
        if p.returncode != 0:
            if not (isinstance(out, dict) and isinstance(out.get("code"), int) and isinstance(out.get("msg"), str)):
                self.figures["bad_output"] += 1
                self.failures.append(f"{what}: exit {p.returncode} without a CNI error on stdout: {p.stdout[:200]!r}")
        elif command in ("ADD", "VERSION") and not isinstance(out, dict):
            self.figures["bad_output"] += 1
            self.failures.append(f"{what}: exit 0 without a JSON object: {p.stdout[:200]!r}")
        return p

    def case(self, n):
        config = self.base_config()
        env = self.environment(n)
        if self.rng.random() < 0.4:
            # Near-valid: one dimension fuzzed at most, so that ADDs get far (and succeed often).
            config.update({"name": "fz", "cniVersion": "1.1.0", "bridge": "fz0"})
            config["ipam"] = {"type": "host-local", "subnet": self.rng.choice(["10.88.0.0/24", "10.88.0.0/24", "fd00:88::/64", "10.88.0.0/30"]),
                              "dataDir": os.path.join(self.sandbox, "leases"), **{k: v for k, v in config["ipam"].items() if k in ("routes", "resolvConf")}}
            env.update({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"fz-{n}", "CNI_NETNS": self.rng.choice(self.args.pod_netns),
                        "CNI_IFNAME": self.rng.choice(["eth0", "net1", "eth0"]), "CNI_PATH": self.args.cni_path})
            data = json.dumps(config).encode()
        else:
            for _ in range(self.rng.choice([0, 0, 1, 1, 2, 3])):
                config = self.mutate(config)
            data = self.stdin(config)
        brief = {k: v for k, v in env.items() if k != "PATH"}
        p = self.run(env, data, f"case {n} ({env.get('CNI_COMMAND')}; {brief}; {data[:300]!r})")
        self.figures["cases"] += 1
        if p is not None and p.returncode == 0 and env.get("CNI_COMMAND") == "ADD":
            self.figures["adds_ok"] += 1
            # The runtime's DEL, with the same config and environment.
            delete = dict(env, CNI_COMMAND="DEL")
            d = self.run(delete, data, f"case {n} (DEL after ADD)")
            if d is not None and d.returncode != 0:
                self.figures["del_failed"] += 1
                self.failures.append(f"case {n}: DEL after a successful ADD failed: {d.stdout[:200]!r}")

    def leaks(self):
        left = []
        for root, dirs, files in os.walk(self.sandbox):
            for f in files:
                try:
                    ipaddress.ip_address(f)
                except ValueError:
                    if f.endswith(".tmp"):
                        left.append("temporary file " + os.path.join(root, f))
                    continue
                left.append("lease " + os.path.join(root, f))
        veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout.strip()
        if veths:
            left.append("veths in the node: " + veths.replace("\n", "; ")[:300])
        for ns in self.args.pod_netns:
            links = subprocess.run(["ip", "-n", os.path.basename(ns), "-o", "link"], capture_output=True, text=True).stdout
            extra = [l for l in links.splitlines() if ": lo:" not in l]
            if extra:
                left.append(f"interfaces in {ns}: {extra}")
        rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        if "masquerade" in rules:
            left.append("masquerade rules left: " + rules[:300])
        return left


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cni-path", required=True)
    ap.add_argument("--sandbox", required=True)
    ap.add_argument("--pod-netns", nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=20)  # above ipam.subnetFileWait's default
    args = ap.parse_args()
    fuzzer = Fuzzer(args)
    for n in range(args.cases):
        fuzzer.case(n)
    left = fuzzer.leaks()
    fuzzer.figures["leaks"] = len(left)
    for line in fuzzer.failures[:20] + left[:20]:
        print("  " + line)
    f = fuzzer.figures
    print(f"fuzz: seed {args.seed}, {f['cases']} cases ({f['adds_ok']} successful ADDs, each DELeted); "
          f"signals {f['signals']}, hangs {f['hangs']}, bad outputs {f['bad_output']}, failed DELs {f['del_failed']}, leaks {f['leaks']}")
    sys.exit(0 if not fuzzer.failures and not left else 1)


if __name__ == "__main__":
    main()
