#!/usr/bin/env bash
# Nodes on two L3 subnets: bridge-ipam-agent in auto routing mode (direct routes to peers on the
# same subnet, VXLAN to the others) against the stand-in API server.
#
#   $RUN-underlay   the router: ul0 = 192.168.1.1/24 (subnet A, also the API server),
#                   ul1 = 192.168.2.1/24 (subnet B); it forwards between them, knows no pod
#                   route, and drops every packet from or to a pod address (as cloud networks do)
#   $RUN-node0,1    192.168.1.10, .11 on subnet A     $RUN-node2,3   192.168.2.10, .11 on B
#   $RUN-podN       one pod per node, attached by the plugin from the agent's subnet file
#
# Checks: the routes and tunnel entries of each kind of peer; every pair pod<->pod (IPv4 and
# IPv6, dual-stack pods over the IPv4 tunnel) and node->pod without NAT; nothing encapsulated
# between same-subnet peers; the MTU (a full-size DF ping crosses the tunnel); a node joining,
# changing address and leaving converges within 1 s; a tunnel device deleted by hand comes back;
# a refused entry and overlapping podCIDRs hold no other node back; direct mode; and two
# IPv6-only nodes (ul2) with the tunnel over IPv6.
RUN=${RUN:-p20$$}
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"
source "$(dirname "$0")/lib/overlay-lib.sh"
DEV=$OVERLAY_DEV

extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp -r "$RUN_DIR"/node* "$KEEP_LOGS"/ 2>/dev/null; return 0; }
setup_run
if [ ! -x "$AGENT_BIN" ]; then echo "no agent binary at $AGENT_BIN (make build)"; echo "0 passed, 1 failed"; exit 1; fi
overlay_router || { echo "0 passed, 1 failed"; exit 1; }
everyone() { local n f=$1; shift; for n in "${!AGENT_PID[@]}"; do [ -z "${AGENT_PID[$n]}" ] && continue; "$f" $n "$@" || return 1; done; }

echo "== Four nodes on two subnets, agents in auto mode, dual-stack pods"
vx_node 0 192.168.1.10; vx_node 1 192.168.1.11; vx_node 2 192.168.2.10; vx_node 3 192.168.2.11
for n in 0 1 2 3; do vx_api_node $n ${VX_IP[$n]} "[\"10.244.$n.0/24\",\"fd00:10:244:$n::/64\"]"; agent_start $n; done
wait_until 10 bash -c "for n in 0 1 2 3; do test -f $RUN_DIR/node\$n/ready || exit 1; done"
check "every agent is ready (${WAITED_MS} ms)" bash -c "for n in 0 1 2 3; do test -f $RUN_DIR/node\$n/ready || exit 1; done"
wait_until 3 tunnel_to 3 0
check "the VXLAN device: VNI 1, UDP 8472, learning off, bound to eth0, source the node's address" bash -c \
    "ip -n $RUN-node0 -d link show $DEV | grep -q 'vxlan id 1 local 192.168.1.10 dev eth0 .*dstport 8472 nolearning'"
check "...MTU the underlay's less 50; addresses: node0's pod network addresses" bash -c \
    "ip -n $RUN-node0 link show $DEV | grep -q 'mtu 1450' && ip -n $RUN-node0 addr show dev $DEV | grep -q 'inet 10.244.0.0/32' && ip -n $RUN-node0 addr show dev $DEV | grep -q 'inet6 fd00:10:244::/128'"
check "same subnet: node0 routes node1's podCIDR directly ($(route_of 0 10.244.1.0/24))" direct_to 0 1
check "...with no tunnel entry for it" bash -c "! ip -n $RUN-node0 neigh show dev $DEV | grep -q '^10.244.1.0 '"
check "other subnet: through the tunnel ($(route_of 0 10.244.2.0/24); $(neigh_of 0 | grep '^10.244.2.0 '); $(fdb_of 0 | grep 192.168.2.10))" tunnel_to 0 2
check "every node: direct to its subnet's peer, tunnel to the other two" in_shell \
    "direct_to 0 1 && direct_to 1 0 && direct_to 2 3 && direct_to 3 2 && tunnel_to 0 3 && tunnel_to 1 2 && tunnel_to 1 3 && tunnel_to 2 0 && tunnel_to 2 1 && tunnel_to 3 0 && tunnel_to 3 1"
