#!/usr/bin/env bash
# Node agents converging a cluster: a stand-in API server (Tests/support/fake-apiserver.py) holds
# the Nodes; bridge-ipam-agent runs in every node's namespace, installs the plugin and conflist,
# writes the node's subnet file and keeps routes to the other nodes' pods. Nodes join and leave
# through the API only; the agents do the rest. Then teardown.
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/cluster.sh"
source "$(dirname "$0")/../Tests/integration/lib/agent-lib.sh"
setup_run
make_pki
new_ns underlay
ip -n $RUN-underlay link add ul0 type bridge
ip -n $RUN-underlay link set ul0 up
apiserver_up || exit 1
write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"

mark=$RUN_DIR/mark
events_since_mark() {  # every agent's log lines since the mark, in time order, named by node
    local n
    for n in "${!AGENT_PID[@]}"; do
        [ -f "$RUN_DIR/node$n/agent.log" ] || continue
        tail -n +$(( $(grep -c '' "$mark.$n" 2>/dev/null || echo 0) + 1 )) "$RUN_DIR/node$n/agent.log" | sed "s/ bridge-ipam-agent: / node$n  /"
    done | sort | sed 's/^/  /'
    set_mark
}
set_mark() { local n; for n in "${!AGENT_PID[@]}"; do cp "$RUN_DIR/node$n/agent.log" "$mark.$n" 2>/dev/null; done; }
show_routes() {
    local n
    for n in $(printf '%s\n' "${!AGENT_PID[@]}" | sort -n); do
        [ -n "${AGENT_PID[$n]}" ] || continue
        echo "  node$n ($(node_ip $n)):"
        ip -n $RUN-node$n route show proto 212 | sed 's/^/    /'
    done
}
# join N: node N's namespace and agent, then its Node in the API.
join() {
    local n=$1
    node_ns $n
    printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","plugins":[{"type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"%s","dataDir":"%s"}}]}\n' \
        "$RUN_DIR/node$n/podcidr" $CLUSTER_CIDR "$RUN_DIR/node$n/leases" >"$RUN_DIR/node$n/10-bridge-ipam.conflist"
    agent_start $n --install-cni "$RUN_DIR/node$n/cni-bin" "$RUN_DIR/node$n/net.d" --cni-plugin "$BIN" \
        --cni-conflist "$RUN_DIR/node$n/10-bridge-ipam.conflist"
    api_node $n
    wait_until 5 test -f "$RUN_DIR/node$n/ready"
}
# pod N: a pod on node N, attached through the plugin and conflist the agent installed.
pod() {
    local n=$1 conf result
    new_ns pod$n-1
    conf=$(jq -c '{cniVersion, name} + .plugins[0]' "$RUN_DIR/node$n/net.d/10-bridge-ipam.conflist")
    result=$(printf '%s' "$conf" | ip netns exec $RUN-node$n env -i CNI_COMMAND=ADD CNI_CONTAINERID=pod$n-1 \
        CNI_NETNS=/run/netns/$RUN-pod$n-1 CNI_IFNAME=eth0 CNI_PATH="$RUN_DIR/node$n/cni-bin" "$RUN_DIR/node$n/cni-bin/bridge-ipam") || return 1
    POD_IP[$n-1]=$(jq -r '.ips[0].address' <<<"$result" | cut -d/ -f1)
}

echo "stand-in API server at https://$API_ADDR:6443 (TLS, token auth); an agent in each node's namespace"
echo
echo "== node0 and node1 join"
join 0
join 1
events_since_mark
echo
echo "== node2 joins"
join 2
wait_until 2 others_route 2 10.244.2.0/24 $(node_ip 2)
events_since_mark
echo
echo "routes (proto 212) kept by the agents:"
show_routes
echo
for n in 0 1 2; do pod $n || { echo "pod on node$n failed"; exit 1; }; done
echo "one pod per node, addressed from the subnet file its agent wrote:"
for n in 0 1 2; do echo "  pod$n-1 on node$n: ${POD_IP[$n-1]} (subnet file: $(cat "$RUN_DIR/node$n/podcidr"))"; done
echo
echo "row reaches column (ping and TCP; the receiver saw the sender's own address):"
cluster_matrix
misses=$?
echo
echo "== node2 leaves (its Node is deleted)"
agent_stop 2
api POST /delete '["node2"]' >/dev/null
AGENT_PID[2]=
wait_until 2 others_route 2 10.244.2.0/24 -
events_since_mark
echo
echo "routes after it left:"
show_routes
echo
[ $misses -eq 0 ] && echo "all pairs reachable, no NAT; the agents followed every change" || echo "$misses misses"
[ $misses -eq 0 ]
