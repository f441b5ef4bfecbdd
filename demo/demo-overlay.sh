#!/usr/bin/env bash
# A cluster across two subnets: four nodes, two on 192.168.1.0/24 and two on 192.168.2.0/24,
# joined by a router that knows no pod route and drops pod-addressed packets. The agents, in
# their default auto mode, route same-subnet peers directly and the others through VXLAN.
RUN=${RUN:-p20d$$}
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/cluster.sh"
source "$(dirname "$0")/../Tests/integration/lib/agent-lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/overlay-lib.sh"
extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; }
setup_run
overlay_router || exit 1
echo "router: 192.168.1.1/24 | 192.168.2.1/24, no pod routes, pod addresses refused"
echo "== node0, node1 on subnet A; node2, node3 on subnet B; an agent on each (--routing auto)"
vx_node 0 192.168.1.10; vx_node 1 192.168.1.11; vx_node 2 192.168.2.10; vx_node 3 192.168.2.11
for n in 0 1 2 3; do vx_api_node $n ${VX_IP[$n]}; agent_start $n; done
wait_until 10 in_shell "direct_to 0 1 && tunnel_to 0 2 && tunnel_to 0 3 && tunnel_to 3 0 && tunnel_to 2 1" || { echo "the agents did not converge"; exit 1; }
echo
echo "node0's agent log:"
sed 's/^/  /' "$RUN_DIR/node0/agent.log"
echo
echo "node0's routes (proto 212): node1 directly, node2 and node3 through $OVERLAY_DEV"
ip -n $RUN-node0 route show proto 212 | sed 's/^/  /'
echo "its VXLAN device, neighbour and FDB entries:"
ip -n $RUN-node0 -d -br addr show dev $OVERLAY_DEV | sed 's/^/  /'
ip -n $RUN-node0 -d link show dev $OVERLAY_DEV | grep -o 'vxlan id .*' | sed 's/^/  /'
neigh_of 0 | sed 's/^/  neigh /'
fdb_of 0 | sed 's/^/  fdb   /'
echo "subnet file: $(tr '\n' ' ' <"$RUN_DIR/node0/podcidr")"
echo
for n in 0 1 2 3; do add_pod $n || exit 1; done
echo "== one pod per node (MTU $(ip -n $RUN-pod0 -j link show eth0 | jq '.[0].mtu') from the subnet file): ${POD[*]}"
echo "row reaches column (ping):"
pod_matrix pod
pod_matrix node
echo
echo "a full-size (1450-byte) DF ping from pod0 to pod2 across the tunnel:"
ip netns exec $RUN-pod0 ping -n -c 1 -w 3 -M do -s 1422 ${POD[2]} | sed -n 2p | sed 's/^/  /'
echo
echo "== node4 joins subnet B, then leaves"
vx_node 4 192.168.2.12
agent_start 4
: >"$RUN_DIR/mark"
vx_api_node 4 192.168.2.12
wait_until 2 tunnel_to 0 4 && echo "  node0 routes node4 through the tunnel after ${WAITED_MS} ms: $(route_of 0 10.244.4.0/24)"
wait_until 2 direct_to 2 4 && echo "  node2 routes it directly: $(route_of 2 10.244.4.0/24)"
agent_stop 4
api POST /delete '["node4"]' >/dev/null
wait_until 2 in_shell "no_entries_for 0 4 192.168.2.12" && echo "  deleted: node0's route, neighbour and FDB entry for it are gone after ${WAITED_MS} ms"
for n in 0 1 2 3; do del_pod $n; done
cleanup 2>/dev/null
trap - EXIT
echo
echo "done; nothing of the run is left: $(ip netns list | grep -c "^$RUN-") namespaces"
