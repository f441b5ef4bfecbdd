#!/usr/bin/env bash
# What the bridge's netfilter switches cost an ADD: netlink round trips (sendmsg/sendto calls
# under strace) of the ADD that creates the bridge, of an ADD on a settled bridge, and of the ADD
# that adopts a bridge with its switches off, for BIN (default: this tree's release build) and,
# when given, BASE (the binary before the change); then the wall time of settled ADDs, the two
# binaries interleaved.   usage: bridge-netfilter-cost.sh [BASE_BIN] [ROUNDS]
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
RUN=${RUN:-p19c$$}
RUN_DIR=/tmp/$RUN
PLUGIN_DIR=$RUN_DIR/bin
DATA_DIR=$RUN_DIR/leases
BASE=${1:-}
ROUNDS=${2:-40}
setup_run
[ -n "$BASE" ] && cp "$BASE" "$PLUGIN_DIR/bridge-ipam-base"

# add BINARY NODE ID [strace]: one ADD of pod ID on NODE; with "strace", prints its netlink sends.
add() {
    local bin=$1 node=$2 id=$3 conf
    conf=$(conf podnet-$node 10.244.1.0/24)
    [ -e /run/netns/$RUN-$id ] || new_ns $id
    if [ "${4:-}" = strace ]; then
        printf '%s' "$conf" | ip netns exec $RUN-$node env -i CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$RUN-$id \
            CNI_IFNAME=eth0 CNI_PATH=/x strace -f -qq -e trace=sendmsg,sendto -o "$RUN_DIR/strace.$id" "$PLUGIN_DIR/$bin" >/dev/null
        grep -c 'send' "$RUN_DIR/strace.$id"
    else
        printf '%s' "$conf" | ip netns exec $RUN-$node env -i CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$RUN-$id \
            CNI_IFNAME=eth0 CNI_PATH=/x "$PLUGIN_DIR/$bin" >/dev/null
    fi
}

printf '%-12s %-16s %-16s %-26s\n' binary "fresh node" "settled bridge" "adopted, switches off"
for bin in bridge-ipam ${BASE:+bridge-ipam-base}; do
    new_ns n-$bin
    fresh=$(add $bin n-$bin f1-$bin strace)
    add $bin n-$bin f2-$bin >/dev/null
    settled=$(add $bin n-$bin f3-$bin strace)
    ip -n $RUN-n-$bin link set cni0 type bridge nf_call_iptables 0 nf_call_ip6tables 0
    adopted=$(add $bin n-$bin f4-$bin strace)
    printf '%-12s %-16s %-16s %-26s\n' "$bin" "$fresh sends" "$settled sends" "$adopted sends ($(ip -n $RUN-n-$bin -d link show cni0 | grep -o 'nf_call_iptables [01]'))"
done

if [ -n "$BASE" ] && command -v valgrind >/dev/null; then
    echo
    echo "settled ADD user-space instructions (callgrind on stripped copies; valgrind cannot read the debug info):"
    for bin in bridge-ipam bridge-ipam-base; do
        strip -o "$PLUGIN_DIR/$bin.stripped" "$PLUGIN_DIR/$bin"
        counts=""
        for i in 1 2 3; do
            new_ns cg$i-${bin#bridge-ipam}x
            printf '%s' "$(conf podnet-n-$bin 10.244.1.0/24)" | ip netns exec $RUN-n-$bin env -i CNI_COMMAND=ADD CNI_CONTAINERID=cg$i \
                CNI_NETNS=/run/netns/$RUN-cg$i-${bin#bridge-ipam}x CNI_IFNAME=eth0 CNI_PATH=/x \
                valgrind -q --tool=callgrind --callgrind-out-file="$RUN_DIR/cg.$bin.$i" "$PLUGIN_DIR/$bin.stripped" >/dev/null 2>&1
            counts+="$(grep '^summary:' "$RUN_DIR/cg.$bin.$i" | awk '{print $2}') "
        done
        printf '%-18s %s\n' $bin "$counts"
    done
fi

if [ -n "$BASE" ]; then
    echo
    echo "settled ADD wall time (ip netns exec + plugin), $ROUNDS each, interleaved (ms): median p90"
    declare -A T
    for i in $(seq $ROUNDS); do
        for bin in bridge-ipam bridge-ipam-base; do
            new_ns t$i-${bin#bridge-ipam}x  # outside the timed part
            s=$(date +%s%N); add $bin n-$bin t$i-${bin#bridge-ipam}x >/dev/null; e=$(date +%s%N)
            T[$bin]+="$(((e - s) / 1000)) "
        done
    done
    for bin in bridge-ipam bridge-ipam-base; do
        printf '%-18s %s\n' $bin "$(tr ' ' '\n' <<<"${T[$bin]}" | grep . | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[int(NR/2)+1]/1000, a[int(NR*0.9)]/1000}')"
    done
fi
finish
