#!/usr/bin/env python3
"""ADD and DEL cost at 0 and 250 leases held: user-space instructions (callgrind) and CPU time
(user + system from wait4), for one or more plugin binaries, interleaved.

Run inside the namespace that plays the node (scripts/ipam-cost.sh puts it there):
  ipam-cost.py RUN DATA_DIR RUNS NAME=BINARY [NAME=BINARY...]

Each binary gets a network, bridge and lease directory of its own. The leases held are other
containers' files in host-local's layout, written by this script (as another writer would); one
DEL of an unknown container follows the filling, so the rows show the steady state.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

RUN, DATA_DIR, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
BINARIES = [a.split("=", 1) for a in sys.argv[4:]]
VALGRIND = shutil.which("valgrind")
WORK = tempfile.mkdtemp(prefix=f"{RUN}-cost-")


def config(i, prev=None):
    c = {"cniVersion": "1.0.0", "name": f"cost{i}", "type": "bridge-ipam", "bridge": f"cost{i}",
         "isGateway": True, "isDefaultGateway": True,
         "ipam": {"type": "host-local", "subnet": f"10.{60 + i}.0.0/16", "dataDir": DATA_DIR}}
    if prev is not None:
        c["prevResult"] = prev
    return json.dumps(c).encode()


def run(binary, command, cid, conf, callgrind=False):
    """(instructions or None, CPU seconds, stdout)."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": f"/run/netns/{RUN}-pod",
           "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(binary), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    argv = [binary]
    out_file = os.path.join(WORK, "cg.out")
    if callgrind:
        argv = [VALGRIND, "-q", "--tool=callgrind", f"--callgrind-out-file={out_file}", binary]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(conf)
    p.stdin.close()
    out = p.stdout.read()
    p.stdout.close()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{binary} {command} {cid} failed: {out.decode()}")
    ir = None
    if callgrind:
        with open(out_file) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    ir = int(line.split()[1])
                    break
    return ir, None if callgrind else usage.ru_utime + usage.ru_stime, out


def fill(i, count):
    directory = os.path.join(DATA_DIR, f"cost{i}")
    os.makedirs(directory, exist_ok=True)
    for n in range(count):
        with open(os.path.join(directory, f"10.{60 + i}.200.{1 + n}"), "w") as f:
            f.write(f"filler-{n}\r\neth0")


def clear(i):
    directory = os.path.join(DATA_DIR, f"cost{i}")
    for name in os.listdir(directory):
        if name.startswith(f"10.{60 + i}.200."):
            os.unlink(os.path.join(directory, name))


def main():
    names = [n for n, _ in BINARIES]
    rows = {}
    for held in (0, 250):
        for i, (_, binary) in enumerate(BINARIES):
            fill(i, held)
            run(binary, "DEL", "warm-up", config(i))  # the first DEL after another writer scans
        samples = {}
        for r in range(RUNS):
            order = list(enumerate(BINARIES)) if r % 2 == 0 else list(reversed(list(enumerate(BINARIES))))
            for i, (name, binary) in order:
                cg = VALGRIND is not None and r % 4 == 0
                for prev in (True, False):
                    cid = f"c{held}-{r}-{prev}"
                    ir, cpu, out = run(binary, "ADD", cid, config(i), cg)
                    samples.setdefault((name, "ADD"), ([], []))
                    if cpu is not None:
                        samples[(name, "ADD")][1].append(cpu)
                    if ir:
                        samples[(name, "ADD")][0].append(ir)
                    verb = "DEL with prevResult" if prev else "DEL without prevResult"
                    ir, cpu, _ = run(binary, "DEL", cid, config(i, json.loads(out) if prev else None), cg)
                    samples.setdefault((name, verb), ([], []))
                    if cpu is not None:
                        samples[(name, verb)][1].append(cpu)
                    if ir:
                        samples[(name, verb)][0].append(ir)
        for (name, verb), (irs, cpus) in samples.items():
            rows[(verb, held, name)] = (statistics.median(irs) if irs else 0, statistics.median(cpus) * 1000 if cpus else 0)
        for i in range(len(BINARIES)):
            clear(i)
    print(f"{'':<40}" + "".join(f"{n:>26}" for n in names))
    for verb in ("ADD", "DEL with prevResult", "DEL without prevResult"):
        for held in (0, 250):
            cells = []
            for n in names:
                ir, cpu = rows[(verb, held, n)]
                cells.append(f"{ir / 1e6:8.3f} MIr {cpu:6.2f} ms CPU")
            print(f"{verb + f' at {held} leases':<40}" + "".join(f"{c:>26}" for c in cells))
    for n in names:
        for verb in ("DEL with prevResult", "DEL without prevResult"):
            a, b = rows[(verb, 0, n)], rows[(verb, 250, n)]
            print(f"{n}: {verb} at 250 / at 0 leases: {b[0] / a[0] if a[0] else 0:.2f}x instructions, {b[1] / a[1] if a[1] else 0:.2f}x CPU")
    shutil.rmtree(WORK)


if __name__ == "__main__":
    main()
