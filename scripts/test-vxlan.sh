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
# Checks: the routes and tunnel entries of each kind of peer; every pair pod<->pod and
# node->pod without NAT; nothing encapsulated between same-subnet peers; the MTU (a full-size DF
# ping crosses the tunnel); a node joining, changing address and leaving converges within 1 s;
# a tunnel device deleted by hand comes back; a refused entry and overlapping podCIDRs hold
# no other node back.
RUN=${RUN:-p20$$}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster.sh"
source "$(dirname "$0")/agent-lib.sh"
DEV=bipam.1

extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp -r "$RUN_DIR"/node* "$KEEP_LOGS"/ 2>/dev/null; return 0; }
setup_run
if [ ! -x "$AGENT_BIN" ]; then echo "no agent binary at $AGENT_BIN (make build)"; echo "0 passed, 1 failed"; exit 1; fi
make_pki
new_ns underlay
ip netns exec $RUN-underlay sysctl -qw net.ipv4.ip_forward=1
for b in ul0 ul1; do ip -n $RUN-underlay link add $b type bridge; ip -n $RUN-underlay link set $b up; done
ip -n $RUN-underlay addr add 192.168.2.1/24 dev ul1
ip -n $RUN-underlay rule add from 10.244.0.0/16 prohibit
ip -n $RUN-underlay rule add to 10.244.0.0/16 prohibit
apiserver_up || { echo "0 passed, 1 failed"; exit 1; }
write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"

