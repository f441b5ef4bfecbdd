#!/usr/bin/env bash
# ipMasq: pods reach an outside host with the node's address, while pod-to-pod and pod-to-node
# traffic keeps the pod's own address; the nftables rule lives exactly as long as the network
# has pods, survives nothing of a crashed ADD, and never disturbs tables that are not ours.
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"

setup_run
export MASQ=1
cluster_up 2 1 || { echo "0 passed, 1 failed"; exit 1; }
add_outside_host node0 outside
CONF0=$(node_conf 0)
nft_node0() { ip netns exec $RUN-node0 nft "$@"; }
our_rules() { nft_node0 list chain ip bridge_ipam postrouting 2>/dev/null | grep -c masquerade; }
seen_by() {  # FROM_NS TARGET_IP: the source address the target's server saw
    ip netns exec $RUN-$1 python3 "$REPO/Tests/support/peer-echo.py" probe 7777 "$2" | awk '{print $2}'
}
# A table of someone else's, which nothing of ours may touch.
nft_node0 add table inet other
nft_node0 add chain inet other c '{ type filter hook forward priority 0; policy accept; }'
nft_node0 add rule inet other c counter comment '"not ours"'
other_before=$(nft_node0 list table inet other | grep -v packets)

for ns in outside node1 pod1-1; do
    ip netns exec $RUN-$ns python3 -u "$REPO/Tests/support/peer-echo.py" serve 7777 >"$RUN_DIR/serve-$ns.log" 2>&1 &
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

echo "== A crash in the middle of ADD (a real kill -9 right after IPAM)"
new_ns crash
pid=$(cni_blocked_after_ipam node0 crashed /run/netns/$RUN-crash eth0 "$CONF0")
check "ADD stops right after IPAM, with a lease and the rule made" bash -c "[ -n '$pid' ] && [ $(our_rules) = 1 ] && grep -rlq crashed '$RUN_DIR/node0/leases'"
[ -n "$pid" ] && { kill -9 "$pid"; wait "$pid" 2>/dev/null; }
check "the runtime's DEL after the killed ADD succeeds (the lock died with it)" cni node0 DEL crashed /run/netns/$RUN-crash eth0 "$CONF0"
check "...and leaves no stray rule or lease" bash -c "[ $(our_rules) = 0 ] && ! grep -rlq crashed '$RUN_DIR/node0/leases'"
pid=$(cni_blocked_after_ipam node0 crashed /run/netns/$RUN-crash eth0 "$CONF0")
[ -n "$pid" ] && { kill -9 "$pid"; wait "$pid" 2>/dev/null; }
gc_conf=$(jq -c '. + {"cni.dev/valid-attachments": []}' <<<"$CONF0")
check "after another crash, GC with no valid attachments succeeds" cni node0 GC "" "" "" "$gc_conf"
check "...and leaves no stray rule or lease" bash -c "[ $(our_rules) = 0 ] && ! grep -rlq crashed '$RUN_DIR/node0/leases'"
check "the release binary has no test hook" bash -c "! grep -aq BRIDGE_IPAM_TEST '$BIN'"

echo "== A long exclusion list: one rule of constant size (cap: 256 CIDRs)"
# The node network and N-1 more that do not merge (the set holds them as intervals).
exclusions() { python3 -c "import json,sys; print(json.dumps(['192.168.1.0/24'] + ['172.16.%d.0/25' % i for i in range(int(sys.argv[1]) - 1)]))" "$1"; }
BIG=$(jq -c --argjson ex "$(exclusions 256)" '.ipMasqExclude = $ex' <<<"$CONF0")
new_ns big1; new_ns big2
r1=$(cni node0 ADD big1 /run/netns/$RUN-big1 eth0 "$BIG")
check "ADD with 256 exclusions succeeds" test "$(jq -r '.ips[0].address' <<<"$r1" 2>/dev/null)" != null
cni node0 ADD big2 /run/netns/$RUN-big2 eth0 "$BIG" >/dev/null
check "...one rule for two pods (the listing finds it)" test "$(our_rules)" = 1
# 257: the pod subnet lies inside the cluster CIDR, so the two are one interval.
check "...whose exclusions are one set: nft shows 257 intervals" test "$(nft_node0 -j list chain ip bridge_ipam postrouting | jq '[.nftables[].rule.expr[]? | .match.right.set? // empty | length] | add')" = 257
check "...and CHECK finds it" cni node0 CHECK big1 /run/netns/$RUN-big1 eth0 "$(jq -c --argjson prev "$r1" '. + {prevResult: $prev}' <<<"$BIG")"
check "...pods still reach the outside host masqueraded" test "$(seen_by big1 203.0.113.2)" = 203.0.113.1
check "...and an excluded destination keeps the pod's address" test "$(seen_by big1 "${NODE_IP[1]}")" = "$(jq -r '.ips[0].address' <<<"$r1" | cut -d/ -f1)"
cni node0 DEL big1 /run/netns/$RUN-big1 eth0 "$BIG" >/dev/null
cni node0 DEL big2 /run/netns/$RUN-big2 eth0 "$BIG" >/dev/null
check "DEL of both removes the rule" test "$(our_rules)" = 0
out=$(cni node0 ADD big1 /run/netns/$RUN-big1 eth0 "$(jq -c --argjson ex "$(exclusions 257)" '.ipMasqExclude = $ex' <<<"$CONF0")")
check "257 exclusions: code 7 naming ipMasqExclude" bash -c "[ '$(jq -r .code <<<"$out")' = 7 ] && jq -r .msg <<<'$out' | grep -q ipMasqExclude"

