#!/usr/bin/env bash
# A single node (a network namespace) with three pods attached by bridge-ipam: their addresses and a
# ping matrix from the node and from every pod. Everything is removed at the end.
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
setup_run

CONF=$(conf podnet 10.244.1.0/24)
new_ns node
echo "node namespace $RUN-node, pod subnet 10.244.1.0/24, bridge cni0"
echo
declare -a NAMES=(node) ADDRS=(10.244.1.1)
for i in 1 2 3; do
    new_ns pod$i
    result=$(cni node ADD demo-$i /run/netns/$RUN-pod$i eth0 "$CONF") || { echo "ADD failed: $result"; exit 1; }
    ip=$(jq -r '.ips[0].address' <<<"$result")
    printf 'pod%d  %-16s via %-12s host veth %s\n' $i "$ip" "$(jq -r '.ips[0].gateway' <<<"$result")" "$(jq -r '.interfaces[1].name' <<<"$result")"
    NAMES+=(pod$i)
    ADDRS+=("${ip%/*}")
done

echo
echo "ping matrix (row pings column):"
printf '%-8s' ""
for n in "${NAMES[@]}"; do printf '%-8s' "$n"; done
echo
misses=0
for from in "${NAMES[@]}"; do
    printf '%-8s' "$from"
    for i in "${!NAMES[@]}"; do
        if [ "$from" = "${NAMES[$i]}" ]; then printf '%-8s' "-"; continue; fi
        if ping_ok "$from" "${ADDRS[$i]}"; then printf '%-8s' "ok"; else printf '%-8s' "MISS"; misses=$((misses + 1)); fi
    done
    echo
done

for i in 1 2 3; do cni node DEL demo-$i /run/netns/$RUN-pod$i eth0 "$CONF" || exit 1; done
echo
echo "all pods deleted; leases left: $(ls "$DATA_DIR/podnet" | grep -c '^10\.' || true)"
[ $misses -eq 0 ]
