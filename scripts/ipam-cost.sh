#!/usr/bin/env bash
# ADD and DEL cost (callgrind instructions and CPU time) at 0 and 250 leases held, with and
# without prevResult, for this build or several binaries side by side (interleaved):
#   bash scripts/ipam-cost.sh [RUNS] [NAME=BINARY ...]     (default: this build, 20 runs)
# valgrind cannot read the static Swift binary's debug info: it measures stripped copies.
RUN=${RUN:-p22c$$}
source "$(dirname "$0")/lib.sh"
RUNS=${1:-20}
shift $(($# > 0 ? 1 : 0))
setup_run
new_ns node
new_ns pod
args=()
[ $# -gt 0 ] || set -- "this=$BIN"
for spec in "$@"; do
    name=${spec%%=*}
    mkdir -p "$RUN_DIR/$name"
    strip -o "$RUN_DIR/$name/bridge-ipam" "${spec#*=}"
    args+=("$name=$RUN_DIR/$name/bridge-ipam")
done
ip netns exec $RUN-node python3 "$REPO/scripts/ipam-cost.py" "$RUN" "$DATA_DIR" "$RUNS" "${args[@]}"