check "IPv6 podCIDRs of nodes without an IPv6 InternalIP go through the IPv4 tunnel ($(ip -n $RUN-node0 -6 route show fd00:10:244:1::/64 proto 212))" bash -c \
    "ip -n $RUN-node0 -6 route show fd00:10:244:1::/64 proto 212 | grep -q 'via fd00:10:244:1:: dev $DEV .*onlink' && ip -n $RUN-node0 -6 neigh show dev $DEV | grep -q '^fd00:10:244:1:: lladdr $(vtep_mac 192.168.1.11) PERMANENT'"
check "the subnet file carries the pods' MTU: $(tr '\n' ' ' <"$RUN_DIR/node0/podcidr")" grep -qx 'FLANNEL_MTU=1450' "$RUN_DIR/node0/podcidr"

echo "== Pods"
for n in 0 1 2 3; do add_pod $n; done
check "each node's pod has addresses of its podCIDRs (${POD[*]} ${POD6[*]})" bash -c "[[ '${POD[0]}' == 10.244.0.* && '${POD6[3]}' == fd00:10:244:3:* ]]"
check "...and the MTU from the subnet file, though the conflist names none" bash -c "ip -n $RUN-pod0 link show eth0 | grep -q 'mtu 1450'"
check "pod -> pod over IPv4, every pair, both subnets" pod_matrix pod
check "node -> pod, every pair (a remote pod answers the node's pod-range source)" pod_matrix node
check "pod -> pod over IPv6, every pair, through the IPv4 tunnel" pod_matrix pod 6
src=$(ip -n $RUN-node0 route get ${POD[2]} | grep -o 'src [0-9.]*')
check "node0's own traffic to a remote pod leaves with a pod-range source ($src)" test "$src" = "src 10.244.0.0"
before=$(tx_packets 0)
for i in 1 2 3; do ping_ok pod0 ${POD[1]}; ping_ok node0 ${POD[1]}; done
check "same-subnet IPv4 traffic is not encapsulated (tunnel tx packets $before -> $(tx_packets 0))" test "$(tx_packets 0)" = "$before"
before=$(tx_packets 0)
ping_ok pod0 ${POD[2]}
check "...other-subnet traffic is ($before -> $(tx_packets 0))" test "$(tx_packets 0)" -gt "$before"

echo "== MTU"
check "a full-size packet (1450 bytes) with DF set crosses the tunnel" bash -c "ip netns exec $RUN-pod0 ping -n -q -c 1 -w 3 -M do -s 1422 ${POD[2]} >/dev/null"
check "...one byte more is refused at the pod, not lost on the way" bash -c "! ip netns exec $RUN-pod0 ping -n -q -c 1 -w 2 -M do -s 1423 ${POD[2]} >/dev/null 2>&1"
check "a full-size IPv6 packet crosses it too" bash -c "ip netns exec $RUN-pod0 ping -6 -n -q -c 1 -w 3 -M do -s 1402 ${POD6[2]} >/dev/null"
check "a full-size DF packet between same-subnet pods" bash -c "ip netns exec $RUN-pod0 ping -n -q -c 1 -w 3 -M do -s 1422 ${POD[1]} >/dev/null"

echo "== Joining, changing address, leaving"
vx_node 4 192.168.2.12
agent_start 4
vx_api_node 4 192.168.2.12
if wait_until 1 in_shell "tunnel_to 0 4 && tunnel_to 1 4 && direct_to 2 4 && direct_to 3 4"; then
    pass "node4 joins subnet B: tunnel on A, direct on B, within 1 s (${WAITED_MS} ms)"
else fail "node4's entries: $(route_of 0 10.244.4.0/24) / $(route_of 2 10.244.4.0/24)"; fi
wait_until 3 test -f "$RUN_DIR/node4/ready"
add_pod 4
check "pod0 reaches node4's pod" ping_ok pod0 ${POD[4]}
# The new address first, then the old one goes; promote_secondaries keeps the new one then.
ip netns exec $RUN-node4 sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
ip -n $RUN-node4 addr add 192.168.2.13/24 dev eth0
vx_api_node 4 192.168.2.13
old=192.168.2.12
VX_IP[4]=192.168.2.13
if wait_until 1 in_shell "tunnel_to 0 4 && tunnel_to 1 4 && direct_to 2 4 && ! fdb_of 0 | grep -q ' dst $old '"; then
    pass "node4 changes address: every entry follows within 1 s, the old FDB entry goes (${WAITED_MS} ms)"