echo "== IPv6: table ip6 bridge_ipam, one rule per network and pod subnet"
ip -n $RUN-node0 addr add fd00:203::1/64 dev ext0 nodad
ip -n $RUN-outside addr add fd00:203::2/64 dev eth0 nodad
CONF6=$(jq -c '.name = "masq6" | .bridge = "cni6" | .ipMasqExclude = ["192.168.1.0/24", "fd00:192::/64"]
    | .ipam = {type: "host-local", ranges: [[{subnet: "10.250.0.0/24"}], [{subnet: "fd00:250::/64"}]], dataDir: .ipam.dataDir}' <<<"$CONF0")
our_rules6() { nft_node0 list chain ip6 bridge_ipam postrouting 2>/dev/null | grep -c masquerade; }
new_ns v6pod
r6=$(cni node0 ADD v6pod /run/netns/$RUN-v6pod eth0 "$CONF6")
check "a dual-stack ADD with ipMasq succeeds" test "$(jq '.ips | length' <<<"$r6" 2>/dev/null)" = 2
check "...with one IPv6 rule and one IPv4 rule for the network" bash -c "[ $(our_rules6) = 1 ] && [ \$(ip netns exec $RUN-node0 nft list chain ip bridge_ipam postrouting | grep -c masq6) = 1 ]"
check "...excluding the pod subnet and the IPv6 exclusions" bash -c "ip netns exec $RUN-node0 nft list chain ip6 bridge_ipam postrouting | grep -q 'ip6 daddr != { fd00:192::/64, fd00:250::/64 }'"
# (Retried: the pod's and the new bridge's IPv6 addresses may still be going through DAD.)
ping6_eventually() { local i; for i in $(seq 10); do ip netns exec $RUN-$1 ping -6 -n -q -c 1 -w 1 "$2" >/dev/null 2>&1 && return 0; sleep 0.3; done; return 1; }
check "the pod reaches an outside IPv6 host, which has no route back to the pod subnet (masqueraded)" ping6_eventually v6pod fd00:203::2
check "CHECK passes with both rules" cni node0 CHECK v6pod /run/netns/$RUN-v6pod eth0 "$(jq -c --argjson prev "$r6" '. + {prevResult: $prev}' <<<"$CONF6")"
nft_node0 flush chain ip6 bridge_ipam postrouting
out=$(cni node0 CHECK v6pod /run/netns/$RUN-v6pod eth0 "$(jq -c --argjson prev "$r6" '. + {prevResult: $prev}' <<<"$CONF6")")
check "CHECK fails with code 105 once the IPv6 rule is gone" test "$(jq -r .code <<<"$out")" = 105
new_ns v6pod2
cni node0 ADD v6pod2 /run/netns/$RUN-v6pod2 eth0 "$CONF6" >/dev/null
check "the next ADD puts it back" test "$(our_rules6)" = 1
cni node0 DEL v6pod /run/netns/$RUN-v6pod eth0 "$CONF6" >/dev/null
check "while a pod remains both rules stay" test "$(our_rules6)" = 1
cni node0 DEL v6pod2 /run/netns/$RUN-v6pod2 eth0 "$CONF6" >/dev/null
check "DEL of the last pod removes both families' rules" bash -c "[ $(our_rules6) = 0 ] && ! ip netns exec $RUN-node0 nft list chain ip bridge_ipam postrouting | grep -q masq6"

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
