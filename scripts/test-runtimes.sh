#!/usr/bin/env bash
# Real CNI clients driving the installed plugin, from conf and bin directories of this test's own:
#  1. libcni (the library under the kubelet's CRI runtimes), through a small driver built from
#     Debian's golang-github-appc-cni-dev, running a chain: bridge-ipam, portmap, tuning, bandwidth;
#  2. containerd: `ctr run --cni` runs a busybox container whose image is built here.
# A runtime that cannot start on this machine is skipped, saying why.
source "$(dirname "$0")/lib.sh"

setup_run
skip() { echo "SKIP $1"; }
machine_cni_dirs=$(ls -la /etc/cni /opt/cni 2>&1)
for p in loopback portmap tuning bandwidth; do [ -x "$REFERENCE_DIR/$p" ] && ln -sf "$REFERENCE_DIR/$p" "$PLUGIN_DIR/$p"; done
NETD=$RUN_DIR/net.d
mkdir -p "$NETD"

new_ns node
ip netns exec $RUN-node sysctl -qw net.ipv4.ip_forward=1
# A client beyond the node, to reach a mapped port from outside.
add_outside_host node client

echo "== libcni: a chain of bridge-ipam, portmap, tuning and bandwidth"
DRIVER=$RUN_DIR/libcni-driver
if ! command -v go >/dev/null; then
    skip "libcni: no Go toolchain (golang-go) to build the driver"
elif ! env GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$RUN_DIR/gocache GOFLAGS= \
        go build -o "$DRIVER" "$REPO/tests/libcni-driver/main.go" 2>"$RUN_DIR/go.log"; then
    skip "libcni: the driver did not build: $(head -3 "$RUN_DIR/go.log" | tr '\n' ' ')"
else
    cat >"$NETD/10-chain.conflist" <<JSON
{"cniVersion":"1.0.0","name":"chain","plugins":[
  {"type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,
   "ipam":{"type":"host-local","subnet":"10.244.3.0/24","dataDir":"$DATA_DIR"}},
  {"type":"portmap","capabilities":{"portMappings":true}},
  {"type":"tuning","sysctl":{"net.core.somaxconn":"512"}},
  {"type":"bandwidth","capabilities":{"bandwidth":true}}]}
JSON
    # The plugins see iptables but no ip6tables, as on an IPv4-only node: Debian's portmap (1.1.1)
    # otherwise fails CHECK looking for IPv6 rules it never made for an IPv4-only pod
    # (containernetworking/plugins#819).
    mkdir -p "$RUN_DIR/sbin"
    for t in iptables iptables-save iptables-restore; do ln -sf "$(command -v $t)" "$RUN_DIR/sbin/$t"; done
    driver() {
        ip netns exec $RUN-node env PATH="$RUN_DIR/sbin:/usr/bin:/bin" CNI_PATH="$PLUGIN_DIR" CNI_CACHE_DIR="$RUN_DIR/cache" "$DRIVER" "$@"
    }
    caps='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":100000000,"ingressBurst":1000000,"egressRate":100000000,"egressBurst":1000000}}'
    new_ns lpod
    result=$(driver add "$NETD" chain lpod-1 /run/netns/$RUN-lpod eth0 "$caps")
    check "libcni ADD of the chain succeeds" test -n "$result"
    ip=$(jq -r '.ips[0].address' <<<"$result" | cut -d/ -f1)
    veth=$(jq -r '.interfaces[] | select(.name | startswith("veth")) | .name' <<<"$result" | head -1)
    check "the chained result carries bridge-ipam's address ($ip) and host veth ($veth)" bash -c "[[ '$ip' == 10.244.3.* && -n '$veth' ]]"
    check "tuning applied its sysctl inside the pod" test "$(ip netns exec $RUN-lpod cat /proc/sys/net/core/somaxconn)" = 512
    check "bandwidth shaped the host veth" bash -c "ip netns exec $RUN-node tc qdisc show dev $veth | grep -q tbf"
    ip netns exec $RUN-lpod python3 -u "$REPO/scripts/peer-echo.py" serve 80 >"$RUN_DIR/lpod-serve.log" 2>&1 &
    for _ in $(seq 50); do grep -q ready "$RUN_DIR/lpod-serve.log" 2>/dev/null && break; sleep 0.1; done
    seen=$(ip netns exec $RUN-client python3 "$REPO/scripts/peer-echo.py" probe 8080 203.0.113.1 | awk '{print $2}')
    check "portmap: the node's port 8080 reaches the pod's port 80 (server saw $seen)" test "$seen" = 203.0.113.2
    check "libcni CHECK of the chain succeeds" driver check "$NETD" chain lpod-1 /run/netns/$RUN-lpod eth0 "$caps"
    check "libcni DEL of the chain succeeds" driver del "$NETD" chain lpod-1 /run/netns/$RUN-lpod eth0 "$caps"
    check "...the lease is released" test ! -e "$DATA_DIR/chain/$ip"
    check "...the host veth is gone" bash -c "! ip netns exec $RUN-node ip link show $veth >/dev/null 2>&1"
    check "...and portmap's rules are gone" bash -c "! ip netns exec $RUN-node iptables-save -t nat | grep -q -- '--to-destination $ip'"
    check "libcni DEL again succeeds" driver del "$NETD" chain lpod-1 /run/netns/$RUN-lpod eth0 "$caps"
    rm -f "$NETD/10-chain.conflist"