else fail "address change: $(fdb_of 0 | tr '\n' ' ')"; fi
ip -n $RUN-node4 addr del $old/24 dev eth0
wait_until 3 ping_ok pod0 ${POD[4]}
check "...and pod0 reaches node4's pod at its new address ($(ip -n $RUN-node4 -d link show $DEV | grep -o 'local [0-9.]*'))" ping_ok pod0 ${POD[4]}
del_pod 4
unset 'POD[4]'
agent_stop 4
api POST /delete '["node4"]' >/dev/null
if wait_until 1 in_shell "for n in 0 1 2 3; do no_entries_for \$n 4 192.168.2.13 || exit 1; done"; then
    pass "node4 leaves: its route, neighbour and FDB entries go within 1 s (${WAITED_MS} ms)"
else fail "leave: $(route_of 0 10.244.4.0/24) $(neigh_of 0) $(fdb_of 0)"; fi

echo "== Repair"
ip -n $RUN-node0 link del $DEV
if wait_until $((AGENT_RESYNC + 2)) tunnel_to 0 2; then pass "a VXLAN device deleted by hand comes back with its entries on resync (${WAITED_MS} ms)"; else fail "device not back: $(tail -n 3 $RUN_DIR/node0/agent.log)"; fi
check "...and pod0 reaches pod2 again" ping_ok pod0 ${POD[2]}
ip netns exec $RUN-node0 bridge fdb del $(vtep_mac 192.168.2.11) dev $DEV
ip -n $RUN-node0 neigh del 10.244.3.0 dev $DEV
if wait_until $((AGENT_RESYNC + 2)) tunnel_to 0 3; then pass "an FDB and a neighbour entry deleted by hand come back (${WAITED_MS} ms)"; else fail "entries not back"; fi
ip -n $RUN-node0 route del 10.244.2.0/24 proto 212
if wait_until $((AGENT_RESYNC + 2)) tunnel_to 0 2; then pass "...and so does a tunnel route (${WAITED_MS} ms)"; else fail "route not back"; fi

echo "== Faults stay with their node"
ip -n $RUN-node0 route add 10.244.5.0/24 dev lo proto static
api POST /nodes '[{"name":"node5","ip":"192.168.2.20","podCIDR":"10.244.5.0/24"},{"name":"node6","ip":"192.168.2.21","podCIDR":"10.244.6.0/24"},{"name":"node7","ip":"192.168.2.22","podCIDR":"10.244.7.0/24"},{"name":"node8","ip":"192.168.2.23","podCIDR":"10.244.7.128/25"}]' >/dev/null
VX_IP[6]=192.168.2.21
if wait_until 1 tunnel_to 0 6; then pass "with four nodes joining at once, node6 gets its entries within 1 s (${WAITED_MS} ms)"; else fail "node6: $(tail -n 4 $RUN_DIR/node0/agent.log)"; fi
wait_until 2 grep -q "node node5" "$RUN_DIR/node0/agent.log"
check "node5's route, refused for a foreign route, is logged with node and kernel message: $(grep -m1 'node node5' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-)" \
    grep -q "for node node5: route added 10.244.5.0/24 .*File exists" "$RUN_DIR/node0/agent.log"
check "...the foreign route is kept" bash -c "ip -n $RUN-node0 route show 10.244.5.0/24 | grep -q 'dev lo proto static'"
check "...node5's tunnel entries are in place all the same" bash -c "ip -n $RUN-node0 neigh show dev $DEV | grep -q '^10.244.5.0 '"
check "nodes 7 and 8 overlap: both left out, logged by name ($(grep -m1 'of node node7 overlaps' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-))" bash -c \
    "[ -z \"\$(ip -n $RUN-node0 route show proto 212 | grep '10.244.7')\" ] && grep -q 'podCIDR 10.244.7.0/24 of node node7 overlaps' $RUN_DIR/node0/agent.log && grep -q 'podCIDR 10.244.7.128/25 of node node8 overlaps' $RUN_DIR/node0/agent.log"
sleep $((AGENT_RESYNC + 1))
check "each is logged once across resyncs" bash -c "[ \$(grep -c 'for node node5' $RUN_DIR/node0/agent.log) = 1 ] && [ \$(grep -c 'of node node7 overlaps' $RUN_DIR/node0/agent.log) = 1 ]"
api POST /delete '["node8"]' >/dev/null
VX_IP[7]=192.168.2.22
if wait_until 1 tunnel_to 0 7; then pass "node8 deleted: node7 converges within 1 s (${WAITED_MS} ms)"; else fail "node7 after the overlap"; fi
check "pods still reach each other across subnets" in_shell "ping_ok pod0 ${POD[3]} && ping_ok pod3 ${POD[1]}"

