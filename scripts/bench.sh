#!/usr/bin/env bash
# make bench: bridge-ipam against the reference bridge + host-local (Debian's
# containernetworking-plugins), interleaved in one run, inside namespaces of its own.
source "$(dirname "$0")/lib.sh"
setup_run
RUNS=${BENCH_RUNS:-40}
BURST=${BENCH_BURST:-200}
OUT=${BENCH_OUT:-$REPO/bench/RESULTS.md}

TOOLS=$RUN_DIR/tools
mkdir -p "$TOOLS"
cc -O2 -o "$TOOLS/maxrss" "$REPO/bench/tools/maxrss.c" || exit 1
cc -O2 -o "$TOOLS/floor" "$REPO/bench/tools/floor.c" -lmnl || exit 1

new_ns node
echo "creating $((2 * RUNS + 2 * BURST)) pod namespaces..."
for i in $(seq 0 $((2 * RUNS - 1))); do ip netns add $RUN-p$i; done
for i in $(seq 0 $((2 * BURST - 1))); do ip netns add $RUN-b$i; done
mkdir -p "$(dirname "$OUT")"
{
    echo "# make bench"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), inside a node namespace."
    echo "Reference: Debian containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null) (bridge + host-local)."
    echo "Whole-process wall time from spawn to exit; peak RSS from wait4 of the plugin process"
    echo "(the reference's host-local runs as a child of bridge and is not included in its RSS)."
    echo "DEL carries the ADD's result as prevResult, as a runtime's first DEL does. CPU time is user +"
    echo "system time from wait4: a DEL's wait for the kernel's RCU grace period is spent asleep."
    echo "Rows marked 'loaded' repeat the pass with a CPU hog on every core (BENCH_LOADED=0 skips them)."
    echo
} >"$OUT.head"
ip netns exec $RUN-node python3 "$REPO/scripts/bench.py" "$RUN" "$PLUGIN_DIR" "$DATA_DIR" "$OUT.table" "$TOOLS" || exit 1
# User-space instructions (callgrind: insensitive to load) and CPU time of ADD and of DEL with
# and without prevResult, at 0 and 250 leases held (issue 22 item 2). valgrind cannot read the
# static binary's debug info: it measures a stripped copy.
new_ns pod
strip -o "$RUN_DIR/bridge-ipam.stripped" "$PLUGIN_DIR/bridge-ipam"
echo "callgrind and CPU time of ADD and DEL at 0 and 250 leases..."
ip netns exec $RUN-node python3 "$REPO/scripts/ipam-cost.py" "$RUN" "$DATA_DIR/cost" "${BENCH_COST_RUNS:-12}" \
    "bridge-ipam=$RUN_DIR/bridge-ipam.stripped" >"$OUT.cost" || exit 1
cat "$OUT.cost"
{
    echo
    echo "ADD and DEL at 0 and 250 leases held (scripts/ipam-cost.py: median user-space instructions under callgrind,"
    echo "median CPU time without it; DEL without prevResult is containerd's second and third DEL of a pod):"
    echo
    echo '```'
    cat "$OUT.cost"
    echo '```'
} >>"$OUT.table"
cat "$OUT.head" "$OUT.table" >"$OUT"
rm -f "$OUT.head" "$OUT.table" "$OUT.cost"
echo
echo "written to ${OUT#$REPO/}"
