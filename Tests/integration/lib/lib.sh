# Shared helpers for the namespace tests, the demo and the benchmark.
#
# Safety: everything happens inside network namespaces named with a per-run prefix. The plugin
# always runs inside a namespace playing the node; nothing is added to the root namespace, and
# `cleanup` (installed as an EXIT trap by `setup_run`) removes every namespace and file of the run.

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BIN=${BIN:-$REPO/.build/release/bridge-ipam}
REFERENCE_DIR=${REFERENCE_DIR:-/usr/lib/cni}

# A short prefix: namespace and file names carry it, so runs never collide or touch other state.
RUN=${RUN:-bi$$}
RUN_DIR=/tmp/$RUN
PLUGIN_DIR=$RUN_DIR/bin   # CNI_PATH: our plugin beside the reference plugins
DATA_DIR=$RUN_DIR/leases

cleanup() {
    local ns
    if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$RUN-" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    # Whatever a runtime mounted below the run's directory goes first, deepest first.
    grep " $RUN_DIR/" /proc/mounts 2>/dev/null | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$RUN_DIR"
}

setup_run() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    cleanup
    mkdir -p "$PLUGIN_DIR" "$DATA_DIR"
    cp "$BIN" "$PLUGIN_DIR/bridge-ipam"
    local p
    for p in bridge host-local static; do
        [ -x "$REFERENCE_DIR/$p" ] && ln -sf "$REFERENCE_DIR/$p" "$PLUGIN_DIR/$p"
    done
    return 0
}

# new_ns NAME: a namespace named $RUN-NAME with loopback up.
new_ns() {
    ip netns add "$RUN-$1"
    ip netns exec "$RUN-$1" ip link set lo up
}

# add_outside_host NODE NAME: a host beyond NODE (203.0.113.2), reachable only through NODE
# (203.0.113.1). It has no route to any pod: a pod's packet gets an answer only if it left the
# node with the node's address, or was sent to the node's address (a mapped port).
add_outside_host() {
    new_ns "$2"
    ip -n "$RUN-$1" link add ext0 type veth peer name eth0 netns "$RUN-$2"
    ip -n "$RUN-$1" addr add 203.0.113.1/24 dev ext0
    ip -n "$RUN-$1" link set ext0 up
    ip -n "$RUN-$2" addr add 203.0.113.2/24 dev eth0
    ip -n "$RUN-$2" link set eth0 up
}

# conf NAME SUBNET [EXTRA_TOP_LEVEL_JSON [EXTRA_IPAM_JSON [VERSION]]]: a bridge-ipam config.
conf() {
    local name=$1 subnet=$2 extra=${3:-} ipam_extra=${4:-} version=${5:-1.1.0}
    printf '{"cniVersion":"%s","name":"%s","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true%s,"ipam":{"type":"host-local","subnet":"%s","dataDir":"%s"%s}}' \
        "$version" "$name" "${extra:+,$extra}" "$subnet" "$DATA_DIR" "${ipam_extra:+,$ipam_extra}"
}

# cni NODE COMMAND CONTAINER_ID NETNS IFNAME CONFIG [VAR=VALUE ...]: runs our plugin in the node.
# Under a timeout (CNI_TIMEOUT seconds, default 30; exit status 124 or 137): a hang is a failure.
cni() {
    local node=$1 cmd=$2 id=$3 netns=$4 ifname=$5 config=$6
    shift 6
    printf '%s' "$config" | ip netns exec "$RUN-$node" timeout -k 2 "${CNI_TIMEOUT:-30}" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" \
        CNI_NETNS="$netns" CNI_IFNAME="$ifname" CNI_PATH="$PLUGIN_DIR" "$@" "$PLUGIN_DIR/bridge-ipam"
}

# ping_ok FROM_NS ADDRESS: one echo answered within 3 s (ping retries inside the deadline).
ping_ok() { ip netns exec "$RUN-$1" ping -n -q -c 1 -w 3 "$2" >/dev/null 2>&1; }

# Test bookkeeping: `check NAME COMMAND...` passes when COMMAND succeeds; `finish` removes the
# run, checks that nothing of it is left, and prints the tally line.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
finish() {
    cleanup
    trap - EXIT
    check "no namespace of this run is left" test -z "$(ip netns list | grep "^$RUN-")"
    echo
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
}

# cni_blocked_after_ipam NODE ID NETNS IFNAME CONFIG [VAR=VALUE ...]: starts an ADD that stops
# for good right after IPAM (lease written, ipMasq rule made, lease lock released) and prints its
# PID once it waits there; the caller kills it (kill -9: a real crash at that point, with no
# hook in the binary). How: in a private mount namespace of its own, the plugin sees a FIFO
# that nobody writes over /proc/sys/net/ipv4/ip_forward, which the bridge step reads next
# (needs isGateway with an IPv4 gateway). Prints nothing and returns 1 if it never blocks.
cni_blocked_after_ipam() {
    local node=$1 cmd=ADD id=$2 netns=$3 ifname=$4 config=$5 fifo pid i
    shift 5
    fifo=$RUN_DIR/ip_forward.$id.fifo
    rm -f "$fifo"; mkfifo "$fifo"
    printf '%s' "$config" | ip netns exec "$RUN-$node" unshare -m --propagation private \
        sh -c 'mount --bind "$0" /proc/sys/net/ipv4/ip_forward && exec "$@"' "$fifo" \
        env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" CNI_NETNS="$netns" CNI_IFNAME="$ifname" \
        CNI_PATH="$PLUGIN_DIR" "$@" "$PLUGIN_DIR/bridge-ipam" >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 100); do
        [ "$(cat /proc/$pid/wchan 2>/dev/null)" = wait_for_partner ] && { echo "$pid"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    return 1
}
