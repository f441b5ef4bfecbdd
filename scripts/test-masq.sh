#!/usr/bin/env bash
# ipMasq: pods reach an outside host with the node's address, while pod-to-pod and pod-to-node
# traffic keeps the pod's own address; the nftables rule lives exactly as long as the network
# has pods, survives nothing of a crashed ADD, and never disturbs tables that are not ours.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster.sh"

setup_run
export MASQ=1
cluster_up 2 1 || { echo "0 passed, 1 failed"; exit 1; }
add_outside_host node0 outside
CONF0=$(node_conf 0)
nft_node0() { ip netns exec $RUN-node0 nft "$@"; }
our_rules() { nft_node0 list chain ip bridge_ipam postrouting 2>/dev/null | grep -c masquerade; }
seen_by() {  # FROM_NS TARGET_IP: the source address the target's server saw
    ip netns exec $RUN-$1 python3 "$REPO/scripts/peer-echo.py" probe 7777 "$2" | awk '{print $2}'
}
# A table of someone else's, which nothing of ours may touch.
nft_node0 add table inet other
nft_node0 add chain inet other c '{ type filter hook forward priority 0; policy accept; }'
nft_node0 add rule inet other c counter comment '"not ours"'
other_before=$(nft_node0 list table inet other | grep -v packets)

for ns in outside node1 pod1-1; do
    ip netns exec $RUN-$ns python3 -u "$REPO/scripts/peer-echo.py" serve 7777 >"$RUN_DIR/serve-$ns.log" 2>&1 &
done
for ns in outside node1 pod1-1; do for _ in $(seq 50); do grep -q ready "$RUN_DIR/serve-$ns.log" 2>/dev/null && break; sleep 0.1; done; done

echo "== Traffic"
check "node0 has one masquerade rule for the network" test "$(our_rules)" = 1
check "pod0-1 reaches the outside host" ping_ok pod0-1 203.0.113.2
check "...which sees node0's address (masqueraded)" test "$(seen_by pod0-1 203.0.113.2)" = 203.0.113.1
check "pod0-1 to pod1-1 on another node arrives from the pod's own IP" test "$(seen_by pod0-1 "${POD_IP[1-1]}")" = "${POD_IP[0-1]}"
check "pod0-1 to node1 arrives from the pod's own IP" test "$(seen_by pod0-1 "${NODE_IP[1]}")" = "${POD_IP[0-1]}"

echo "== CHECK"
new_ns extra
result=$(cni node0 ADD extra /run/netns/$RUN-extra eth0 "$CONF0")
with_prev=$(jq -c --argjson prev "$result" '. + {prevResult: $prev}' <<<"$CONF0")
check "CHECK passes with the rule in place" cni node0 CHECK extra /run/netns/$RUN-extra eth0 "$with_prev"
nft_node0 flush chain ip bridge_ipam postrouting
out=$(cni node0 CHECK extra /run/netns/$RUN-extra eth0 "$with_prev")
check "CHECK fails with code 105 naming the missing rule" bash -c "[ '$(jq -r .code <<<"$out")' = 105 ] && jq -r .msg <<<'$out' | grep -q 'ipMasq rule'"
new_ns pod0-2
cni node0 ADD pod0-2 /run/netns/$RUN-pod0-2 eth0 "$CONF0" >/dev/null
check "the next ADD puts the rule back" test "$(our_rules)" = 1
check "a second ADD does not add a second rule" bash -c "[ \$(ip netns exec $RUN-node0 nft list chain ip bridge_ipam postrouting | grep -c masquerade) = 1 ]"

echo "== DEL"
cni node0 DEL extra /run/netns/$RUN-extra eth0 "$CONF0" >/dev/null
cni node0 DEL pod0-2 /run/netns/$RUN-pod0-2 eth0 "$CONF0" >/dev/null
check "while a pod remains the rule stays" test "$(our_rules)" = 1
check "DEL of the last pod succeeds" cni node0 DEL pod0-1 /run/netns/$RUN-pod0-1 eth0 "$CONF0"
check "...and our rule is gone" test "$(our_rules)" = 0
check "DEL again succeeds" cni node0 DEL pod0-1 /run/netns/$RUN-pod0-1 eth0 "$CONF0"

echo "== A crash in the middle of ADD"
new_ns crash
out=$(cni node0 ADD crashed /run/netns/$RUN-crash eth0 "$CONF0" BRIDGE_IPAM_TEST_ABORT_AT=masquerade 2>/dev/null)
check "the simulated crash leaves a lease and a rule behind" bash -c "[ $(our_rules) = 1 ] && grep -rlq crashed '$RUN_DIR/node0/leases'"
check "the runtime's DEL after the failed ADD succeeds" cni node0 DEL crashed /run/netns/$RUN-crash eth0 "$CONF0"
check "...and leaves no stray rule or lease" bash -c "[ $(our_rules) = 0 ] && ! grep -rlq crashed '$RUN_DIR/node0/leases'"
cni node0 ADD crashed /run/netns/$RUN-crash eth0 "$CONF0" BRIDGE_IPAM_TEST_ABORT_AT=masquerade >/dev/null 2>&1
gc_conf=$(jq -c '. + {"cni.dev/valid-attachments": []}' <<<"$CONF0")
check "after another crash, GC with no valid attachments succeeds" cni node0 GC "" "" "" "$gc_conf"
check "...and leaves no stray rule or lease" bash -c "[ $(our_rules) = 0 ] && ! grep -rlq crashed '$RUN_DIR/node0/leases'"

echo "== Bad config"
before=$(nft_node0 list ruleset; ls "$RUN_DIR/node0/leases/k8s-pod-network")
out=$(cni node0 ADD bad /run/netns/$RUN-crash eth0 "$(jq -c '.ipMasqExclude = ["not-a-cidr"]' <<<"$CONF0")")
after=$(nft_node0 list ruleset; ls "$RUN_DIR/node0/leases/k8s-pod-network")
check "an invalid ipMasqExclude is code 7" test "$(jq -r .code <<<"$out")" = 7
check "...and changes nothing" test "$before" = "$after"
out=$(cni node0 ADD bad /run/netns/$RUN-crash eth0 "$(jq -c '.ipam = {type: "static", addresses: [{address: "10.244.0.9/24"}]}' <<<"$CONF0")")
check "ipMasq with a delegated IPAM is code 2" test "$(jq -r .code <<<"$out")" = 2

check "the other table was never touched" test "$(nft_node0 list table inet other | grep -v packets)" = "$other_before"

finish
