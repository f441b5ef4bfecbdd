# A simulated cluster in network namespaces (sourced after lib.sh):
#
#   $RUN-underlay   a bridge "ul0", the node network 192.168.1.0/24
#   $RUN-node<N>    node N: eth0 = 192.168.1.<N+2> on the underlay; pod subnet 10.244.<N>.0/24,
#                   read by the plugin from the node's subnet.env (flannel's format)
#   $RUN-pod<N>-<P> pod P on node N, attached by bridge-ipam
#
# With DUALSTACK=1 every node also has fd00:192:168:1::<N+2>/64 on the underlay and the IPv6 pod
# subnet fd00:10:244:<N>::/64 (ipam.ranges with one range set per family instead of subnet.env),
# the cluster file lists both addresses and both podCIDRs, and POD_IP6 holds the pods' IPv6
# addresses. `cluster_matrix 6` probes over IPv6.
#
# Routes between nodes come from `bridge-ipam routes sync` on each node over one cluster file.
# Nothing touches the root namespace; lib.sh's cleanup removes it all.

CLUSTER_CIDR=10.244.0.0/16
CLUSTER_FILE=$RUN_DIR/cluster.json
DUALSTACK=${DUALSTACK:-0}
declare -A NODE_IP POD_IP NODE_IP6 POD_IP6

node_ip() { echo "192.168.1.$(($1 + 2))"; }
node_ip6() { echo "fd00:192:168:1::$(($1 + 2))"; }
pod_cidr6() { echo "fd00:10:244:$1::/64"; }
# With MASQ=1 the nodes masquerade pod traffic that leaves the cluster (pod-to-pod and
# pod-to-node traffic is excluded: the cluster CIDR and the node network).
node_conf() {
    local masq=""
    [ "${MASQ:-0}" = 1 ] && masq='"ipMasq":true,"ipMasqExclude":["192.168.1.0/24"],'
    if [ "$DUALSTACK" = 1 ]; then
        printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,%s"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.%d.0/24"}],[{"subnet":"%s"}]],"clusterCIDR":"%s","dataDir":"%s"}}' \
            "$masq" "$1" "$(pod_cidr6 $1)" "$CLUSTER_CIDR" "$RUN_DIR/node$1/leases"
        return
    fi
    printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,%s"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"%s","dataDir":"%s"}}' \
        "$masq" "$RUN_DIR/node$1/subnet.env" "$CLUSTER_CIDR" "$RUN_DIR/node$1/leases"
}

# write_cluster_file [NODE...]: the cluster file listing the given nodes (default: all).
write_cluster_file() {
    local n entries=()
    for n in "${@:-${!NODE_IP[@]}}"; do
        if [ "$DUALSTACK" = 1 ]; then
            entries+=("{\"name\":\"node$n\",\"ips\":[\"${NODE_IP[$n]}\",\"${NODE_IP6[$n]}\"],\"podCIDRs\":[\"10.244.$n.0/24\",\"$(pod_cidr6 $n)\"]}")
            continue
        fi
        entries+=("{\"name\":\"node$n\",\"ip\":\"${NODE_IP[$n]}\",\"podCIDR\":\"10.244.$n.0/24\"}")
    done
    (IFS=,; echo "{\"nodes\":[${entries[*]}]}") >"$CLUSTER_FILE"
}

