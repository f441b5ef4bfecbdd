#!/usr/bin/env python3
"""bridge-ipam against the reference bridge + host-local, side by side, interleaved.

Runs inside the node namespace (scripts/bench.sh puts it there and creates the pod namespaces).
Each plugin invocation is timed as a whole process, from spawn to exit (wait4), and its peak RSS
read from the same wait4. Rows alternate ours/reference so machine drift hits both alike.
"""
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

RUN, PLUGIN_DIR, DATA_DIR, OUT, TOOLS = sys.argv[1:6]
MAXRSS = os.path.join(TOOLS, "maxrss")
FLOOR = os.path.join(TOOLS, "floor")
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
# A pod lives a while before it is deleted; deleting right after creation would time the kernel
# finishing the ADD's RCU work too, and favour whichever plugin is slower to get to the delete.
SETTLE = float(os.environ.get("BENCH_SETTLE_MS", "30")) / 1000
BURST = int(os.environ.get("BENCH_BURST", "200"))

PLUGINS = {
    "bridge-ipam": ("bridge-ipam", "cni0", "10.244.0.0/16"),
    "reference": ("bridge", "cni1", "10.245.0.0/16"),
}


def config(which, subnet=None, version=None, masq=False):
    plugin_type, bridge, default_subnet = PLUGINS[which]
    return json.dumps({
        # Debian's reference plugins speak up to 1.0.0; both get the same version.
        "cniVersion": version or "1.0.0", "name": f"bench-{which}{'-masq' if masq else ''}", "type": plugin_type,
        "bridge": bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": masq,
        "ipam": {"type": "host-local", "subnet": subnet or default_subnet, "dataDir": DATA_DIR},
    }).encode()


def invoke(which, command, container, netns, conf=None):
    """Runs one plugin process; returns (seconds, peak RSS KiB)."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": PLUGIN_DIR, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    binary = os.path.join(PLUGIN_DIR, PLUGINS[which][0])
    start = time.perf_counter()
    proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    out, _ = proc.communicate(conf or config(which))
    _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{which} {command} {container} failed: {out.decode()}")
    return elapsed, (usage.ru_maxrss if usage else 0)


def spawn(argv, env, data=b""):
    """Runs argv as a whole process; returns (seconds from spawn to exit, stdout bytes)."""
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, r_in, 0), (os.POSIX_SPAWN_DUP2, w_out, 1),
        (os.POSIX_SPAWN_CLOSE, w_in), (os.POSIX_SPAWN_CLOSE, r_out)])
    os.close(r_in)
    os.close(w_out)
    os.write(w_in, data)
    os.close(w_in)
    chunks = []
    while True:
        chunk = os.read(r_out, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r_out)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {b''.join(chunks).decode()}")
    global last_cpu
    # CPU time (user + system) of the process: a DEL's wait for the kernel's RCU grace period is
    # spent asleep, so this is the work the process itself did.
    last_cpu = usage.ru_utime + usage.ru_stime
    return elapsed, b"".join(chunks)


last_cpu = 0.0
# The result of each ADD, by container: runtimes send it back as prevResult with the first DEL.
results = {}


def plugin_env(command, container, netns):
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0", "CNI_PATH": PLUGIN_DIR, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def invoke_rss(which, command, container, netns, masq=False):
    """Whole-process wall time of one plugin invocation. A DEL carries the ADD's result as
    prevResult, as a runtime's first DEL does."""
    binary = os.path.join(PLUGIN_DIR, PLUGINS[which][0])
    conf = config(which, masq=masq)
    key = (which, container, masq)
    if command == "DEL" and key in results:
        conf = json.dumps(dict(json.loads(conf), prevResult=json.loads(results.pop(key)))).encode()
    elapsed, out = spawn([binary], plugin_env(command, container, netns), conf)
    if command == "ADD":
        results[key] = out
    return elapsed, 0


def peak_rss(which, command, container, netns):
    """Peak RSS (KiB) of one invocation, measured by the maxrss helper (see bench/tools/maxrss.c)."""
    binary = os.path.join(PLUGIN_DIR, PLUGINS[which][0])
    proc = subprocess.run([MAXRSS, binary], input=config(which), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=plugin_env(command, container, netns))
    if proc.returncode != 0:
        raise SystemExit(f"{which} {command} failed under maxrss: {proc.stdout.decode()} {proc.stderr.decode()}")
    return int(proc.stderr.decode().strip().splitlines()[-1].split()[-1])


