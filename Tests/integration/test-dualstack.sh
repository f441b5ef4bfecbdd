#!/usr/bin/env bash
# Dual stack: every pod gets an IPv4 and an IPv6 address (ipam.ranges with one range set per
# family); IPv6 answers pod to pod, node to pod and pod to gateway within 100 ms of ADD, on a
# fresh node and a settled one; CHECK and DEL cover both families; and a 3-node dual-stack
# cluster routes both families with `routes sync`.
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
setup_run

DS=$(printf '{"cniVersion":"1.1.0","name":"dsnet","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.244.5.0/24"}],[{"subnet":"fd00:10:244:5::/64"}]]}}' "$DATA_DIR")
with_prev() { jq -c --argjson p "$1" '. + {prevResult: $p}' <<<"$DS"; }
# addr_of RESULT FAMILY(. or :): the pod's address of that family, in bash alone, so that no
# process start lies between ADD's return and the first ping.
addr_of() {
    local rest=$1 a
    while [[ $rest =~ \"address\":\"([^\"/]+)/ ]]; do
        a=${BASH_REMATCH[1]}; rest=${rest#*$a/}
        [[ $a == *"$2"* ]] && { echo "$a"; return; }
    done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# answered_within MS FROM ADDRESS START_MS: one ping, answered no later than MS after START.
answered_within() {
    ip netns exec "$RUN-$2" ping -n -q -c 1 -W 1 "$3" >/dev/null 2>&1 || { echo "no answer from $3"; return 1; }
    local took=$(($(now_ms) - $4))
    echo "${took} ms"
    [ $took -le "$1" ]
}
timed() {  # NAME MS FROM ADDRESS START_MS
    local out
    if out=$(answered_within "$2" "$3" "$4" "$5"); then pass "$1 ($out)"; else fail "$1 ($out)"; fi
}

echo "== one node"
new_ns node; new_ns a; new_ns b; new_ns c
ra=$(cni node ADD a /run/netns/$RUN-a eth0 "$DS"); start=$(now_ms)
timed "fresh node: the first pod reaches its IPv6 gateway within 100 ms of ADD" 100 a fd00:10:244:5::1 $start
check "the pod has one address of each family" test "$(jq -c '[.ips[].address | contains(":")] | sort' <<<"$ra")" = '[false,true]'
check "...and a default route of each family" bash -c "ip -n $RUN-a route show default | grep -q 10.244.5.1 && ip -n $RUN-a -6 route show default | grep -q fd00:10:244:5::1"
a6=$(addr_of "$ra" :); a4=$(addr_of "$ra" .)
rb=$(cni node ADD b /run/netns/$RUN-b eth0 "$DS"); start=$(now_ms)
timed "settled node: a new pod reaches another pod over IPv6 within 100 ms of ADD" 100 b "$a6" $start
rc=$(cni node ADD c /run/netns/$RUN-c eth0 "$DS"); start=$(now_ms)
timed "settled node: the node reaches a new pod over IPv6 within 100 ms of ADD" 100 node "$(addr_of "$rc" :)" $start
new_ns d
rd=$(cni node ADD d /run/netns/$RUN-d eth0 "$DS"); start=$(now_ms)
timed "settled node: a new pod reaches its IPv6 gateway within 100 ms of ADD" 100 d fd00:10:244:5::1 $start
new_ns freshnode; new_ns e
re=$(cni freshnode ADD e /run/netns/$RUN-e eth0 "$DS"); start=$(now_ms)
timed "fresh node: the node reaches its first pod over IPv6 within 100 ms of ADD" 100 freshnode "$(addr_of "$re" :)" $start
check "IPv4 still works pod to pod" ping_ok b "$a4"
check "the gateway addresses on the bridge skipped DAD" bash -c "ip -n $RUN-node -6 -o addr show dev cni0 scope global | grep -q 'fd00:10:244:5::1/64.*nodad'"
check "IPv6 forwarding is on in the node" test "$(ip netns exec $RUN-node cat /proc/sys/net/ipv6/conf/all/forwarding)" = 1

echo "== CHECK and DEL"
check "CHECK passes with both families" cni node CHECK a /run/netns/$RUN-a eth0 "$(with_prev "$ra")"
ip -n $RUN-a -6 addr del "$a6/64" dev eth0
out=$(cni node CHECK a /run/netns/$RUN-a eth0 "$(with_prev "$ra")")
check "CHECK fails when the IPv6 address is gone (code 105)" test "$(jq -r .code <<<"$out")" = 105
ip -n $RUN-a -6 addr add "$a6/64" dev eth0 nodad
ip -n $RUN-a -6 route del default
out=$(cni node CHECK a /run/netns/$RUN-a eth0 "$(with_prev "$ra")")
check "CHECK fails when the IPv6 default route is gone (code 105)" test "$(jq -r .code <<<"$out")" = 105
check "both leases exist before DEL" test -e "$DATA_DIR/dsnet/$a4" -a -e "$DATA_DIR/dsnet/$a6"
check "DEL succeeds" cni node DEL a /run/netns/$RUN-a eth0 "$DS"
check "DEL released both leases" test ! -e "$DATA_DIR/dsnet/$a4" -a ! -e "$DATA_DIR/dsnet/$a6"
check "a second DEL succeeds" cni node DEL a /run/netns/$RUN-a eth0 "$DS"

echo "== a dual-stack cluster"
DUALSTACK=1
if cluster_up 3 2; then pass "3 dual-stack nodes x 2 pods are up"; else fail "cluster_up"; finish; exit 1; fi
check "node0 holds an IPv4 and an IPv6 route per other node (proto 212)" bash -c "
    [ \$(ip netns exec $RUN-node0 ip -4 route show proto 212 | wc -l) = 2 ] && [ \$(ip netns exec $RUN-node0 ip -6 route show proto 212 | wc -l) = 2 ]"
check "the IPv6 route to node1's pods goes via node1's IPv6 address" bash -c "
    ip netns exec $RUN-node0 ip -6 route show proto 212 | grep -q '^fd00:10:244:1::/64 via fd00:192:168:1::3 '"
echo "IPv4:"
cluster_matrix 4
misses=$?
check "IPv4: every pod and node reaches every other, no NAT ($misses misses)" test $misses -eq 0
echo "IPv6:"
cluster_matrix 6
misses=$?
check "IPv6: every pod and node reaches every other, no NAT ($misses misses)" test $misses -eq 0

finish
