#!/usr/bin/env bash
# User-space instructions of one ADD (valgrind --tool=callgrind, insensitive to machine load) for
# two plugin binaries, on a subnet file with and without a FLANNEL_MTU line: what reading the
# MTU from the subnet file costs the per-pod path. Not part of `make test`.
# Usage (root): bash bench/add-cost.sh BEFORE_BINARY [AFTER_BINARY [RUNS]]
RUN=${RUN:-p20c$$}
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
BEFORE=$1
AFTER=${2:-$BIN}
RUNS=${3:-5}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
setup_run
new_ns node
new_ns pod
printf '10.244.1.0/24\n' >"$RUN_DIR/plain"
printf '10.244.1.0/24\nFLANNEL_MTU=1450\n' >"$RUN_DIR/mtu"
conf_for() { printf '{"cniVersion":"1.1.0","name":"podnet","type":"bridge-ipam","bridge":"cni0","isGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","dataDir":"%s"}}' "$RUN_DIR/$1" "$DATA_DIR"; }
# valgrind cannot read the debug info of the static Swift binary: it measures stripped copies.
strip -o "$RUN_DIR/before" "$BEFORE"
strip -o "$RUN_DIR/after" "$AFTER"
plugin() {
    local verb=$1 binary=$2 file=$3; shift 3
    conf_for $file | ip netns exec $RUN-node env -i CNI_COMMAND=$verb CNI_CONTAINERID=cost CNI_NETNS=/run/netns/$RUN-pod \
        CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$@" "$binary"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
plugin ADD "$RUN_DIR/before" plain >/dev/null && plugin DEL "$RUN_DIR/before" plain >/dev/null   # warm: the bridge exists
declare -A IR
for i in $(seq 1 "$RUNS"); do
    for case in before:plain after:plain after:mtu; do
        b=${case%%:*} f=${case##*:}
        plugin ADD "$RUN_DIR/$b" $f valgrind -q --tool=callgrind --callgrind-out-file="$RUN_DIR/cg.$i" >/dev/null || { echo "ADD $case failed"; exit 1; }
        plugin DEL "$RUN_DIR/$b" $f >/dev/null
        IR[$case]+="$(awk '/^(summary|totals):/ { print $2; exit }' "$RUN_DIR/cg.$i") "
    done
done
echo "instructions per ADD (callgrind, median of $RUNS, interleaved):"
for case in before:plain after:plain after:mtu; do
    printf '  %-26s %10d Ir\n' "${case%%:*} binary, ${case##*:} file" "$(tr ' ' '\n' <<<"${IR[$case]}" | grep . | median)"
done
finish
