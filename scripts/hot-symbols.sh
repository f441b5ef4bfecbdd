#!/usr/bin/env bash
# Writes build/hot-symbols.txt: every function the plugin runs for VERSION, ADD, CHECK, DEL, GC
# and STATUS, in the order callgrind lists them. The release link (lld --symbol-ordering-file)
# places these functions next to each other, so a pod event faults in a few contiguous pages of
# the 7 MB text instead of 64 KiB around every scattered function (ADD: ~200 -> ~170 page faults,
# peak RSS 6.4 -> 5.2 MiB). A stale list only costs that gain: names it lacks are linked as
# usual and names the binary lacks are ignored. Rerun after large changes: `make hot-symbols`.
# Runs inside namespaces of its own, like every test.
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
setup_run
OUT=$REPO/build/hot-symbols.txt
PROFILED=$RUN_DIR/bridge-ipam
# valgrind cannot read the static binary's DWARF; the symbol table is all this needs.
objcopy --strip-debug "$BIN" "$PROFILED"
new_ns node
new_ns pod
CONF=$(conf hot 10.244.9.0/24 '"ipMasq":true')
profile() {
    local cmd=$1 config=$2
    printf '%s' "$config" | ip netns exec "$RUN-node" env -i CNI_COMMAND="$cmd" CNI_CONTAINERID=hot \
        CNI_NETNS="/run/netns/$RUN-pod" CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" \
        valgrind --tool=callgrind --demangle=no --dump-instr=no \
        --callgrind-out-file="$RUN_DIR/profile.$cmd.$RANDOM" "$PROFILED" >"$RUN_DIR/out.$cmd" 2>/dev/null
}
profile VERSION "$CONF"
profile ADD "$CONF"
result=$(cat "$RUN_DIR/out.ADD")
profile CHECK "$(jq -c --argjson r "$result" '. + {prevResult: $r}' <<<"$CONF")"
profile STATUS "$CONF"
profile DEL "$(jq -c --argjson r "$result" '. + {prevResult: $r}' <<<"$CONF")"
profile GC "$(jq -c '. + {"cni.dev/valid-attachments": []}' <<<"$CONF")"
mkdir -p "$(dirname "$OUT")"
cat "$RUN_DIR"/profile.* | sed -nE 's/^c?fn=\([0-9]+\) (.+)$/\1/p' | awk '!seen[$0]++' >"$OUT"
echo "$(wc -l <"$OUT") functions in $OUT"
