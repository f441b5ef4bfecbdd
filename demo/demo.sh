#!/usr/bin/env bash
# The project's demonstration: a three-node cluster in network namespaces, two pods per node
# attached by bridge-ipam, routes between nodes from `bridge-ipam routes sync`, and a matrix of
# ping + TCP probes in which every receiver reports the source address it saw. Then teardown.
# DUALSTACK=1 (make demo-dualstack): every node and pod has IPv4 and IPv6, and both matrices run.
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/cluster.sh"
NODES=${NODES:-3}
PODS=${PODS:-2}
setup_run

cluster_up "$NODES" "$PODS" || exit 1
echo "cluster of $NODES nodes (node network 192.168.1.0/24, cluster CIDR $CLUSTER_CIDR):"
for n in $(seq 0 $((NODES - 1))); do
    printf '  node%d  %-13s pods 10.244.%d.0/24:' $n "${NODE_IP[$n]}" $n
    for p in $(seq 1 $PODS); do printf '  pod%d-%d %s' $n $p "${POD_IP[$n-$p]}"; done
    echo
    if [ "$DUALSTACK" = 1 ]; then
        printf '         %-13s pods %s:' "${NODE_IP6[$n]}" "$(pod_cidr6 $n)"
        for p in $(seq 1 $PODS); do printf '  pod%d-%d %s' $n $p "${POD_IP6[$n-$p]}"; done
        echo
    fi
done
echo
echo "routes on node0 (from routes sync, proto 212):"
ip netns exec $RUN-node0 ip route show proto 212 | sed 's/^/  /'
[ "$DUALSTACK" = 1 ] && ip netns exec $RUN-node0 ip -6 route show proto 212 | sed 's/^/  /'
echo
echo "row reaches column (ping and TCP; the receiver saw the sender's own address):"
cluster_matrix
misses=$?
if [ "$DUALSTACK" = 1 ]; then
    echo
    echo "the same over IPv6:"
    cluster_matrix 6
    misses=$((misses + $?))
fi
echo
[ $misses -eq 0 ] && echo "all pairs reachable, no NAT" || echo "$misses misses"
[ $misses -eq 0 ]
