#!/usr/bin/env bash
# make bench, the node agent's part: one agent against the stand-in API server with 500 and
# 5000 Nodes (realistic objects: conditions, images, nodeInfo; about 5 KB each), inside
# namespaces of its own. Measures the initial sync (process start to every route installed and
# ready), one change to its route (ip monitor's timestamp), the agent's peak RSS, and its CPU
# time per 1000 watch events (node heartbeats, which change no route). Writes bench/AGENT.md.
RUN=${RUN:-p21bench$$}
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/agent-lib.sh"
SIZES=${AGENT_BENCH_SIZES:-500 5000}
OUT=${AGENT_BENCH_OUT:-$REPO/bench/AGENT.md}
setup_run
[ -x "$AGENT_BIN" ] || { echo "no agent binary at $AGENT_BIN (make build)"; exit 1; }
make_pki
new_ns underlay
ip -n $RUN-underlay link add ul0 type bridge
ip -n $RUN-underlay link set ul0 up
apiserver_up || exit 1
write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"
new_ns node
ip -n $RUN-underlay link add nnode type veth peer name eth0 netns $RUN-node
ip -n $RUN-underlay link set nnode master ul0 up
ip -n $RUN-node addr add 192.168.1.240/24 dev eth0
ip -n $RUN-node link set eth0 up
# The other nodes' addresses (172.20.0.0/16) are on-link through a veth pair of its own.
ip -n $RUN-node link add nodes0 type veth peer name nodes1
ip -n $RUN-node addr add 172.20.0.1/16 dev nodes0
ip -n $RUN-node link set nodes0 up
ip -n $RUN-node link set nodes1 up
{
    echo "# make bench: the node agent"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores (load average $(cut -d" " -f1-3 /proc/loadavg) at the start), kernel $(uname -r); the stand-in API server (Tests/support/fake-apiserver.py)"
    echo "and the agent in namespaces of their own; Node objects of about 5 KB (conditions, 20 images)."
    echo "Initial sync: agent start to every route installed and /readyz 200 (wall time, and the agent's"
    echo "CPU time: on a loaded machine the wall time is mostly waiting for the Python server). Change to route: a Node's"
    echo "InternalIP changed in the API to its route replaced in the kernel (ip monitor), median of 5."
    echo "CPU per 1000 watch events: user+system time for 1000 MODIFIED heartbeats (no route changes)."
    echo "Peak RSS: VmHWM at the end. Targets at 5000 nodes: sync <= 2 s, change <= 100 ms, RSS <= 40 MiB."
    echo
    echo "| nodes | initial sync | change to route | peak RSS | CPU / 1000 events | list pages |"
    echo "|------:|-------------:|----------------:|---------:|------------------:|-----------:|"
} >"$OUT.tmp"
for size in $SIZES; do
    ip netns exec $RUN-underlay python3 "$REPO/bench/bench-agent.py" --run "$RUN" --agent "$AGENT_BIN" --kubeconfig "$KUBECONFIG_FILE" \
        --dir "$RUN_DIR" --nodes "$size" >>"$OUT.tmp" || { echo "bench at $size nodes failed"; cat "$RUN_DIR/agent.log" | tail; exit 1; }
done
[ -n "${AGENT_BENCH_LOG:-}" ] && cp "$RUN_DIR/agent.log" "$AGENT_BENCH_LOG"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
echo
echo "written to ${OUT#$REPO/}"
