#!/usr/bin/env bash
# The cost of a build change on ADD: two plugin binaries, the same ADD (then DEL) on a node
# namespace of its own, measured three ways (not part of `make test`):
#   1. user-space instructions (valgrind --tool=callgrind; insensitive to machine load),
#   2. system calls (strace -f -c),
#   3. wall and CPU time, interleaved runs (medians; noisy on a loaded machine).
# Usage (root): bash bench/compare-builds.sh BEFORE AFTER [CALLGRIND_RUNS [WALL_RUNS]]
# e.g. a copy of .build/release/bridge-ipam from main against this tree's.
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 BEFORE AFTER [CALLGRIND_RUNS [WALL_RUNS]]"; exit 2; }
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
CG_RUNS=${3:-5}
WALL_RUNS=${4:-300}
for tool in valgrind strace; do command -v $tool >/dev/null || { echo "needs $tool (apt-get install $tool)"; exit 1; }; done

setup_run
new_ns node
new_ns pod
CONF=$(conf podnet 10.244.1.0/24)
declare -A BINARY
for b in before after; do
    BINARY[$b]=$PLUGIN_DIR/bridge-ipam.$b
    # valgrind cannot read the debug info of the static Swift runtime: it measures stripped copies.
    strip -o "$RUN_DIR/bridge-ipam.$b.stripped" "$([ $b = before ] && echo "$BEFORE" || echo "$AFTER")"
    cp "$([ $b = before ] && echo "$BEFORE" || echo "$AFTER")" "${BINARY[$b]}"
done

# plugin BINARY VERB [WRAPPER...]: one invocation in the node namespace on the pod.
plugin() {
    local binary=$1 verb=$2; shift 2
    printf '%s' "$CONF" | ip netns exec $RUN-node env -i CNI_COMMAND=$verb CNI_CONTAINERID=cost CNI_NETNS=/run/netns/$RUN-pod \
        CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$@" "$binary"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f%%", (b - a) * 100 / a }'; }

for b in before after; do   # warm: the bridge and the lease directory exist; each binary runs once
    plugin "${BINARY[$b]}" ADD >/dev/null && plugin "${BINARY[$b]}" DEL >/dev/null || { echo "$b: ADD/DEL failed"; exit 1; }
done

echo "== user-space instructions per ADD (callgrind, median of $CG_RUNS, interleaved)"
declare -A IR
for i in $(seq 1 "$CG_RUNS"); do
    for b in before after; do
        plugin "$RUN_DIR/bridge-ipam.$b.stripped" ADD valgrind -q --tool=callgrind --callgrind-out-file="$RUN_DIR/cg.$b.$i" >/dev/null
        plugin "${BINARY[$b]}" DEL >/dev/null
        IR[$b]+="$(awk '/^(summary|totals):/ { print $2; exit }' "$RUN_DIR/cg.$b.$i") "
    done
done
for b in before after; do
    IR[$b]=$(tr ' ' '\n' <<<"${IR[$b]}" | grep . | median)
    printf '  %-6s %12d Ir  %s\n' $b "${IR[$b]}" "$([ $b = before ] || pct "${IR[before]}" "${IR[$b]}")"
done

echo "== system calls per ADD (strace -f -c)"
# calls FILE: "name count" per system call of an strace -c summary (calls is the 4th column; the
# errors column after it is empty for calls that never failed).
calls() { awk 'NR > 2 && !/^-/ && $NF != "total" { print $NF, $4 }' "$1" | sort; }
for b in before after; do
    plugin "${BINARY[$b]}" ADD strace -f -c -o "$RUN_DIR/st.$b" >/dev/null
    plugin "${BINARY[$b]}" DEL >/dev/null
    total=$(calls "$RUN_DIR/st.$b" | awk '{ n += $2 } END { print n }')
    more=$(join -a 1 -a 2 -e 0 -o 0,1.2,2.2 <(calls "$RUN_DIR/st.before") <(calls "$RUN_DIR/st.$b") | awk '$3 != $2 { printf "%s %+d, ", $1, $3 - $2 }')
    printf '  %-6s %4d calls  %s\n' $b "$total" "${more%, }"
done

echo "== wall and CPU time, page faults and context switches per ADD, spawn to exit (medians of $WALL_RUNS,"
echo "   interleaved; from wait4: CPU = user + system, switches = voluntary + involuntary)"
ip netns exec $RUN-node python3 - "$PLUGIN_DIR" "$RUN" "$WALL_RUNS" "$CONF" <<'PY'
import os, subprocess, sys, statistics, time
plugin_dir, run, runs, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
builds = ["before", "after"]
wall = {b: [] for b in builds}
cpu = {b: [] for b in builds}
faults = {b: [] for b in builds}
switches = {b: [] for b in builds}
env = {"CNI_CONTAINERID": "cost", "CNI_NETNS": f"/run/netns/{run}-pod", "CNI_IFNAME": "eth0", "CNI_PATH": plugin_dir}
def add(build):
    binary = f"{plugin_dir}/bridge-ipam.{build}"
    t = time.perf_counter_ns()
    p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env, CNI_COMMAND="ADD"))
    p.stdin.write(conf); p.stdin.close()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall[build].append(time.perf_counter_ns() - t)
    cpu[build].append((usage.ru_utime + usage.ru_stime) * 1e9)
    faults[build].append(usage.ru_minflt + usage.ru_majflt)
    switches[build].append(usage.ru_nvcsw + usage.ru_nivcsw)
    if status: sys.exit(f"{build}: ADD failed: {out!r}")
    subprocess.run([binary], input=conf, env=dict(env, CNI_COMMAND="DEL"), capture_output=True, check=True)
for i in range(runs):
    for b in (builds if i % 2 else builds[::-1]):
        add(b)
for name, d in (("wall", wall), ("CPU", cpu)):
    base = statistics.median(d["before"])
    print(f"  {name:4s} " + "  ".join(f"{b} {statistics.median(t) / 1e6:.3f} ms" + ("" if b == "before" else f" ({100 * (statistics.median(t) - base) / base:+.1f}%)") for b, t in d.items()))
for name, d in (("page faults", faults), ("context switches", switches)):
    print(f"  {name}: " + "  ".join(f"{b} {statistics.median(n):g}" for b, n in d.items()))
PY
