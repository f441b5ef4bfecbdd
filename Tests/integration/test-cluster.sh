#!/usr/bin/env bash
# Cluster networking: 3 nodes x 2 pods (override with NODES/PODS), routes from `routes sync`,
# and the proof of Kubernetes' three rules, plus the behaviour of `routes sync` itself.
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
NODES=${NODES:-3}
PODS=${PODS:-2}

setup_run
if cluster_up "$NODES" "$PODS"; then pass "cluster of $NODES nodes x $PODS pods is up"; else fail "cluster_up"; echo "0 passed, 1 failed"; exit 1; fi

echo "== The three rules"
cluster_matrix
misses=$?
check "every pod reaches every pod, node reaches pod, pod reaches node, and no NAT ($misses misses)" test $misses -eq 0
all_ips=$(printf '%s\n' "${POD_IP[@]}")
check "pod IPs are unique cluster-wide" test "$(sort <<<"$all_ips" | uniq -d)" = ""
inside=1
for key in "${!POD_IP[@]}"; do [[ ${POD_IP[$key]} == 10.244.${key%-*}.* ]] || inside=0; done
check "every pod IP lies inside its node's subnet" test $inside = 1

echo "== routes sync"
sync() { ip netns exec $RUN-node0 "$PLUGIN_DIR/bridge-ipam" routes sync --cluster "$CLUSTER_FILE" "$@" 2>"$RUN_DIR/sync.err"; }
routes() { ip netns exec $RUN-node0 ip route show; }
ours() { ip netns exec $RUN-node0 ip route show proto 212 | sort; }

check "node0 holds one route per other node" test "$(ours | wc -l)" = $((NODES - 1))
check "a second sync changes nothing" bash -c "[ \"\$(ip netns exec $RUN-node0 '$PLUGIN_DIR/bridge-ipam' routes sync --cluster '$CLUSTER_FILE' | tail -1)\" = 'added 0, replaced 0, removed 0, kept $((NODES - 1))' ]"
ip netns exec $RUN-node0 ip route add 10.99.0.0/24 via 192.168.1.3
write_cluster_file $(seq 0 $((NODES - 2)))
sync >/dev/null
check "a node that left loses its route" bash -c "! ip netns exec $RUN-node0 ip route show | grep -q '^10.244.$((NODES - 1)).0/24'"
check "a route we did not create is left alone" bash -c "ip netns exec $RUN-node0 ip route show | grep -q '^10.99.0.0/24 via 192.168.1.3'"
write_cluster_file
NODE_IP[1]=192.168.1.13
write_cluster_file
sync >/dev/null
check "a node whose IP changed has its route replaced, not duplicated" \
    test "$(ip netns exec $RUN-node0 ip route show 10.244.1.0/24)" = "10.244.1.0/24 via 192.168.1.13 dev eth0 proto 212 "
NODE_IP[1]=$(node_ip 1)
write_cluster_file
sync >/dev/null
check "...and back" test "$(ip netns exec $RUN-node0 ip route show 10.244.1.0/24)" = "10.244.1.0/24 via 192.168.1.3 dev eth0 proto 212 "

bad_input() {  # NAME FILE_CONTENT EXPECTED_IN_MESSAGE (content @missing: no file at all)
    local before after rc
    rm -f "$RUN_DIR/bad.json"
    [ "$2" = @missing ] || printf '%s' "$2" >"$RUN_DIR/bad.json"
    before=$(routes)
    ip netns exec $RUN-node0 "$PLUGIN_DIR/bridge-ipam" routes sync --cluster "$RUN_DIR/bad.json" >/dev/null 2>"$RUN_DIR/sync.err"
    rc=$?
    after=$(routes)
    if [ $rc -ne 1 ]; then fail "$1: exit $rc"; return; fi
    if ! grep -q -- "$3" "$RUN_DIR/sync.err"; then fail "$1: message lacks '$3': $(cat "$RUN_DIR/sync.err")"; return; fi
    if [ "$before" != "$after" ]; then fail "$1: the routing table changed"; return; fi
    pass "$1 ($(cat "$RUN_DIR/sync.err"))"
}
bad_input "malformed cluster file" '{"nodes": [' "not valid JSON"
bad_input "node without podCIDR" '{"nodes":[{"name":"node0","ip":"192.168.1.2","podCIDR":"10.244.0.0/24"},{"name":"lonely","ip":"192.168.1.9"}]}' "node lonely has no podCIDR"
bad_input "node without InternalIP" '{"nodes":[{"name":"node0","ip":"192.168.1.2","podCIDR":"10.244.0.0/24"},{"name":"ghost","podCIDR":"10.244.9.0/24"}]}' "node ghost has no IPv4"
bad_input "overlapping podCIDRs" '{"nodes":[{"name":"node0","ip":"192.168.1.2","podCIDR":"10.244.0.0/24"},{"name":"a","ip":"192.168.1.3","podCIDR":"10.244.1.0/24"},{"name":"b","ip":"192.168.1.4","podCIDR":"10.244.1.128/25"}]}' "overlaps podCIDR"
bad_input "empty cluster file" "" "not valid JSON"
bad_input "missing cluster file" @missing "cannot read cluster file"

# Kubernetes' own format, as `kubectl get nodes -o json` prints it.
{
    echo '{"apiVersion":"v1","kind":"NodeList","items":['
    for n in $(seq 0 $((NODES - 1))); do
        [ $n -gt 0 ] && echo ','
        printf '{"metadata":{"name":"node%d"},"spec":{"podCIDR":"10.244.%d.0/24","podCIDRs":["10.244.%d.0/24"]},"status":{"addresses":[{"type":"InternalIP","address":"%s"},{"type":"Hostname","address":"node%d"}]}}' $n $n $n "${NODE_IP[$n]}" $n
    done
    echo ']}'
} >"$RUN_DIR/nodes.json"
check "a Kubernetes NodeList gives the same routes" bash -c "[ \"\$(ip netns exec $RUN-node0 '$PLUGIN_DIR/bridge-ipam' routes sync --cluster '$RUN_DIR/nodes.json' | tail -1)\" = 'added 0, replaced 0, removed 0, kept $((NODES - 1))' ]"

echo "== Teardown"
for n in $(seq 0 $((NODES - 1))); do for p in $(seq 1 $PODS); do
    cni node$n DEL pod$n-$p /run/netns/$RUN-pod$n-$p eth0 "$(node_conf $n)" >/dev/null || fail "DEL pod$n-$p"
done; done
check "every lease is released" test -z "$(find "$RUN_DIR" -path '*/leases/*' -name '10.*')"
finish