echo "== Direct mode"
agent_stop 1
agent_start 1 --routing direct
wait_until 3 bash -c "! ip -n $RUN-node1 link show $DEV >/dev/null 2>&1"
check "node1 in direct mode removes its tunnel device" bash -c "! ip -n $RUN-node1 link show $DEV >/dev/null 2>&1"
wait_until 3 grep -q 'FLANNEL_MTU=1500' "$RUN_DIR/node1/podcidr"
check "...pods there get the underlay's MTU" grep -qx 'FLANNEL_MTU=1500' "$RUN_DIR/node1/podcidr"
check "...the kernel refuses the off-link peers' routes, and it says so, by node" grep -q "for node node2: route added 10.244.2.0/24 via 192.168.2.10" "$RUN_DIR/node1/agent.log"
check "...nodes without an IPv6 InternalIP: no IPv6 route, said once by name" bash -c "[ \$(grep -c 'node node0 has no IPv6 InternalIP' $RUN_DIR/node1/agent.log) = 1 ]"
check "...while the same-subnet peer keeps its route" direct_to 1 0
agent_stop 1

echo "== IPv6 only: the tunnel over an IPv6 underlay"
ip -n $RUN-underlay link add ul2 type bridge
ip -n $RUN-underlay link set ul2 up
for n in 9 10; do
    new_ns node$n
    ip -n $RUN-underlay link add n$n type veth peer name eth0 netns $RUN-node$n
    ip -n $RUN-underlay link set n$n master ul2 up
    ip -n $RUN-node$n addr add fd00:1::$n/64 dev eth0 nodad
    ip -n $RUN-node$n link set eth0 up
    mkdir -p "$RUN_DIR/node$n"
    api POST /nodes "{\"name\":\"node$n\",\"ip\":\"fd00:1::$n\",\"podCIDR\":\"fd00:10:244:$n::/64\"}" >/dev/null
done
# The API server is reached over IPv4: a second link to the router, not used by the tunnel.
for n in 9 10; do
    ip -n $RUN-underlay link add m$n type veth peer name mgmt netns $RUN-node$n
    ip -n $RUN-underlay link set m$n master ul0 up
    ip -n $RUN-node$n addr add 192.168.1.$((100 + n))/24 dev mgmt
    ip -n $RUN-node$n link set mgmt up
    agent_start $n --routing vxlan
done
wait_until 5 bash -c "ip -n $RUN-node9 -6 route show fd00:10:244:10::/64 proto 212 | grep -q onlink"
check "node9 routes node10's podCIDR through the tunnel ($(ip -n $RUN-node9 -6 route show proto 212 | tr '\n' ' '))" bash -c \
    "ip -n $RUN-node9 -6 route show fd00:10:244:10::/64 proto 212 | grep -q 'via fd00:10:244:10:: dev $DEV .*onlink'"
check "...over an IPv6 VXLAN device from its InternalIP, MTU the underlay's less 70" bash -c \
    "ip -n $RUN-node9 -d link show $DEV | grep -q 'mtu 1430' && ip -n $RUN-node9 -d link show $DEV | grep -q 'vxlan id 1 local fd00:1::9 dev eth0 .*dstport 8472 nolearning'"
check "...its FDB entry points at node10's IPv6 InternalIP" bash -c "ip netns exec $RUN-node9 bridge fdb show dev $DEV | grep -q 'dst fd00:1::10 self permanent'"
add_pod 9; add_pod 10
check "pod9 reaches pod10 (${POD6[10]}) through it" bash -c "ip netns exec $RUN-pod9 ping -6 -n -q -c 1 -w 3 ${POD6[10]} >/dev/null"
check "...with a full-size (1430-byte) DF packet" bash -c "ip netns exec $RUN-pod9 ping -6 -n -q -c 1 -w 3 -M do -s 1382 ${POD6[10]} >/dev/null"
check "...and node9 reaches pod10 from its own pod-range address" bash -c "ip netns exec $RUN-node9 ping -6 -n -q -c 1 -w 3 ${POD6[10]} >/dev/null"
check "the IPv4 nodes name the IPv6-only ones once: nothing to tunnel to ($(grep -m1 'node node9 has no IPv4' $RUN_DIR/node0/agent.log | cut -d' ' -f3-))" bash -c \
    "[ \$(grep -c 'node node9 has no IPv4 InternalIP to tunnel to' $RUN_DIR/node0/agent.log) = 1 ]"
del_pod 9; del_pod 10
unset 'POD[9]' 'POD[10]'

for n in 0 1 2 3; do del_pod $n; done
finish
