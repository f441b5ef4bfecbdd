#!/usr/bin/env bash
# Netlink at its limits: the documented maximum of routes in one ADD and one past it, `routes
# sync` over thousands of nodes (more messages than one datagram or one receive buffer of acks
# holds), and netlink sockets kept from a delegated IPAM plugin (close-on-exec).
# Override the cluster size with NODES (default 1500).
source "$(dirname "$0")/lib/lib.sh"

setup_run
NODES=${NODES:-1500}
NODE=node
new_ns $NODE

# routes_json COUNT: COUNT pod routes 10.100.N.0/24 (gw omitted: via the pod's gateway).
routes_json() {
    local i sep=""
    printf '['
    for ((i = 0; i < $1; i++)); do printf '%s{"dst":"10.%d.%d.0/24"}' "$sep" $((100 + i / 256)) $((i % 256)); sep=,; done
    printf ']'
}

echo "== ADD with the documented maximum of routes"
new_ns pod1
CONF256=$(conf podnet 10.244.1.0/24 "" "\"routes\":$(routes_json 256)")
out=$(cni $NODE ADD ctr-1 /run/netns/$RUN-pod1 eth0 "$CONF256")
rc=$?
check "ADD with 256 routes succeeds (exit $rc)" test $rc -eq 0 -a "$(jq -r '.ips[0].address' <<<"$out" 2>/dev/null)" = 10.244.1.2/24
check "the pod has all 256 routes, each via the gateway" \
    test "$(ip netns exec $RUN-pod1 ip -4 route show | grep -c '^10\.10[01]\.[0-9]*\.0/24 via 10.244.1.1 dev eth0')" = 256
check "the pod's default route is there too" bash -c "ip netns exec $RUN-pod1 ip route show default | grep -q 'via 10.244.1.1 dev eth0'"
check "the result lists 257 routes (256 and the default)" test "$(jq '.routes | length' <<<"$out" 2>/dev/null)" = 257
check "DEL removes the attachment" cni $NODE DEL ctr-1 /run/netns/$RUN-pod1 eth0 "$CONF256"
check "DEL left no lease" test -z "$(ls "$DATA_DIR/podnet" 2>/dev/null | grep -v '^last_reserved_ip\|^lock$')"

echo "== ADD with one route past the maximum"
new_ns pod2
CONF257=$(conf podnet 10.244.1.0/24 "" "\"routes\":$(routes_json 257)")
out=$(cni $NODE ADD ctr-2 /run/netns/$RUN-pod2 eth0 "$CONF257")
rc=$?
check "ADD with 257 routes is config error 7 ($(jq -r .msg <<<"$out" 2>/dev/null))" \
    test $rc -ne 0 -a "$(jq -r .code <<<"$out" 2>/dev/null)" = 7
check "the pod was not touched" test "$(ip netns exec $RUN-pod2 ip -o link show | grep -c eth0)" = 0
check "no lease was taken" test -z "$(ls "$DATA_DIR/podnet" 2>/dev/null | grep -v '^last_reserved_ip\|^lock$')"

echo "== routes sync over $NODES nodes"
# The node namespace is node 0, 172.16.0.1/16 on a veth within the node; node N is at 172.16.(N/250).(N%250+1)
# with pod subnet 10.(N/256).(N%256).0/24.
ip -n $RUN-$NODE link add uplink type veth peer name uplink-peer
ip -n $RUN-$NODE addr add 172.16.0.1/16 dev uplink
ip -n $RUN-$NODE link set uplink up
ip -n $RUN-$NODE link set uplink-peer up
node_ip() { echo "172.16.$(($1 / 250)).$(($1 % 250 + 1))"; }
pod_cidr() { echo "10.$(($1 / 256)).$(($1 % 256)).0/24"; }
cluster_file() {
    local i sep=""
    printf '{"nodes":['
    for ((i = 0; i < $1; i++)); do
        printf '%s{"name":"node%d","ip":"%s","podCIDR":"%s"}' "$sep" $i "$(node_ip $i)" "$(pod_cidr $i)"
        sep=,
    done
    printf ']}'
}
cluster_file "$NODES" >"$RUN_DIR/nodes.json"
sync() { ip netns exec $RUN-$NODE "$PLUGIN_DIR/bridge-ipam" routes sync --cluster "$1" 2>"$RUN_DIR/sync.err"; }
ours() { ip netns exec $RUN-$NODE ip -4 route show proto 212 | wc -l; }
out=$(sync "$RUN_DIR/nodes.json")
rc=$?
check "routes sync over $NODES nodes exits 0 ($(tail -1 <<<"$out") $(head -c 200 "$RUN_DIR/sync.err"))" test $rc -eq 0
check "every other node's route is installed ($(ours) of $((NODES - 1)))" test "$(ours)" = $((NODES - 1))
LAST=$((NODES - 1))
check "the last node's route goes via its address" \
    bash -c "ip netns exec $RUN-$NODE ip route show $(pod_cidr $LAST) | grep -q 'via $(node_ip $LAST) dev uplink proto 212'"
out=$(sync "$RUN_DIR/nodes.json")
check "a second sync keeps them all" test "$(tail -1 <<<"$out")" = "added 0, replaced 0, removed 0, kept $((NODES - 1))"
cluster_file 1 >"$RUN_DIR/alone.json"
out=$(sync "$RUN_DIR/alone.json")
rc=$?
check "a sync with this node alone exits 0 and removes them all ($(tail -1 <<<"$out"))" \
    test $rc -eq 0 -a "$(tail -1 <<<"$out")" = "added 0, replaced 0, removed $((NODES - 1)), kept 0"
check "no route of ours is left" test "$(ours)" = 0

echo "== A delegated IPAM plugin inherits no socket"
# The IPAM "plugin" lists its open descriptors, then hands the request to the reference host-local.
cat >"$PLUGIN_DIR/fd-recorder" <<EOF
#!/bin/sh
ls -l /proc/\$\$/fd >>"$RUN_DIR/delegate-fds"
exec "$REFERENCE_DIR/host-local"
EOF
chmod +x "$PLUGIN_DIR/fd-recorder"
new_ns pod3
DCONF=$(printf '{"cniVersion":"1.0.0","name":"delegated","type":"bridge-ipam","bridge":"cni1","isGateway":true,"ipam":{"type":"fd-recorder","subnet":"10.245.1.0/24","dataDir":"%s"}}' "$DATA_DIR")
out=$(cni $NODE ADD ctr-3 /run/netns/$RUN-pod3 eth0 "$DCONF")
check "ADD through the delegated IPAM plugin succeeds" test "$(jq -r '.ips[0].address' <<<"$out" 2>/dev/null)" = 10.245.1.2/24
check "DEL through the delegated IPAM plugin succeeds" cni $NODE DEL ctr-3 /run/netns/$RUN-pod3 eth0 "$DCONF"
check "the delegate ran for ADD and DEL" test "$(grep -c '^total' "$RUN_DIR/delegate-fds" 2>/dev/null)" = 2
check "the delegate saw no socket (it saw: $(grep -o 'socket:.*' "$RUN_DIR/delegate-fds" | tr '\n' ' '))" \
    test "$(grep -c 'socket:' "$RUN_DIR/delegate-fds")" = 0

finish
