#!/usr/bin/env bash
# The agent's --masquerade at 5000 nodes with scattered addresses (every 3rd address of
# 172.16.0.0/16, none adjacent): its table's named set `excluded` holds every one, a node
# joining or leaving changes one element, and a pod's traffic leaves masqueraded to an outside
# host but keeps its address to a node in the set. Everything runs inside the run's namespaces.
RUN=${RUN:-p18c$$}
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"

agent_suite_start

# scattered K: node K's address, 172.16.0.0 + 3K.
scattered() { local a=$((3 * $1)); echo "172.16.$((a / 256)).$((a % 256))"; }
# nodes FIRST LAST: the Node objects nodeFIRST..nodeLAST, in one control request.
nodes() {
    local k sep="" json="["
    for ((k = $1; k <= $2; k++)); do json+="$sep{\"name\":\"node$k\",\"ip\":\"$(scattered $k)\",\"podCIDR\":\"10.245.$((k / 256)).$((k % 256))/32\"}"; sep=,; done
    printf '%s]' "$json" >"$RUN_DIR/nodes.json"  # too long for one argument
    ip netns exec $RUN-underlay curl -sS -X POST --data-binary @"$RUN_DIR/nodes.json" http://127.0.0.1:8080/nodes >/dev/null
}
api_node 0
nodes 1 4999
node_ns 0
set_elements() {
    ip netns exec $RUN-node0 nft list set ip bridge_ipam_agent excluded 2>/dev/null | tr -d '\n' | sed -n 's/.*elements = {\(.*\)}.*/\1/p' | tr ',' '\n' | grep -c .
}
has_element() { ip netns exec $RUN-node0 nft list set ip bridge_ipam_agent excluded 2>/dev/null | tr -d '\n\t ' | grep -q "[{,]$1[,}]"; }

echo "== 5000 nodes"
start=$(date +%s%N)
agent_start 0 --masquerade --cluster-cidr 10.244.0.0/16
wait_until 60 grep -q "one of 5000 node addresses" "$RUN_DIR/node0/agent.log"
check "the agent sets the rule for 5000 node addresses: $(grep -m1 'masquerade:' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-)" \
    grep -q "one of 5000 node addresses" "$RUN_DIR/node0/agent.log"
echo "   from the agent's start to the rule in place: $(($(date +%s%N) / 1000000 - start / 1000000)) ms; the agent's log:"
grep -E "listed 5000 nodes|masquerade:" "$RUN_DIR/node0/agent.log" | sed -E 's/^(.{60}).*( \(set in .*)$/\1...\2/; s/^/   /'
check "the set holds 5001 intervals (the cluster CIDR and 5000 node addresses): $(set_elements)" test "$(set_elements)" = 5001
table=$(ip netns exec $RUN-node0 nft list table ip bridge_ipam_agent)
check "one rule, looking the set up inverted: $(grep masquerade <<<"$table" | sed 's/^[[:space:]]*//')" \
    test "$(grep -c masquerade <<<"$table")-$(grep -c 'ip saddr 10.244.0.0/16 ip daddr != @excluded masquerade comment' <<<"$table")" = 1-1
check "no failure logged" bash -c "! grep -q 'cannot set the rule' '$RUN_DIR/node0/agent.log'"

echo "== one node more (5001), then one leaves"
nodes 5000 5000
wait_until 20 has_element "$(scattered 5000)"
check "node5000 ($(scattered 5000)) joins: in the set within ${WAITED_MS} ms, $(set_elements) intervals" \
    test "$(set_elements)" = 5002
api POST /delete '["node17"]' >/dev/null
lacks_element() { ! has_element "$1"; }
wait_until 20 lacks_element "$(scattered 17)"
check "node17 ($(scattered 17)) leaves: out of the set within ${WAITED_MS} ms, $(set_elements) intervals" \
    test "$(set_elements)" = 5001
grep -E "masquerade:" "$RUN_DIR/node0/agent.log" | tail -2 | sed -E 's/^(.{12}).*(one of .*)$/\1 ...\2/; s/^/   /'
check "...and still one rule" test "$(ip netns exec $RUN-node0 nft list table ip bridge_ipam_agent | grep -c masquerade)" = 1

echo "== a pod's traffic"
# The pod: 10.244.0.2 behind node0's 10.244.0.1, no plugin needed for the path.
new_ns pod
ip -n $RUN-node0 link add veth-pod type veth peer name eth0 netns $RUN-pod
ip -n $RUN-node0 addr add 10.244.0.1/24 dev veth-pod
ip -n $RUN-node0 link set veth-pod up
ip -n $RUN-pod addr add 10.244.0.2/24 dev eth0
ip -n $RUN-pod link set eth0 up
ip -n $RUN-pod route add default via 10.244.0.1
ip netns exec $RUN-node0 sysctl -qw net.ipv4.ip_forward=1
add_outside_host node0 outside
# A node of the set (node3, 172.16.0.9) beyond node0; it routes the pod network back via node0
# and counts what arrives from the pod's own address.
new_ns member
ip -n $RUN-node0 link add mem0 type veth peer name eth0 netns $RUN-member
ip -n $RUN-node0 addr add 172.16.0.1/16 dev mem0
ip -n $RUN-node0 link set mem0 up
ip -n $RUN-member addr add "$(scattered 3)/16" dev eth0
ip -n $RUN-member link set eth0 up
ip -n $RUN-member route add 10.244.0.0/16 via 172.16.0.1
ip netns exec $RUN-member nft -f - <<'EOF2'
table ip count {
    chain input {
        type filter hook input priority 0
        ip saddr 10.244.0.2 counter
    }
}
EOF2
check "the pod reaches the outside host (203.0.113.2), which has no route to pods: masqueraded" \
    ip netns exec $RUN-pod ping -q -c1 -W3 203.0.113.2
check "the pod reaches node3 ($(scattered 3), in the set)" ip netns exec $RUN-pod ping -q -c1 -W3 "$(scattered 3)"
check "...which sees the pod's own address (not masqueraded)" \
    bash -c "ip netns exec $RUN-member nft list table ip count | grep -q 'counter packets [1-9]'"

echo "== restart: nothing changed, no transaction"
agent_stop 0
before=$(ip netns exec $RUN-node0 nft -a list table ip bridge_ipam_agent | grep -o 'masquerade.*handle [0-9]*')
agent_start 0 --masquerade --cluster-cidr 10.244.0.0/16
wait_until 30 grep -q "listed 5000 nodes" "$RUN_DIR/node0/agent.log"
sleep 1
after=$(ip netns exec $RUN-node0 nft -a list table ip bridge_ipam_agent | grep -o 'masquerade.*handle [0-9]*')
check "the restarted agent keeps the rule in place (same handle)" test -n "$before" -a "$before" = "$after"
check "...and the set: $(set_elements) intervals" test "$(set_elements)" = 5001

finish
