#!/usr/bin/env bash
# A podCIDR change without a hand on the node (issue 21 item 5), through the agent and the plugin
# together: node1's Node is deleted and registered again with another podCIDR; its agent rewrites
# the subnet file; new pods get addresses from the new subnet and the bridge carries the new
# gateway beside the old one; the pod that still holds an old address keeps working until it is
# deleted, its DEL (without prevResult) releases the lease outside the current range, and the old
# gateway goes with it. Prints the agent's and the plugin's log of the change.
RUN=${RUN:-p22p$$}
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"

agent_suite_start
api_node 1
api_node 2
for n in 1 2; do node_ns $n; agent_start $n; done
wait_until 5 test -f "$RUN_DIR/node1/podcidr"
# The podCIDR lines of node1's subnet file (the agent may add FLANNEL_MTU).
podcidr() { grep -v FLANNEL_MTU "$RUN_DIR/node1/podcidr" 2>/dev/null; }
check "node1's agent writes its subnet file: $(podcidr)" test "$(podcidr)" = 10.244.1.0/24

CONF=$(printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"logFile":"%s","ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"10.244.0.0/16","dataDir":"%s"}}' \
    "$RUN_DIR/node1/plugin.log" "$RUN_DIR/node1/podcidr" "$DATA_DIR")
D=$DATA_DIR/k8s-pod-network
new_ns a; new_ns b; new_ns c
bridge_addresses() { ip -n $RUN-node1 -4 -o addr show dev cni0 | awk '{print $4}' | sort | tr '\n' ' ' | sed 's/ $//'; }
ra=$(cni node1 ADD pod-a /run/netns/$RUN-a eth0 "$CONF")
a=$(jq -r '.ips[0].address' <<<"$ra" | cut -d/ -f1)
check "pod a gets $a from the first podCIDR" bash -c "[[ '$a' == 10.244.1.* ]]"
if wait_until 3 route_is 2 10.244.1.0/24 192.168.1.3; then pass "node2 routes 10.244.1.0/24 to node1"; else fail "node2's route to node1's first podCIDR"; fi

echo "== node1's Node is deleted and registered again with podCIDR 10.244.21.0/24"
api POST /delete '["node1"]' >/dev/null
sleep 0.5
api POST /nodes '{"name":"node1","ip":"192.168.1.3","podCIDR":"10.244.21.0/24"}' >/dev/null
wait_until 5 grep -qx 10.244.21.0/24 "$RUN_DIR/node1/podcidr"
check "the agent rewrites the subnet file: $(podcidr)" test "$(podcidr)" = 10.244.21.0/24
rb=$(cni node1 ADD pod-b /run/netns/$RUN-b eth0 "$CONF")
b=$(jq -r '.ips[0].address // empty' <<<"$rb" | cut -d/ -f1)
check "the next ADD succeeds (it failed with code 103 before): pod b gets $b from the new podCIDR" bash -c "[[ '$b' == 10.244.21.* ]]"
check "the bridge carries the new gateway beside the old one: $(bridge_addresses)" test "$(bridge_addresses)" = "10.244.1.1/24 10.244.21.1/24"
check "pod a (old address) still reaches its gateway" ping_ok a 10.244.1.1
check "pod b reaches its gateway" ping_ok b 10.244.21.1
check "pod a and pod b reach each other" ping_ok a "$b"
check "CHECK of pod a still passes" cni node1 CHECK pod-a /run/netns/$RUN-a eth0 "$(jq -c --argjson p "$ra" '. + {prevResult: $p}' <<<"$CONF")"
if wait_until 3 route_is 2 10.244.21.0/24 192.168.1.3; then pass "node2 routes the new podCIDR to node1"; else fail "node2's route to the new podCIDR"; fi
check "node2 reaches pod b through it" ping_ok node2 "$b"

echo "== pod a is deleted: the runtime's DEL without prevResult"
check "DEL of pod a succeeds" cni node1 DEL pod-a /run/netns/$RUN-a eth0 "$CONF"
check "...its lease ($a, outside the current range) is released" test ! -e "$D/$a"
check "...and the old gateway is gone from the bridge: $(bridge_addresses)" test "$(bridge_addresses)" = "10.244.21.1/24"
check "pod b still reaches its gateway" ping_ok b 10.244.21.1
check "another ADD after that takes the new podCIDR too" bash -c "$(declare -f cni); $(declare -p RUN PLUGIN_DIR); new=\$(cni node1 ADD pod-c /run/netns/$RUN-c eth0 '$CONF' | jq -r '.ips[0].address'); [[ \$new == 10.244.21.* ]]"
cni node1 DEL pod-c /run/netns/$RUN-c eth0 "$CONF" >/dev/null
check "DEL of pod b" cni node1 DEL pod-b /run/netns/$RUN-b eth0 "$CONF"
left=$(ls -A "$D" | grep -v '^lock$\|^last_reserved_ip\.\|^\.gateway\.10\.244\.21\.1$' | tr '\n' ' ')
check "no lease, index entry or old gateway record left: '$left'" test -z "$left"

echo "== The agent's log of the change (node1)"
sed 's/^/    /' "$RUN_DIR/node1/agent.log"
echo "== The plugin's log (node1)"
sed 's/^/    /' "$RUN_DIR/node1/plugin.log"
extra_cleanup
finish
