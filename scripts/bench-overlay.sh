#!/usr/bin/env bash
# What the overlay costs: pod-to-pod TCP throughput (iperf3) and ICMP round trip between two
# pods on two nodes of one subnet, with the agents in direct mode and then in vxlan mode (the
# same path through the VXLAN device). Short by default (BENCH_SECONDS=3 per iperf3 run).
RUN=${RUN:-p20b$$}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster.sh"
source "$(dirname "$0")/agent-lib.sh"
source "$(dirname "$0")/overlay-lib.sh"
SECONDS_PER_RUN=${BENCH_SECONDS:-3}
OUT=${BENCH_OUT:-$REPO/bench/OVERLAY.md}
command -v iperf3 >/dev/null || { echo "needs iperf3 (make bench installs it)"; exit 1; }
extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; }
setup_run
overlay_router || exit 1
vx_node 0 192.168.1.10
vx_node 1 192.168.1.11
vx_api_node 0 192.168.1.10
vx_api_node 1 192.168.1.11

# measure MODE: agents in MODE, fresh pods (their MTU follows the mode), then the figures.
measure() {
    local mode=$1 n tput rtt mtu
    for n in 0 1; do agent_stop $n; agent_start $n --routing $mode; done
    wait_until 5 bash -c "grep -qs 'FLANNEL_MTU=$([ $mode = direct ] && echo 1500 || echo 1450)' $RUN_DIR/node0/podcidr && grep -qs FLANNEL_MTU $RUN_DIR/node1/podcidr && [ -n \"\$(ip -n $RUN-node0 route show proto 212)\" ]" || { echo "agents in $mode mode did not converge: $(tail -n 5 $RUN_DIR/node0/agent.log)"; return 1; }
    for n in 0 1; do [ -e /run/netns/$RUN-pod$n ] && del_pod $n; add_pod $n || return 1; done
    mtu=$(ip -n $RUN-pod0 -j link show eth0 | jq '.[0].mtu')
    ping_ok pod0 ${POD[1]} || { echo "pod0 cannot reach pod1 in $mode mode"; return 1; }
    ip netns exec $RUN-pod1 iperf3 -s -1 >/dev/null 2>&1 &
    local server=$!
    sleep 0.3
    tput=$(ip netns exec $RUN-pod0 iperf3 -c ${POD[1]} -t $SECONDS_PER_RUN -J | jq '.end.sum_received.bits_per_second / 1e9')
    wait $server
    rtt=$(ip netns exec $RUN-pod0 ping -n -q -c 500 -i 0.002 ${POD[1]} | awk -F/ '/^rtt/ { print $5 }')
    printf '| %-6s | %4s | %8.2f Gbit/s | %6s ms |\n' $mode $mtu $tput $rtt
}
{
    echo "# make bench: direct routes against VXLAN"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores (load average $(cut -d" " -f1 /proc/loadavg) at the start), kernel $(uname -r); two nodes on one subnet (veths), one pod each."
    echo "TCP: iperf3, one stream, ${SECONDS_PER_RUN} s, pod0 -> pod1. RTT: average of 500 pings at 2 ms intervals."
    echo "Both modes run the same path but for the VXLAN device; on real NICs encapsulation costs more"
    echo "(no offloads in veths here, and the 50-byte header is 3% of a 1500-byte frame)."
    echo
    echo "| mode   | MTU  | pod -> pod TCP    | RTT       |"
    echo "|--------|------|-------------------|-----------|"
    measure direct || exit 1
    measure vxlan || exit 1
} | tee "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
for n in 0 1; do del_pod $n; done
echo
echo "written to ${OUT#$REPO/}"
