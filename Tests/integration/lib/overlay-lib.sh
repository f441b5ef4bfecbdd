# Nodes on two L3 subnets (sourced after lib.sh, cluster.sh and agent-lib.sh), for
# test-vxlan.sh, demo-overlay.sh and bench-overlay.sh:
#
#   $RUN-underlay   the router: ul0 = 192.168.1.1/24 (subnet A; the API server listens there too),
#                   ul1 = 192.168.2.1/24 (subnet B). It forwards between the subnets, knows no
#                   pod route, and refuses every packet from or to a pod address, as cloud
#                   networks do: pods on the two subnets meet only through the tunnel.
#   $RUN-nodeN      a node on the subnet of its address, its default route via the router
#   $RUN-podN       one pod on node N, attached by the plugin from the agent's subnet file

OVERLAY_DEV=bipam.1
declare -A VX_IP POD

# overlay_router: the router namespace and the stand-in API server, and the kubeconfig.
overlay_router() {
    make_pki
    new_ns underlay
    ip netns exec $RUN-underlay sysctl -qw net.ipv4.ip_forward=1
    local b
    for b in ul0 ul1; do ip -n $RUN-underlay link add $b type bridge; ip -n $RUN-underlay link set $b up; done
    ip -n $RUN-underlay addr add 192.168.2.1/24 dev ul1
    ip -n $RUN-underlay rule add from 10.244.0.0/16 prohibit
    ip -n $RUN-underlay rule add to 10.244.0.0/16 prohibit
    apiserver_up || return 1
    write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"
}

# vx_node N IP: node N on the subnet of IP (192.168.1.x or 192.168.2.x).
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

# vx_api_node N IP [PODCIDRS_JSON]: node N's Node in the API.
vx_api_node() {
    api POST /nodes "{\"name\":\"node$1\",\"ip\":\"$2\",\"podCIDRs\":${3:-[\"10.244.$1.0/24\"]}}" >/dev/null
}

# pod_conf N: the network config on node N (no mtu: it comes from the subnet file).
pod_conf() {
    printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"10.244.0.0/16","dataDir":"%s"}}' \
        "$RUN_DIR/node$1/podcidr" "$RUN_DIR/node$1/leases"
}

# add_pod N: pod N on node N; POD[N] its IPv4 address, POD6[N] its IPv6 one if any.
declare -A POD6
add_pod() {
    local n=$1 result
    new_ns pod$n
    result=$(cni node$n ADD pod$n /run/netns/$RUN-pod$n eth0 "$(pod_conf $n)") || { echo "ADD on node$n: $result"; return 1; }
    POD[$n]=$(jq -r '[.ips[].address | select(contains("."))][0]' <<<"$result" | cut -d/ -f1)
    POD6[$n]=$(jq -r '[.ips[].address | select(contains(":"))][0] // ""' <<<"$result" | cut -d/ -f1)
}
del_pod() { cni node$1 DEL pod$1 /run/netns/$RUN-pod$1 eth0 "$(pod_conf $1)" >/dev/null; ip netns del $RUN-pod$1; }

route_of() { ip -n $RUN-node$1 route show "$2" proto 212 2>/dev/null; }
fdb_of() { ip netns exec $RUN-node$1 bridge fdb show dev $OVERLAY_DEV 2>/dev/null; }
neigh_of() { ip -n $RUN-node$1 neigh show dev $OVERLAY_DEV nud permanent 2>/dev/null; }
tx_packets() { ip -n $RUN-node$1 -s -j link show $OVERLAY_DEV | jq '.[0].stats64.tx.packets'; }
vtep_mac() { local ip=$1; printf '0e:62:%02x:%02x:%02x:%02x' ${ip//./ }; }
# tunnel_to N PEER: node N routes PEER's podCIDR through the tunnel, with PEER's neighbour and fdb entries.
tunnel_to() {
    local ip=${VX_IP[$2]} mac
    mac=$(vtep_mac $ip)
    route_of $1 10.244.$2.0/24 | grep -q "via 10.244.$2.0 dev $OVERLAY_DEV .*onlink" &&
        neigh_of $1 | grep -q "^10.244.$2.0 lladdr $mac" && fdb_of $1 | grep -q "^$mac dst $ip "
}
direct_to() { route_of $1 10.244.$2.0/24 | grep -q "via ${VX_IP[$2]} dev eth0"; }
no_entries_for() { [ -z "$(route_of $1 10.244.$2.0/24)" ] && ! neigh_of $1 | grep -q "^10.244.$2.0 " && ! fdb_of $1 | grep -q " dst $3 "; }
# in_shell 'COMMANDS': runs COMMANDS in a bash that knows these helpers (for wait_until).
in_shell() { bash -c "$(declare -f route_of fdb_of neigh_of vtep_mac tunnel_to direct_to no_entries_for ping_ok); RUN=$RUN; OVERLAY_DEV=$OVERLAY_DEV; $(declare -p VX_IP); $1"; }

# pod_matrix pod|node [FAMILY]: who reaches whom, as a table; fails on any miss.
pod_matrix() {
    local kind=$1 family=${2:-4} from to bad=0 row target
    printf '%-9s' "$kind"; for to in $(printf '%s\n' "${!POD[@]}" | sort -n); do printf ' pod%-3s' $to; done; echo
    for from in $(printf '%s\n' "${!POD[@]}" | sort -n); do
        row=""
        for to in $(printf '%s\n' "${!POD[@]}" | sort -n); do
            if [ $kind = pod ] && [ $from = $to ]; then row+="   -   "; continue; fi
            target=${POD[$to]}; [ $family = 6 ] && target=${POD6[$to]}
            if ping_ok $([ $kind = pod ] && echo pod$from || echo node$from) $target; then row+="   ok  "; else row+="  FAIL "; bad=$((bad + 1)); fi
        done
        printf '%-9s%s\n' "$kind$from" "$row"
    done
    [ $bad = 0 ]
}
