#!/usr/bin/env bash
# The cost of the invocation log on ADD: the same ADD with logging off, at info and at debug,
# measured three ways on a node namespace of its own (not part of `make test`):
#   1. user-space instructions (valgrind --tool=callgrind; insensitive to machine load),
#   2. system calls (strace -f -c),
#   3. wall and CPU time, interleaved runs (medians; noisy on a loaded machine).
# Usage (root): bash bench/log-cost.sh [CALLGRIND_RUNS [WALL_RUNS]]
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
CG_RUNS=${1:-5}
WALL_RUNS=${2:-300}
for tool in valgrind strace; do command -v $tool >/dev/null || { echo "needs $tool (apt-get install $tool)"; exit 1; }; done

setup_run
new_ns node
new_ns pod
OFF=$(conf podnet 10.244.1.0/24)
INFO=$(jq -c --arg f "$RUN_DIR/info.log" '.logFile = $f' <<<"$OFF")
DEBUG=$(jq -c --arg f "$RUN_DIR/debug.log" '.logFile = $f | .logLevel = "debug"' <<<"$OFF")
declare -A CONF=([off]=$OFF [info]=$INFO [debug]=$DEBUG)
MODES="off info debug"

# valgrind cannot read the debug info of the static Swift binary: it measures a stripped copy.
strip -o "$RUN_DIR/bridge-ipam.stripped" "$PLUGIN_DIR/bridge-ipam"
BINARY=$PLUGIN_DIR/bridge-ipam

# plugin VERB CONFIG [WRAPPER...]: one invocation in the node namespace on the pod.
plugin() {
    local verb=$1 config=$2; shift 2
    printf '%s' "$config" | ip netns exec $RUN-node env -i CNI_COMMAND=$verb CNI_CONTAINERID=cost CNI_NETNS=/run/netns/$RUN-pod \
        CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$@" "$BINARY"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f%%", (b - a) * 100 / a }'; }

plugin ADD "$OFF" >/dev/null && plugin DEL "$OFF" >/dev/null   # warm: bridge and lease directory exist

echo "== user-space instructions per ADD (callgrind, median of $CG_RUNS, interleaved)"
declare -A IR
for i in $(seq 1 "$CG_RUNS"); do
    for m in $MODES; do
        BINARY=$RUN_DIR/bridge-ipam.stripped plugin ADD "${CONF[$m]}" valgrind -q --tool=callgrind --callgrind-out-file="$RUN_DIR/cg.$m.$i" >/dev/null
        plugin DEL "${CONF[$m]}" >/dev/null
        IR[$m]+="$(awk '/^(summary|totals):/ { print $2; exit }' "$RUN_DIR/cg.$m.$i") "
    done
done
for m in $MODES; do
    IR[$m]=$(tr ' ' '\n' <<<"${IR[$m]}" | grep . | median)
    printf '  %-6s %12d Ir  %s\n' $m "${IR[$m]}" "$([ $m = off ] || pct "${IR[off]}" "${IR[$m]}")"
done

echo "== system calls per ADD (strace -f -c)"
# calls FILE: "name count" per system call of an strace -c summary (calls is the 4th column; the
# errors column after it is empty for calls that never failed).
calls() { awk 'NR > 2 && !/^-/ && $NF != "total" { print $NF, $4 }' "$1" | sort; }
for m in $MODES; do
    plugin ADD "${CONF[$m]}" strace -f -c -o "$RUN_DIR/st.$m" >/dev/null
    plugin DEL "${CONF[$m]}" >/dev/null
    total=$(calls "$RUN_DIR/st.$m" | awk '{ n += $2 } END { print n }')
    more=$(join -a 2 -e 0 -o 0,1.2,2.2 <(calls "$RUN_DIR/st.off") <(calls "$RUN_DIR/st.$m") | awk '$3 != $2 { printf "%s %+d, ", $1, $3 - $2 }')
    printf '  %-6s %4d calls  %s\n' $m "$total" "${more%, }"
done

echo "== wall and CPU time per ADD, spawn to exit (medians of $WALL_RUNS, interleaved; CPU = user + system from wait4)"
ip netns exec $RUN-node python3 - "$PLUGIN_DIR" "$RUN" "$WALL_RUNS" "$OFF" "$INFO" "$DEBUG" <<'PY'
import os, subprocess, sys, time, statistics
plugin_dir, run, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
confs = dict(zip(["off", "info", "debug"], [c.encode() for c in sys.argv[4:7]]))
wall = {m: [] for m in confs}
cpu = {m: [] for m in confs}
env = {"CNI_CONTAINERID": "cost", "CNI_NETNS": f"/run/netns/{run}-pod", "CNI_IFNAME": "eth0", "CNI_PATH": plugin_dir}
def add(mode):
    t = time.perf_counter_ns()
    p = subprocess.Popen([plugin_dir + "/bridge-ipam"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env, CNI_COMMAND="ADD"))
    p.stdin.write(confs[mode]); p.stdin.close()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall[mode].append(time.perf_counter_ns() - t)
    cpu[mode].append((usage.ru_utime + usage.ru_stime) * 1e9)
    if status: sys.exit(f"ADD failed: {out!r}")
    subprocess.run([plugin_dir + "/bridge-ipam"], input=confs[mode], env=dict(env, CNI_COMMAND="DEL"), capture_output=True, check=True)
for i in range(runs):
    for m in (["off", "info", "debug"] if i % 2 else ["debug", "info", "off"]):
        add(m)
for name, d in (("wall", wall), ("CPU", cpu)):
    base = statistics.median(d["off"])
    print(f"  {name:4s} " + "  ".join(f"{m} {statistics.median(t) / 1e6:.3f} ms" + ("" if m == "off" else f" ({100 * (statistics.median(t) - base) / base:+.1f}%)") for m, t in d.items()))
PY
finish