declare -A VX_IP POD
subnet_of() { [ $1 -le 1 ] && echo 1 || echo 2; }
# vx_node N IP: node N on the subnet of IP, its default route via that subnet's router address.
vx_node() {
    local n=$1 ip=$2 s
    s=${ip#192.168.}; s=${s%%.*}
    new_ns node$n
    VX_IP[$n]=$ip
    ip -n $RUN-underlay link add n$n type veth peer name eth0 netns $RUN-node$n
    ip -n $RUN-underlay link set n$n master ul$((s - 1)) up
    ip -n $RUN-node$n addr add $ip/24 dev eth0
    ip -n $RUN-node$n link set eth0 up
    ip -n $RUN-node$n route add default via 192.168.$s.1
    mkdir -p "$RUN_DIR/node$n"
}
vx_api_node() { api POST /nodes "{\"name\":\"node$1\",\"ip\":\"$2\",\"podCIDR\":\"10.244.$1.0/24\"}" >/dev/null; }
pod_conf() {
    printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"10.244.0.0/16","dataDir":"%s"}}' \
        "$RUN_DIR/node$1/podcidr" "$RUN_DIR/node$1/leases"
}
add_pod() {
    local n=$1 result
    new_ns pod$n
    result=$(cni node$n ADD pod$n /run/netns/$RUN-pod$n eth0 "$(pod_conf $n)") || { echo "ADD on node$n: $result"; return 1; }
    POD[$n]=$(jq -r '.ips[0].address' <<<"$result" | cut -d/ -f1)
}
route_of() { ip -n $RUN-node$1 route show "$2" proto 212 2>/dev/null; }
fdb_of() { ip netns exec $RUN-node$1 bridge fdb show dev $DEV 2>/dev/null; }
neigh_of() { ip -n $RUN-node$1 neigh show dev $DEV nud permanent 2>/dev/null; }
tx_packets() { ip -n $RUN-node$1 -s -j link show $DEV | jq '.[0].stats64.tx.packets'; }
# tunnel_to N PEER: node N routes PEER's podCIDR through the tunnel and has PEER's neighbour and fdb entries.
tunnel_to() {
    local ip=${VX_IP[$2]} mac
    mac=$(printf '0e:62:%02x:%02x:%02x:%02x' ${ip//./ })
    route_of $1 10.244.$2.0/24 | grep -q "via 10.244.$2.0 dev $DEV .*onlink" &&
        neigh_of $1 | grep -q "^10.244.$2.0 lladdr $mac" && fdb_of $1 | grep -q "^$mac dst $ip "
}
direct_to() { route_of $1 10.244.$2.0/24 | grep -q "via ${VX_IP[$2]} dev eth0"; }
no_entries_for() { [ -z "$(route_of $1 10.244.$2.0/24)" ] && ! neigh_of $1 | grep -q "^10.244.$2.0 " && ! fdb_of $1 | grep -q " dst $3 "; }
everyone() { local n f=$1; shift; for n in "${!AGENT_PID[@]}"; do [ -z "${AGENT_PID[$n]}" ] && continue; "$f" $n "$@" || return 1; done; }
others() { local self=$1 f=$2 n; shift 2; for n in "${!AGENT_PID[@]}"; do [ "$n" = "$self" ] || [ -z "${AGENT_PID[$n]}" ] && continue; "$f" $n $self "$@" || return 1; done; }

echo "== Four nodes on two subnets, agents in auto mode"
vx_node 0 192.168.1.10; vx_node 1 192.168.1.11; vx_node 2 192.168.2.10; vx_node 3 192.168.2.11
for n in 0 1 2 3; do vx_api_node $n ${VX_IP[$n]}; agent_start $n; done
wait_until 10 bash -c "for n in 0 1 2 3; do test -f $RUN_DIR/node\$n/ready || exit 1; done"
check "every agent is ready (${WAITED_MS} ms)" bash -c "for n in 0 1 2 3; do test -f $RUN_DIR/node\$n/ready || exit 1; done"
wait_until 3 tunnel_to 3 0
check "the VXLAN device: VNI 1, UDP 8472, learning off, bound to eth0, source the node's address" bash -c \
    "ip -n $RUN-node0 -d link show $DEV | grep -q 'vxlan id 1 local 192.168.1.10 dev eth0 .*dstport 8472 nolearning'"
check "...its MTU the underlay's less 50, its address node0's pod network address" bash -c \
    "ip -n $RUN-node0 link show $DEV | grep -q 'mtu 1450' && ip -n $RUN-node0 -4 addr show dev $DEV | grep -q 'inet 10.244.0.0/32'"
check "same subnet: node0 routes node1's podCIDR directly ($(route_of 0 10.244.1.0/24))" direct_to 0 1
check "...with no tunnel entry for it" bash -c "! ip -n $RUN-node0 neigh show dev $DEV | grep -q 10.244.1.0"
check "other subnet: node0 reaches node2 through the tunnel ($(route_of 0 10.244.2.0/24); $(neigh_of 0 | grep 10.244.2.0); $(fdb_of 0 | grep 192.168.2.10))" tunnel_to 0 2
check "every node: direct to its subnet's peer, tunnel to the other two" bash -c \
    "$(declare -f route_of fdb_of neigh_of tunnel_to direct_to); DEV=$DEV RUN=$RUN; $(declare -p VX_IP); direct_to 0 1 && direct_to 1 0 && direct_to 2 3 && direct_to 3 2 && tunnel_to 0 3 && tunnel_to 1 2 && tunnel_to 1 3 && tunnel_to 2 0 && tunnel_to 2 1 && tunnel_to 3 0 && tunnel_to 3 1"
check "the subnet file carries the pods' MTU: $(tr '\n' ' ' <"$RUN_DIR/node0/podcidr")" grep -qx 'FLANNEL_MTU=1450' "$RUN_DIR/node0/podcidr"

echo "== Pods"
for n in 0 1 2 3; do add_pod $n; done
check "each node's pod has an address of its podCIDR (${POD[*]})" bash -c "[[ '${POD[0]}' == 10.244.0.* && '${POD[3]}' == 10.244.3.* ]]"
check "...and the MTU from the subnet file, though the conflist names none" bash -c "ip -n $RUN-pod0 link show eth0 | grep -q 'mtu 1450'"
matrix() {
    local kind=$1 from to ok=0 bad=0 row
    printf '%-9s' "$kind"; for to in 0 1 2 3; do printf ' pod%-3s' $to; done; echo
    for from in 0 1 2 3; do
        row=""
        for to in 0 1 2 3; do
            if [ $kind = pod ] && [ $from = $to ]; then row+="   -   "; continue; fi
            if ping_ok $([ $kind = pod ] && echo pod$from || echo node$from) ${POD[$to]}; then row+="   ok  "; ok=$((ok + 1)); else row+="  FAIL "; bad=$((bad + 1)); fi
        done
        printf '%-9s%s\n' "$kind$from" "$row"
    done
    [ $bad = 0 ]
}
check "pod -> pod, every pair, both subnets" matrix pod
check "node -> pod, every pair (a remote pod answers the node's pod-range source)" matrix node
src=$(ip -n $RUN-node0 route get ${POD[2]} | grep -o 'src [0-9.]*')
check "node0's own traffic to a remote pod leaves with a pod-range source ($src)" test "$src" = "src 10.244.0.0"
before=$(tx_packets 0)
for i in 1 2 3; do ping_ok pod0 ${POD[1]}; ping_ok node0 ${POD[1]}; done
check "same-subnet traffic is not encapsulated (tunnel tx packets $before -> $(tx_packets 0))" test "$(tx_packets 0)" = "$before"
before=$(tx_packets 0)
ping_ok pod0 ${POD[2]}
check "...other-subnet traffic is ($before -> $(tx_packets 0))" test "$(tx_packets 0)" -gt "$before"

echo "== MTU"
check "a full-size packet (1450 bytes) with DF set crosses the tunnel" ip netns exec $RUN-pod0 ping -n -q -c 1 -w 3 -M do -s 1422 ${POD[2]}
check "...one byte more is refused at the pod, not lost on the way" bash -c "! ip netns exec $RUN-pod0 ping -n -q -c 1 -w 2 -M do -s 1423 ${POD[2]} >/dev/null 2>&1"
check "a full-size DF packet between same-subnet pods too" ip netns exec $RUN-pod0 ping -n -q -c 1 -w 3 -M do -s 1422 ${POD[1]}

echo "== Joining, changing address, leaving"
vx_node 4 192.168.2.12
agent_start 4
vx_api_node 4 192.168.2.12
if wait_until 1 bash -c "$(declare -f route_of fdb_of neigh_of tunnel_to direct_to); DEV=$DEV RUN=$RUN; $(declare -p VX_IP); tunnel_to 0 4 && tunnel_to 1 4 && direct_to 2 4 && direct_to 3 4"; then
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
if wait_until 1 bash -c "$(declare -f route_of fdb_of neigh_of tunnel_to direct_to no_entries_for); DEV=$DEV RUN=$RUN; $(declare -p VX_IP); tunnel_to 0 4 && tunnel_to 1 4 && direct_to 2 4 && ! fdb_of 0 | grep -q ' dst $old '"; then
    pass "node4 changes address: every entry follows within 1 s, the old FDB entry goes (${WAITED_MS} ms)"
else fail "address change: $(fdb_of 0 | tr '\n' ' ')"; fi
ip -n $RUN-node4 addr del $old/24 dev eth0
wait_until 3 ping_ok pod0 ${POD[4]}
check "...and pod0 reaches node4's pod at its new address ($(ip -n $RUN-node4 -d link show $DEV | grep -o 'local [0-9.]*'))" ping_ok pod0 ${POD[4]}
cni node4 DEL pod4 /run/netns/$RUN-pod4 eth0 "$(pod_conf 4)" >/dev/null
agent_stop 4
api POST /delete '["node4"]' >/dev/null
if wait_until 1 bash -c "$(declare -f route_of fdb_of neigh_of no_entries_for); DEV=$DEV RUN=$RUN; for n in 0 1 2 3; do no_entries_for \$n 4 192.168.2.13 || exit 1; done"; then
    pass "node4 leaves: its route, neighbour and FDB entries go within 1 s (${WAITED_MS} ms)"
else fail "leave: $(route_of 0 10.244.4.0/24) $(neigh_of 0) $(fdb_of 0)"; fi

echo "== Repair"
ip -n $RUN-node0 link del $DEV
if wait_until $((AGENT_RESYNC + 2)) tunnel_to 0 2; then pass "a VXLAN device deleted by hand comes back with its entries on resync (${WAITED_MS} ms)"; else fail "device not back: $(tail -n 3 $RUN_DIR/node0/agent.log)"; fi
check "...and pod0 reaches pod2 again" ping_ok pod0 ${POD[2]}
ip netns exec $RUN-node0 bridge fdb del 0e:62:c0:a8:02:0b dev $DEV
ip -n $RUN-node0 neigh del 10.244.3.0 dev $DEV
if wait_until $((AGENT_RESYNC + 2)) tunnel_to 0 3; then pass "an FDB and a neighbour entry deleted by hand come back (${WAITED_MS} ms)"; else fail "entries not back"; fi

echo "== Faults stay with their node"
ip -n $RUN-node0 route add 10.244.5.0/24 dev lo proto static
api POST /nodes '[{"name":"node5","ip":"192.168.2.20","podCIDR":"10.244.5.0/24"},{"name":"node6","ip":"192.168.2.21","podCIDR":"10.244.6.0/24"},{"name":"node7","ip":"192.168.2.22","podCIDR":"10.244.7.0/24"},{"name":"node8","ip":"192.168.2.23","podCIDR":"10.244.7.128/25"}]' >/dev/null
VX_IP[6]=192.168.2.21
if wait_until 1 tunnel_to 0 6; then pass "with four nodes joining at once, node6 gets its entries within 1 s (${WAITED_MS} ms)"; else fail "node6: $(tail -n 4 $RUN_DIR/node0/agent.log)"; fi
wait_until 2 grep -q "node node5" "$RUN_DIR/node0/agent.log"
check "node5's route, refused for a foreign route, is logged with node and kernel message: $(grep -m1 'node node5' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-)" \
    grep -q "for node node5: route added 10.244.5.0/24 .*File exists" "$RUN_DIR/node0/agent.log"
check "...the foreign route is kept" bash -c "ip -n $RUN-node0 route show 10.244.5.0/24 | grep -q 'dev lo proto static'"
check "nodes 7 and 8 overlap: both left out, logged by name ($(grep -m1 'node7 overlaps\|of node node7' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-))" bash -c \
    "[ -z \"\$(ip -n $RUN-node0 route show proto 212 | grep '10.244.7')\" ] && grep -q 'podCIDR 10.244.7.0/24 of node node7 overlaps' $RUN_DIR/node0/agent.log && grep -q 'podCIDR 10.244.7.128/25 of node node8 overlaps' $RUN_DIR/node0/agent.log"
sleep $((AGENT_RESYNC + 1))
check "each is logged once across resyncs" bash -c "[ \$(grep -c 'for node node5' $RUN_DIR/node0/agent.log) = 1 ] && [ \$(grep -c 'of node node7 overlaps' $RUN_DIR/node0/agent.log) = 1 ]"
api POST /delete '["node8"]' >/dev/null
VX_IP[7]=192.168.2.22
if wait_until 1 tunnel_to 0 7; then pass "node8 deleted: node7 converges within 1 s (${WAITED_MS} ms)"; else fail "node7 after the overlap"; fi
check "pods still reach each other across subnets" bash -c "$(declare -f ping_ok); RUN=$RUN; ping_ok pod0 ${POD[3]} && ping_ok pod3 ${POD[1]}"

echo "== Direct mode"
agent_stop 1
agent_start 1 --routing direct
wait_until 3 bash -c "! ip -n $RUN-node1 link show $DEV >/dev/null 2>&1"
check "node1 in direct mode removes its tunnel device" bash -c "! ip -n $RUN-node1 link show $DEV >/dev/null 2>&1"
wait_until 3 grep -q 'FLANNEL_MTU=1500' "$RUN_DIR/node1/podcidr"
check "...pods there get the underlay's MTU" grep -qx 'FLANNEL_MTU=1500' "$RUN_DIR/node1/podcidr"
check "...the kernel refuses the off-link peers' routes, and it says so, by node" grep -q "for node node2: route added 10.244.2.0/24 via 192.168.2.10" "$RUN_DIR/node1/agent.log"
check "...while the same-subnet peer keeps its route" direct_to 1 0
agent_stop 1

for n in 0 1 2 3; do cni node$n DEL pod$n /run/netns/$RUN-pod$n eth0 "$(pod_conf $n)" >/dev/null; done
finish