# cluster_up NODES PODS_PER_NODE
cluster_up() {
    local nodes=$1 pods=$2 n p result
    new_ns underlay
    ip -n $RUN-underlay link add ul0 type bridge
    ip -n $RUN-underlay link set ul0 up
    for n in $(seq 0 $((nodes - 1))); do
        new_ns node$n
        NODE_IP[$n]=$(node_ip $n)
        ip -n $RUN-underlay link add n$n type veth peer name eth0 netns $RUN-node$n
        ip -n $RUN-underlay link set n$n master ul0 up
        ip -n $RUN-node$n addr add ${NODE_IP[$n]}/24 dev eth0
        if [ "$DUALSTACK" = 1 ]; then
            NODE_IP6[$n]=$(node_ip6 $n)
            ip -n $RUN-node$n addr add ${NODE_IP6[$n]}/64 dev eth0 nodad
        fi
        ip -n $RUN-node$n link set eth0 up
        mkdir -p "$RUN_DIR/node$n"
        printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=10.244.%d.1/24\n' $CLUSTER_CIDR $n >"$RUN_DIR/node$n/subnet.env"
    done
    write_cluster_file
    for n in $(seq 0 $((nodes - 1))); do
        ip netns exec $RUN-node$n "$PLUGIN_DIR/bridge-ipam" routes sync --cluster "$CLUSTER_FILE" >/dev/null || return 1
        for p in $(seq 1 "$pods"); do
            new_ns pod$n-$p
            result=$(cni node$n ADD pod$n-$p /run/netns/$RUN-pod$n-$p eth0 "$(node_conf $n)") || { echo "ADD pod$n-$p failed: $result" >&2; return 1; }
            POD_IP[$n-$p]=$(jq -r '[.ips[].address | select(contains("."))][0]' <<<"$result" | cut -d/ -f1)
            if [ "$DUALSTACK" = 1 ]; then
                POD_IP6[$n-$p]=$(jq -r '[.ips[].address | select(contains(":"))][0]' <<<"$result" | cut -d/ -f1)
            fi
        done
    done
}

# cluster_matrix [4|6]: pings and TCP peer-address probes between every pair of nodes and pods
# over IPv4 (default) or IPv6; prints
# the matrix and returns the number of misses. A cell is "ok" when ping answers and the TCP
# server saw the sender's own address (its pod IP for a pod, one of its addresses for a node),
# "NAT" when it saw another address, "MISS" when nothing got through.
cluster_matrix() {
    local family=${1:-4} port=7777 names=() addrs=() name i j misses=0 self seen ok
    for n in $(printf '%s\n' "${!NODE_IP[@]}" | sort -n); do
        names+=(node$n)
        if [ "$family" = 6 ]; then addrs+=(${NODE_IP6[$n]}); else addrs+=(${NODE_IP[$n]}); fi
        for key in $(printf '%s\n' "${!POD_IP[@]}" | grep "^$n-" | sort -t- -k2 -n); do
            names+=(pod$key)
            if [ "$family" = 6 ]; then addrs+=(${POD_IP6[$key]}); else addrs+=(${POD_IP[$key]}); fi
        done
    done
    # The servers answer on both families; a second matrix reuses them.
    if [ -z "${MATRIX_SERVERS_UP:-}" ]; then
        for name in "${names[@]}"; do
            ip netns exec $RUN-$name python3 -u "$REPO/Tests/support/peer-echo.py" serve $port >"$RUN_DIR/serve-$name.log" 2>&1 &
        done
        for name in "${names[@]}"; do
            for _ in $(seq 50); do grep -q ready "$RUN_DIR/serve-$name.log" 2>/dev/null && break; sleep 0.1; done
        done
        MATRIX_SERVERS_UP=1
    fi
    printf '%-9s' ""
    for name in "${names[@]}"; do printf '%-9s' "$name"; done
    echo
    for i in "${!names[@]}"; do
        name=${names[$i]}
        declare -A SEEN=()
        while read -r target who; do SEEN[$target]=$who; done < <(ip netns exec $RUN-$name python3 "$REPO/Tests/support/peer-echo.py" probe $port "${addrs[@]}")
        local mine
        mine=$(ip netns exec $RUN-$name ip -o -$family addr show | awk '{print $4}' | cut -d/ -f1 | tr '\n' ' ')
        printf '%-9s' "$name"
        for j in "${!names[@]}"; do
            if [ $i = $j ]; then printf '%-9s' "-"; continue; fi
            seen=${SEEN[${addrs[$j]}]:--}
            if ! ping_ok $name "${addrs[$j]}" || [ "$seen" = "-" ]; then
                printf '%-9s' MISS; misses=$((misses + 1))
            elif [[ $name == pod* && "$seen" != "${addrs[$i]}" ]] || [[ " $mine " != *" $seen "* ]]; then
                printf '%-9s' NAT; misses=$((misses + 1))
            else
                printf '%-9s' ok
            fi
        done
        echo
        unset SEEN
    done
    return $misses
}