fi

echo "== containerd: ctr run --cni"
CTRD=$RUN_DIR/containerd
SOCK=$CTRD/containerd.sock
extra_cleanup() {
    [ -S "$SOCK" ] || return 0
    local t
    for t in $(ctr -a "$SOCK" tasks ls -q 2>/dev/null); do ctr -a "$SOCK" tasks kill -s KILL "$t" 2>/dev/null; done
    sleep 0.5
    pkill -f "containerd --config $CTRD/config.toml" 2>/dev/null
    sleep 0.5
}
# ctr takes its CNI configuration from /etc/cni/net.d and /opt/cni/bin. It runs in a private
# mount namespace where overlays add those directories, bound to this test's own, so nothing
# of the machine's /etc or /opt is read or written.
ctr_private() {
    unshare -m --propagation private bash -c '
        set -e
        for d in etc opt; do
            mkdir -p "$0/overlay/$d/upper" "$0/overlay/$d/work"
            mount -t overlay overlay -o "lowerdir=/$d,upperdir=$0/overlay/$d/upper,workdir=$0/overlay/$d/work" "/$d"
        done
        mkdir -p /etc/cni/net.d /opt/cni/bin
        mount --bind "$1" /etc/cni/net.d
        mount --bind "$2" /opt/cni/bin
        shift 3
        exec nsenter --net="/run/netns/$RUN-node" ctr -a "$SOCK" "$@"' "$CTRD" "$NETD" "$PLUGIN_DIR" -- "$@"
}
export RUN SOCK
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null; then
    skip "containerd: containerd or runc is not installed"
else
    mkdir -p "$CTRD"
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
        "$CTRD" "$CTRD" "$SOCK" >"$CTRD/config.toml"
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts runc needs.
    nsenter --net=/run/netns/$RUN-node containerd --config "$CTRD/config.toml" >"$CTRD/containerd.log" 2>&1 &
    for _ in $(seq 50); do ctr -a "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
    if ! ctr -a "$SOCK" version >/dev/null 2>&1; then
        skip "containerd: the daemon did not start: $(tail -2 "$CTRD/containerd.log" | tr '\n' ' ')"
    else
        python3 "$REPO/tests/make-busybox-image.py" "$CTRD/busybox.tar" docker.io/library/bridge-ipam-test:latest
        ctr -a "$SOCK" images import "$CTRD/busybox.tar" >/dev/null
        cat >"$NETD/10-containerd.conflist" <<JSON
{"cniVersion":"1.0.0","name":"ctrnet","plugins":[{"type":"bridge-ipam","bridge":"cni1","isGateway":true,"isDefaultGateway":true,
 "ipam":{"type":"host-local","subnet":"10.244.4.0/24","dataDir":"$DATA_DIR"}}]}
JSON
        ctr_private run --rm --cni docker.io/library/bridge-ipam-test:latest bit-1 \
            /bin/sh -c 'ip -4 -o addr show eth0; ping -c 1 -w 3 10.244.4.1 >/dev/null && echo gateway-ok; sleep 60' >"$CTRD/run.log" 2>&1 &
        ctr_pid=$!
        for _ in $(seq 100); do grep -q gateway-ok "$CTRD/run.log" 2>/dev/null && break; sleep 0.1; done
        if ! grep -q 'inet ' "$CTRD/run.log"; then
            if grep -qiE 'cgroup|runc|mount|permission' "$CTRD/run.log"; then
                skip "containerd: runc could not start a container here: $(head -2 "$CTRD/run.log" | tr '\n' ' ')"
            else
                fail "ctr run --cni: the container got no address: $(head -3 "$CTRD/run.log" | tr '\n' ' ')"
            fi
        else
            cip=$(awk '/inet /{print $4}' "$CTRD/run.log" | cut -d/ -f1)
            check "the container has an address from bridge-ipam ($cip)" bash -c "[[ '$cip' == 10.244.4.* ]]"
            check "the container reaches its gateway" grep -q gateway-ok "$CTRD/run.log"
            check "the node reaches the container" ping_ok node "$cip"
            check "the lease names containerd's container ID" bash -c "grep -q bit-1 '$DATA_DIR/ctrnet/$cip'"
            ctr -a "$SOCK" tasks kill -s KILL bit-1 >/dev/null 2>&1
            for _ in $(seq 50); do kill -0 $ctr_pid 2>/dev/null || break; sleep 0.1; done
            check "stopping the container releases the lease" test ! -e "$DATA_DIR/ctrnet/$cip"
            check "...and removes its veth from the bridge" test "$(ip netns exec $RUN-node ip -o link show master cni1 2>/dev/null | wc -l)" = 0
        fi
    fi
fi
check "the machine's /etc/cni and /opt/cni are as they were" test "$(ls -la /etc/cni /opt/cni 2>&1)" = "$machine_cni_dirs"
finish
