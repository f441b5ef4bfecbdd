#!/usr/bin/env python3
"""kill -9 at random points of ADD and DEL, then the runtime's DEL: nothing may be left.

Run inside the namespace that plays the node (the test's own):
  ip netns exec RUN-node python3 crash-cni.py --bin PLUGIN --config FILE --data-dir DIR --pod-netns NS... --kills N

Each kill point is drawn (fixed seed) between 0 and 1.2x the verb's measured duration, so kills
land all along the plugin's run. After each kill the runtime's DEL must succeed (exit 0, within
the timeout) and leave no lease of the container, no temporary file, no interface in its pod and
no veth in the node. Half of the killed ADDs are reaped only after that DEL: a killed process
that its parent has not reaped yet still answers to its PID. At the end the lease directory
holds nothing but the lock, the last-reserved hints and no index entry.
"""
import argparse
import os
import random
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--pod-netns", nargs="+", required=True)
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    config = open(args.config, "rb").read()
    figures = {"kills": 0, "landed": 0, "late_reaped": 0, "hangs": 0, "signals": 0, "failed_dels": 0, "leaks": 0,
               "temporaries": 0}
    problems = []

    def env(command, cid, netns):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
                "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(args.bin)}

    def run(command, cid, netns):
        try:
            p = subprocess.run([args.bin], input=config, env=env(command, cid, netns), capture_output=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            figures["hangs"] += 1
            problems.append(f"{command} {cid}: hang")
            return None
        if p.returncode < 0:
            figures["signals"] += 1
            problems.append(f"{command} {cid}: signal {-p.returncode}")
        return p

    def timed(command, cid, netns):
        start = time.monotonic()
        p = run(command, cid, netns)
        if p is None or p.returncode != 0:
            problems.append(f"calibration {command} {cid} failed: {p and p.stdout[:200]!r}")
        return time.monotonic() - start

    def kill_during(command, cid, netns, span, reap=True):
        """Kills the verb at a random point; returns the process when the caller reaps it."""
        p = subprocess.Popen([args.bin], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env(command, cid, netns))
        # Write the config first, so the kill lands in the plugin's work and not in its wait for stdin.
        p.stdin.write(config)
        p.stdin.close()
        time.sleep(rng.uniform(0, span))
        p.kill()
        figures["kills"] += 1
        if not reap:
            figures["late_reaped"] += 1
            return p
        reaped(p)
        return None

    def reaped(p):
        p.wait()
        if p.returncode == -9:
            figures["landed"] += 1

    def leftovers(cid, netns):
        left = []
        for root, _, files in os.walk(args.data_dir):
            for f in files:
                path = os.path.join(root, f)
                try:
                    with open(path, "rb") as fh:
                        if fh.read(512).split(b"\r\n")[0] == cid.encode():
                            left.append(f"lease {path}")
                except OSError:
                    pass
                if f.endswith(".tmp"):
                    figures["temporaries"] += 1
                    left.append(f"temporary file {path}")
        links = subprocess.run(["ip", "-n", os.path.basename(netns), "-o", "link"], capture_output=True, text=True).stdout
        left += [f"{netns}: {l[:80]}" for l in links.splitlines() if ": lo:" not in l]
        veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout.strip()
        if veths:
            left.append("node veths: " + veths[:200])
        return left

    pods = args.pod_netns
    # Calibration: how long each verb takes here, end to end.
    add_time = max(timed("ADD", "cal", pods[0]), 0.001)
    del_time = max(timed("DEL", "cal", pods[0]), 0.001)
    for i in range(args.kills):
        netns = pods[i % len(pods)]
        cid = f"kill-{i}"
        late = None
        if i % 2 == 0:
            late = kill_during("ADD", cid, netns, 1.2 * add_time, reap=rng.random() < 0.5)
        else:
            p = run("ADD", cid, netns)
            if p is None or p.returncode != 0:
                problems.append(f"ADD {cid} failed: {p and p.stdout[:200]!r}")
            kill_during("DEL", cid, netns, 1.2 * del_time)
        d = run("DEL", cid, netns)
        if d is None or d.returncode != 0:
            figures["failed_dels"] += 1
            problems.append(f"the runtime's DEL of {cid} failed: {d and d.stdout[:200]!r}")
        if late:
            reaped(late)
        left = leftovers(cid, netns)
        if left:
            figures["leaks"] += 1
            problems.append(f"after {cid}: " + "; ".join(left))
    directory = args.data_dir
    stray = [n for n in os.listdir(directory) if n != "lock" and not n.startswith(("last_reserved_ip.", ".gateway."))]
    if stray:
        problems.append(f"left in {directory} at the end: {' '.join(sorted(stray)[:10])}")
    for line in problems[:20]:
        print("  " + line)
    f = figures
    print(f"kill -9: {f['kills']} kills, seed {args.seed} ({f['landed']} landed before the verb finished, {f['late_reaped']} "
          f"reaped after the runtime's DEL; ADD {add_time * 1000:.1f} ms, DEL {del_time * 1000:.1f} ms here); hangs {f['hangs']}, "
          f"signals {f['signals']}, failed DELs {f['failed_dels']}, leaks {f['leaks']}, temporary files {f['temporaries']}, "
          f"left at the end {len(stray)}")
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