def pod(i):
    return f"/run/netns/{RUN}-p{i}"


def stats(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


rows = []


def row(name, ours, ref, unit="ms", lower_is_better=True):
    ratio = ours / ref if ref else float("nan")
    rows.append((name, ours, ref, ratio, unit))
    print(f"  {name:<44} {ours:>9.2f} {ref:>9.2f} {unit:<4} ratio {ratio:.2f}", flush=True)


def single_operations():
    samples = {w: {"ADD": [], "DEL": [], "CYCLE": [], "RSS_ADD": [], "RSS_DEL": []} for w in PLUGINS}
    for i in range(RUNS):
        for which in (("bridge-ipam", "reference") if i % 2 == 0 else ("reference", "bridge-ipam")):
            netns = pod(i if which == "bridge-ipam" else RUNS + i)
            add, _ = invoke_rss(which, "ADD", f"single-{i}", netns)
            time.sleep(SETTLE)
            delete, _ = invoke_rss(which, "DEL", f"single-{i}", netns)
            s = samples[which]
            s["ADD"].append(add * 1000)
            s["DEL"].append(delete * 1000)
            s["CYCLE"].append((add + delete) * 1000)
    for i in range(0 if LABEL else 5):
        for which in PLUGINS:
            netns = pod(i if which == "bridge-ipam" else RUNS + i)
            samples[which]["RSS_ADD"].append(peak_rss(which, "ADD", f"rss-{i}", netns) / 1024)
            samples[which]["RSS_DEL"].append(peak_rss(which, "DEL", f"rss-{i}", netns) / 1024)
    for op, label in (("ADD", "ADD"), ("DEL", "DEL"), ("CYCLE", "ADD+DEL cycle")):
        (om, op90), (rm, rp90) = stats(samples["bridge-ipam"][op]), stats(samples["reference"][op])
        row(f"{label} median ({RUNS} runs){LABEL}", om, rm)
        row(f"{label} p90{LABEL}", op90, rp90)
    if not LABEL:
        row("peak RSS, ADD (plugin process, max of 5)", max(samples["bridge-ipam"]["RSS_ADD"]), max(samples["reference"]["RSS_ADD"]), "MiB")
        row("peak RSS, DEL (plugin process, max of 5)", max(samples["bridge-ipam"]["RSS_DEL"]), max(samples["reference"]["RSS_DEL"]), "MiB")


def floor():
    """Our ADD and DEL against the floor program doing only one pod's kernel work and lease write."""
    floor_dir = os.path.join(DATA_DIR, "floor")
    os.makedirs(floor_dir, exist_ok=True)
    times = {"ours-ADD": [], "ours-DEL": [], "floor-ADD": [], "floor-DEL": []}
    cpu = {"ours": [], "floor": []}
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for i in range(RUNS):
        ours_ns, floor_ns = pod(i), pod(RUNS + i)
        order = ("ours", "floor") if i % 2 == 0 else ("floor", "ours")
        for phase in ("ADD", "DEL"):
            time.sleep(SETTLE)
            for who in order:
                if who == "ours":
                    elapsed, _ = invoke_rss("bridge-ipam", phase, f"floorcmp-{i}", ours_ns)
                elif phase == "ADD":
                    elapsed, _ = spawn([FLOOR, "add", floor_ns, "eth0", f"vfloor{i}", "cni0", f"10.244.200.{i + 1}/16",
                                        "10.244.0.1", os.path.join(floor_dir, f"10.244.200.{i + 1}")], env)
                else:
                    elapsed, _ = spawn([FLOOR, "del", floor_ns, "eth0", os.path.join(floor_dir, f"10.244.200.{i + 1}")], env)
                times[f"{who}-{phase}"].append(elapsed * 1000)
                if phase == "DEL":
                    cpu[who].append(last_cpu * 1000)
    for phase in ("ADD", "DEL"):
        row(f"{phase} median: bridge-ipam vs the floor program{LABEL}", statistics.median(times[f"ours-{phase}"]),
            statistics.median(times[f"floor-{phase}"]))
    row(f"DEL CPU time (user+system, not the RCU wait) vs floor{LABEL}", statistics.median(cpu["ours"]),
        statistics.median(cpu["floor"]))


def masquerade():
    """ADD and DEL with ipMasq, in steady state: another pod of the network stays up meanwhile,
    so ours only reads its rule on ADD and leaves nftables alone on DEL (the network's first ADD
    and last DEL pay one nftables transaction each). The reference runs iptables each time."""
    residents = {"bridge-ipam": pod(2 * RUNS - 1), "reference": pod(2 * RUNS - 2)}
    for which, netns in residents.items():
        invoke_rss(which, "ADD", "masq-resident", netns, masq=True)
    times = {w: {"ADD": [], "DEL": []} for w in PLUGINS}
    plain = {"ADD": [], "DEL": []}
    for i in range(RUNS // 2):
        for which in (("bridge-ipam", "reference") if i % 2 == 0 else ("reference", "bridge-ipam")):
            netns = pod(i if which == "bridge-ipam" else RUNS + i)
            add, _ = invoke_rss(which, "ADD", f"masq-{i}", netns, masq=True)
            time.sleep(SETTLE)
            delete, _ = invoke_rss(which, "DEL", f"masq-{i}", netns, masq=True)
            times[which]["ADD"].append(add * 1000)
            times[which]["DEL"].append(delete * 1000)
        add, _ = invoke_rss("bridge-ipam", "ADD", f"plain-{i}", pod(RUNS // 2 + i))
        time.sleep(SETTLE)
        delete, _ = invoke_rss("bridge-ipam", "DEL", f"plain-{i}", pod(RUNS // 2 + i))
        plain["ADD"].append(add * 1000)
        plain["DEL"].append(delete * 1000)
    for phase in ("ADD", "DEL"):
        row(f"{phase} median with ipMasq", statistics.median(times["bridge-ipam"][phase]), statistics.median(times["reference"][phase]))
    for phase in ("ADD", "DEL"):
        row(f"bridge-ipam {phase}: ipMasq on vs off (same run)", statistics.median(times["bridge-ipam"][phase]), statistics.median(plain[phase]))
    for which, netns in residents.items():
        invoke_rss(which, "DEL", "masq-resident", netns, masq=True)


def fill_leases(which, count):
    """Writes `count` leases of other containers in host-local's layout, from the top of the range down."""
    directory = os.path.join(DATA_DIR, f"bench-{which}")
    os.makedirs(directory, exist_ok=True)
    base = PLUGINS[which][2].split(".")[:2]
    for n in range(count):
        ip = f"{base[0]}.{base[1]}.{200 - n // 250}.{1 + n % 250}"
        with open(os.path.join(directory, ip), "w") as f:
            f.write(f"filler-{n}\r\neth0")


def clear_fillers(which):
    directory = os.path.join(DATA_DIR, f"bench-{which}")
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not os.path.isfile(path) or os.path.islink(path):
            continue  # our index entries and gateway records are dangling symlinks
        with open(path, "rb") as f:
            if f.read().startswith(b"filler-"):
                os.unlink(path)


def occupancy():
    result = {}
    for held in (0, 100, 250):
        for which in PLUGINS:
            fill_leases(which, held)
        times = {w: [] for w in PLUGINS}
        cpu = {w: [] for w in PLUGINS}
        cpu_bare = {w: [] for w in PLUGINS}
        for which in PLUGINS:
            # The first DEL after another writer (the fillers) reads every lease once, then trusts
            # our index again (see the README's lease section): the rows show the steady state.
            invoke_rss(which, "DEL", "occ-warm-up", pod(0 if which == "bridge-ipam" else RUNS))
        for i in range(RUNS // 2):
            for which in (("bridge-ipam", "reference") if i % 2 == 0 else ("reference", "bridge-ipam")):
                netns = pod(i if which == "bridge-ipam" else RUNS + i)
                add, _ = invoke_rss(which, "ADD", f"occ-{held}-{i}", netns)
                time.sleep(SETTLE)
                invoke_rss(which, "DEL", f"occ-{held}-{i}", netns)
                times[which].append(add * 1000)
                cpu[which].append(last_cpu * 1000)
                # The same without prevResult, as containerd's second and third DELs of a pod are.
                invoke_rss(which, "ADD", f"occ-bare-{held}-{i}", netns)
                results.pop((which, f"occ-bare-{held}-{i}", False), None)
                time.sleep(SETTLE)
                invoke_rss(which, "DEL", f"occ-bare-{held}-{i}", netns)
                cpu_bare[which].append(last_cpu * 1000)
        for which in PLUGINS:
            clear_fillers(which)
        result[held] = {w: statistics.median(t) for w, t in times.items()}
        result[held].update({f"{w}-del": statistics.median(c) for w, c in cpu.items()})
        result[held].update({f"{w}-bare": statistics.median(c) for w, c in cpu_bare.items()})
        row(f"ADD median with {held} leases held", result[held]["bridge-ipam"], result[held]["reference"])
        row(f"DEL CPU time with {held} leases held", result[held]["bridge-ipam-del"], result[held]["reference-del"])
        row(f"DEL CPU time without prevResult, {held} leases held", result[held]["bridge-ipam-bare"], result[held]["reference-bare"])
    row("ADD at 250 leases / ADD at 0 leases", result[250]["bridge-ipam"] / result[0]["bridge-ipam"],
        result[250]["reference"] / result[0]["reference"], "x")
    row("DEL CPU at 250 leases / DEL CPU at 0 leases", result[250]["bridge-ipam-del"] / result[0]["bridge-ipam-del"],
        result[250]["reference-del"] / result[0]["reference-del"], "x")
    row("DEL CPU without prevResult, 250 leases / 0 leases", result[250]["bridge-ipam-bare"] / result[0]["bridge-ipam-bare"],
        result[250]["reference-bare"] / result[0]["reference-bare"], "x")


def burst():
    for phase in ("ADD", "DEL"):
        totals = {}
        for which in (("bridge-ipam", "reference") if phase == "ADD" else ("reference", "bridge-ipam")):
            offset = 0 if which == "bridge-ipam" else BURST
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda i: invoke(which, phase, f"burst-{i}", f"/run/netns/{RUN}-b{offset + i}"), range(BURST)))
            totals[which] = time.perf_counter() - start
        row(f"burst of {BURST} {phase}s, 8 at a time: pods/s", BURST / totals["bridge-ipam"], BURST / totals["reference"], "/s")
        if phase == "ADD":
            for which in PLUGINS:
                directory = os.path.join(DATA_DIR, f"bench-{which}")
                leases = [n for n in os.listdir(directory) if n[0].isdigit()]
                owners = []
                for n in leases:
                    with open(os.path.join(directory, n), "rb") as f:
                        owners.append(f.read().split(b"\r\n")[0])
                if len(leases) != BURST or len(set(owners)) != BURST:
                    raise SystemExit(f"{which}: {len(leases)} leases for {BURST} pods, {len(set(owners))} owners: duplicate or lost")
    for which in PLUGINS:
        directory = os.path.join(DATA_DIR, f"bench-{which}")
        left = [n for n in os.listdir(directory) if n[0].isdigit()]
        if left:
            raise SystemExit(f"{which}: leases left after the burst DEL: {left[:5]}")
    print("  burst: no address handed out twice, no lease left behind", flush=True)


LABEL = ""


def loaded():
    """The single-operation and floor passes again with both cores kept busy by CPU hogs: a node
    under load is where per-process overhead shows most."""
    global LABEL
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        LABEL = ", loaded"
        single_operations()
        floor()
    finally:
        LABEL = ""
        for hog in hogs:
            hog.kill()
            hog.wait()


if __name__ == "__main__":
    print(f"{'':<46} {'ours':>9} {'reference':>9}  (floor rows: the floor program, on/off rows: ipMasq off, in the second column)", flush=True)
    single_operations()
    floor()
    if os.environ.get("BENCH_LOADED", "1") == "1":
        loaded()
    masquerade()
    occupancy()
    burst()
    with open(OUT, "w") as f:
        f.write("| measurement | bridge-ipam | reference (floor rows: floor program; on/off rows: ipMasq off) | unit | ratio |\n|---|---:|---:|---|---:|\n")
        for name, ours, ref, ratio, unit in rows:
            f.write(f"| {name} | {ours:.2f} | {ref:.2f} | {unit} | {ratio:.2f} |\n")
