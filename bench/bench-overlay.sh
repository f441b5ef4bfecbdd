#!/usr/bin/env bash
# What the overlay costs: pod-to-pod TCP throughput (iperf3) and ICMP round trip between pods
# on two nodes of one subnet, with the agents in direct mode against vxlan mode. Short by
# default: 5 rounds (BENCH_ROUNDS) of 2 s (BENCH_SECONDS) per mode.
RUN=${RUN:-p20b$$}
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/cluster.sh"
source "$(dirname "$0")/../Tests/integration/lib/agent-lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/overlay-lib.sh"
SECONDS_PER_RUN=${BENCH_SECONDS:-2}
OUT=${BENCH_OUT:-$REPO/bench/OVERLAY.md}
command -v iperf3 >/dev/null || { echo "needs iperf3 (make bench installs it)"; exit 1; }
extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; }
setup_run
overlay_router || exit 1
ROUNDS=${BENCH_ROUNDS:-5}
# Two pairs of nodes on one subnet: node0 -> node1 with their agents in direct mode, node2 ->
# node3 in vxlan mode; the pairs are measured in turn, round after round, so that the load of a
# shared machine falls on both alike. Medians of the rounds.
for n in 0 1 2 3; do vx_node $n 192.168.1.1$n; vx_api_node $n 192.168.1.1$n; done
agent_start 0 --routing direct
agent_start 1 --routing direct
agent_start 2 --routing vxlan
agent_start 3 --routing vxlan
wait_until 10 in_shell "direct_to 0 1 && tunnel_to 2 3 && tunnel_to 3 2" || { echo "the agents did not converge: $(tail -n 3 $RUN_DIR/node2/agent.log)"; exit 1; }
for n in 0 1 2 3; do wait_until 5 test -f "$RUN_DIR/node$n/ready"; add_pod $n || exit 1; done
ping_ok pod0 ${POD[1]} && ping_ok pod2 ${POD[3]} || { echo "pods do not reach each other"; exit 1; }

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# round FROM TO: one iperf3 run and one ping series; appends to $RUN_DIR/tput.FROM and rtt.FROM.
round() {
    local from=$1 to=$2 server
    ip netns exec $RUN-pod$to iperf3 -s -1 >/dev/null 2>&1 &
    server=$!
    sleep 0.3
    ip netns exec $RUN-pod$from iperf3 -c ${POD[$to]} -t $SECONDS_PER_RUN -J | jq '.end.sum_received.bits_per_second / 1e9' >>"$RUN_DIR/tput.$from"
    wait $server
    ip netns exec $RUN-pod$from ping -n -q -c 200 -i 0.002 ${POD[$to]} | awk -F/ '/^rtt/ { print $5 }' >>"$RUN_DIR/rtt.$from"
}
for r in $(seq 1 $ROUNDS); do round 0 1; round 2 3; done
row() { printf '| %-6s | %4s | %8.2f Gbit/s | %6.3f ms |\n' $1 "$(ip -n $RUN-pod$2 -j link show eth0 | jq '.[0].mtu')" "$(median <"$RUN_DIR/tput.$2")" "$(median <"$RUN_DIR/rtt.$2")"; }
{
    echo "# make bench: direct routes against VXLAN"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores (load average $(cut -d" " -f1 /proc/loadavg)), kernel $(uname -r); two pairs of nodes on one subnet (veths), one pod each."
    echo "Medians of $ROUNDS rounds, the two modes in turn. TCP: iperf3, one stream, ${SECONDS_PER_RUN} s per round. RTT: average of 200 pings at 2 ms intervals."
    echo "Both modes run the same path but for the VXLAN device; on real NICs encapsulation costs more"
    echo "(no offloads in veths here, and the 50-byte header is 3% of a 1500-byte frame)."
    echo
    echo "| mode   | MTU  | pod -> pod TCP    | RTT       |"
    echo "|--------|------|-------------------|-----------|"
    row direct 0
    row vxlan 2
} | tee "$OUT"
for n in 0 1 2 3; do del_pod $n; done
echo
echo "written to ${OUT#$REPO/}"
