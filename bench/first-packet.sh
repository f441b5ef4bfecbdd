#!/usr/bin/env bash
# First-packet time after ADD, IPv4 and IPv6 (dual stack): on a fresh node (the first pod
# creates the bridge and its gateway addresses) and on a settled node (later pods). For each
# target, the time from ADD's return to the first answered ping (pings of 100 ms timeout in a
# loop), in ms. Usage: bash bench/first-packet.sh [ROUNDS]   (PLUGIN=reference for the reference
# bridge + host-local)
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
ROUNDS=${1:-3}
PLUGIN=${PLUGIN:-bridge-ipam}
setup_run

now() { date +%s%N; }
# first_answer FROM_NS ADDRESS START_NS: ms from START to the first answered ping.
first_answer() {
    local from=$1 addr=$2 start=$3 end
    for _ in $(seq 200); do
        if ip netns exec "$RUN-$from" ping -n -q -c 1 -W 0.1 "$addr" >/dev/null 2>&1; then
            end=$(now); echo $(((end - start) / 1000000)); return
        fi
        sleep 0.005
    done
    echo "none"
}

conf_ds() {
    local type=bridge-ipam ipam=host-local
    [ "$PLUGIN" = reference ] && type=bridge
    printf '{"cniVersion":"1.0.0","name":"fp","type":"%s","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"%s","dataDir":"%s","ranges":[[{"subnet":"10.244.5.0/24"}],[{"subnet":"fd00:10:244:5::/64"}]]}}' \
        "$type" "$ipam" "$DATA_DIR"
}
add() {  # NODE POD -> prints the result
    local node=$1 pod=$2 plugin=bridge-ipam
    [ "$PLUGIN" = reference ] && plugin=bridge
    printf '%s' "$(conf_ds)" | ip netns exec "$RUN-$node" env -i PATH="$PATH" CNI_COMMAND=ADD CNI_CONTAINERID="$pod" \
        CNI_NETNS="/run/netns/$RUN-$pod" CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$PLUGIN_DIR/$plugin"
}

# addr_of RESULT FAMILY(. or :): the pod's address of that family, by bash alone (no process
# between ADD's return and the first ping).
addr_of() {
    local rest=$1 a
    while [[ $rest =~ \"address\":\ ?\"([^\"/]+)/ ]]; do
        a=${BASH_REMATCH[1]}; rest=${rest#*$a/}
        [[ $a == *"$2"* ]] && { echo "$a"; return; }
    done
}
# measure ROUND STATE NODE KIND: one ADD on NODE, then the first answer for KIND in each family.
n=0
measure() {
    local round=$1 state=$2 node=$3 kind=$4 pod result start a4 a6
    n=$((n + 1)); pod=p$n; new_ns $pod
    result=$(add $node $pod) || { echo "ADD failed: $result"; exit 1; }
    start=$(now)
    case $kind in
    pod-\>gateway) a4=$(first_answer $pod 10.244.5.1 $start); a6=$(first_answer $pod fd00:10:244:5::1 $start) ;;
    node-\>pod) local v4 v6; v4=$(addr_of "$result" .); v6=$(addr_of "$result" :)
                a4=$(first_answer $node "$v4" $start); a6=$(first_answer $node "$v6" $start) ;;
    pod-\>pod) a4=$(first_answer $pod "$first4" $start); a6=$(first_answer $pod "$first6" $start) ;;
    esac
    [ -z "${first4:-}" ] && { first4=$(addr_of "$result" .); first6=$(addr_of "$result" :); }
    printf '%-6s %-8s %-14s %6s %6s\n' $round $state "$kind" "$a4" "$a6"
}
printf '%-6s %-8s %-14s %6s %6s\n' round node first-answer v4-ms v6-ms
for r in $(seq "$ROUNDS"); do
    new_ns fa$r; new_ns fb$r
    first4=""
    measure $r fresh fa$r "pod->gateway"
    measure $r fresh fb$r "node->pod"
    measure $r settled fa$r "pod->gateway"
    measure $r settled fa$r "node->pod"
    measure $r settled fa$r "pod->pod"
done
finish >/dev/null
