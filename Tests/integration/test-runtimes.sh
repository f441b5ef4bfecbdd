#!/usr/bin/env bash
# Real CNI clients driving the installed plugin, from conf and bin directories of this test's own:
#  1. libcni (the library under the kubelet's CRI runtimes), through a small driver built from
#     Debian's golang-github-appc-cni-dev, running a chain: bridge-ipam, portmap, tuning, bandwidth;
#  2. containerd: `ctr run --cni` runs a busybox container whose image is built here;
#  3. podman with its CNI network backend runs one with a published port.
# A runtime that cannot start on this machine is skipped, saying why.
source "$(dirname "$0")/lib/lib.sh"

setup_run
# Under CI=true nothing the README promises may be skipped: what would be a SKIP fails.
skip() { if [ "${CI:-}" = true ]; then fail "$1 (a SKIP, but CI=true)"; else echo "SKIP $1"; fi; }
machine_cni_dirs=$(ls -la /etc/cni /opt/cni 2>&1)
pm_machine_dirs="/var/lib/containers /run/containers /run/libpod /etc/containers"
pm_machine_before=$(ls -la $pm_machine_dirs 2>&1)
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
        go build -o "$DRIVER" "$REPO/Tests/support/libcni-driver/main.go" 2>"$RUN_DIR/go.log"; then
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
    ip netns exec $RUN-lpod python3 -u "$REPO/Tests/support/peer-echo.py" serve 80 >"$RUN_DIR/lpod-serve.log" 2>&1 &
    for _ in $(seq 50); do grep -q ready "$RUN_DIR/lpod-serve.log" 2>/dev/null && break; sleep 0.1; done
    seen=$(ip netns exec $RUN-client python3 "$REPO/Tests/support/peer-echo.py" probe 8080 203.0.113.1 | awk '{print $2}')
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
ctrd_pid=
# Processes given this run's socket (containerd's shims). The pattern is read from a file so
# that grep's own command line does not match.
ctrd_processes() { [ -e "$CTRD/pattern" ] && grep -lsF -f "$CTRD/pattern" /proc/[0-9]*/cmdline | cut -d/ -f3; }
extra_cleanup() {
    if declare -F pm_cleanup >/dev/null; then pm_cleanup; fi
    [ -n "$ctrd_pid" ] || return 0
    local t pid
    for t in $(ctr -a "$SOCK" tasks ls -q 2>/dev/null); do ctr -a "$SOCK" tasks kill -s KILL "$t" 2>/dev/null; done
    sleep 0.5
    kill "$ctrd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ctrd_pid" 2>/dev/null || break; sleep 0.1; done
    for pid in $(ctrd_processes); do kill -9 "$pid" 2>/dev/null; done
    ctrd_pid=
}
# containerd and ctr run in the node's namespace and in one private mount namespace (that of
# containerd) in which /run is the run's own directory, /etc, /opt and /var/lib are overlays
# whose upper halves are the run's, and /etc/cni/net.d and /opt/cni/bin (where `ctr run --cni`
# looks) are bound to this test's: shim sockets, libcni's cache and containerd's opt directory
# never reach the machine's.
ctr_private() { nsenter -t "$ctrd_pid" -m -n ctr -a "$SOCK" "$@"; }
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null; then
    skip "containerd: containerd or runc is not installed"
else
    mkdir -p "$CTRD/run"
    printf '%s\n' "$SOCK" >"$CTRD/pattern"
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
        "$CTRD" "$CTRD" "$SOCK" >"$CTRD/config.toml"
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts runc needs.
    nsenter --net=/run/netns/$RUN-node unshare -m --propagation private sh -c '
        set -e
        mount --bind "$0/run" /run
        for d in etc opt var/lib; do
            mkdir -p "$0/overlay/$d/upper" "$0/overlay/$d/work"
            mount -t overlay overlay -o "lowerdir=/$d,upperdir=$0/overlay/$d/upper,workdir=$0/overlay/$d/work" "/$d"
        done
        mkdir -p /etc/cni/net.d /opt/cni/bin
        mount --bind "$1" /etc/cni/net.d
        mount --bind "$2" /opt/cni/bin
        exec containerd --config "$0/config.toml"' "$CTRD" "$NETD" "$PLUGIN_DIR" >"$CTRD/containerd.log" 2>&1 &
    ctrd_pid=$!
    for _ in $(seq 50); do ctr -a "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
    if ! ctr -a "$SOCK" version >/dev/null 2>&1; then
        skip "containerd: the daemon did not start: $(tail -2 "$CTRD/containerd.log" | tr '\n' ' ')"
    else
        python3 "$REPO/Tests/support/make-busybox-image.py" "$CTRD/busybox.tar" docker.io/library/bridge-ipam-test:latest
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
echo "== podman: network_backend = \"cni\""
PM=$RUN_DIR/podman
PM_IMAGE=localhost/bridge-ipam-test:1
pm_holder=
# podman runs in the node namespace and in one private mount namespace, held by a sleeping
# process, in which /run is $PM/run and /var/lib an overlay whose upper half is $PM's: its
# storage, pod namespaces, libcni's cache and image cache never touch the machine's.
pm() { nsenter -t "$pm_holder" -m -n env CONTAINERS_CONF="$PM/containers.conf" podman --root "$PM/storage" --runroot /run/containers/storage --storage-driver vfs "$@"; }
pm_quiet() { pm "$@" >/dev/null; }
# conmon outlives podman: found by the storage path on its command line (pattern read from a
# file, so grep's own command line does not match), ended by ID.
pm_processes() { [ -e "$PM/pattern" ] && grep -lsF -f "$PM/pattern" /proc/[0-9]*/cmdline | cut -d/ -f3; }
pm_cleanup() {
    local pid
    [ -n "$pm_holder" ] || return 0
    pm rm -f -a >/dev/null 2>&1
    kill "$pm_holder" 2>/dev/null
    for pid in $(pm_processes); do kill -9 "$pid" 2>/dev/null; done
    find /sys/fs/cgroup -depth -type d -path "*/$RUN-pm*" -exec rmdir {} + 2>/dev/null
    pm_holder=
}
if ! command -v podman >/dev/null; then
    skip "podman: not installed"
else
    mkdir -p "$PM/net.d" "$PM/run" "$PM/var-lib/upper" "$PM/var-lib/work"
    printf '%s/storage\n' "$PM" >"$PM/pattern"
    cat >"$PM/containers.conf" <<TOML
[network]
network_backend = "cni"
cni_plugin_dirs = ["$PLUGIN_DIR"]
network_config_dir = "$PM/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PM/events.log"
TOML
    cat >"$PM/net.d/bipm.conflist" <<JSON
{"cniVersion":"1.0.0","name":"bipm","plugins":[{"type":"bridge-ipam","bridge":"cni2","isGateway":true,"isDefaultGateway":true,
 "ipam":{"type":"host-local","subnet":"10.244.5.0/24","dataDir":"$DATA_DIR"}},{"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
    nsenter --net=/run/netns/$RUN-node unshare -m --propagation private sh -c '
        mount --bind "$0/run" /run &&
        mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$0/var-lib/upper,workdir=$0/var-lib/work" /var/lib &&
        exec sleep 1000000' "$PM" &
    pm_holder=$!
    for _ in $(seq 50); do [ "$(readlink /proc/$pm_holder/exe 2>/dev/null)" = "$(readlink -f "$(command -v sleep)")" ] && break; sleep 0.1; done
    python3 "$REPO/Tests/support/make-busybox-image.py" "$PM/busybox.tar" "$PM_IMAGE"
    if ! pm load -i "$PM/busybox.tar" >"$PM/load.log" 2>&1; then
        skip "podman: cannot load an image here: $(tail -1 "$PM/load.log")"
    # Without CAP_SYS_RESOURCE (as in some VMs) runc cannot raise podman's default limits.
    elif ! pm run -d --name "$RUN-pm1" --network bipm -p 8081:80 --cgroup-parent "/$RUN-pm" \
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$PM_IMAGE" sleep 300 >"$PM/run.log" 2>&1; then
        if grep -q 'bridge-ipam' "$PM/run.log"; then
            fail "podman run: $(tail -1 "$PM/run.log")"
        else
            skip "podman: cannot run a container here: $(tail -1 "$PM/run.log")"
        fi
    else
        pid=$(pm inspect --format '{{.State.Pid}}' "$RUN-pm1")
        id=$(pm inspect --format '{{.Id}}' "$RUN-pm1")
        pip=$(nsenter -t "$pid" -n ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
        check "podman run: the container has an address from bridge-ipam ($pip)" bash -c "[[ '$pip' == 10.244.5.* ]]"
        check "...that podman reports" test "$(pm inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$RUN-pm1")" = "$pip"
        check "...leased to podman's container ID" grep -q "$id" "$DATA_DIR/bipm/$pip"
        check "the node reaches the container" ping_ok node "$pip"
        nsenter -t "$pid" -n python3 -u "$REPO/Tests/support/peer-echo.py" serve 80 >"$PM/serve.log" 2>&1 &
        server=$!
        for _ in $(seq 50); do grep -q ready "$PM/serve.log" 2>/dev/null && break; sleep 0.1; done
        seen=$(ip netns exec $RUN-client python3 "$REPO/Tests/support/peer-echo.py" probe 8081 203.0.113.1 | awk '{print $2}')
        check "podman -p 8081:80: the node's port reaches the container through portmap (server saw $seen)" test "$seen" = 203.0.113.2
        kill $server 2>/dev/null; wait $server 2>/dev/null
        check "podman stop" pm_quiet stop -t 0 "$RUN-pm1"
        check "...releases the lease" test ! -e "$DATA_DIR/bipm/$pip"
        check "...and removes the veth from the bridge" test -z "$(ip -n $RUN-node -o link show master cni2 2>/dev/null)"
        check "podman rm" pm_quiet rm "$RUN-pm1"
        check "...leaves no pod namespace" test -z "$(ls -A "$PM/run/netns" 2>/dev/null)"
    fi
    pm_cleanup
    check "no podman process of this run is left" test -z "$(pm_processes)"
    check "no cgroup of it is left" test -z "$(find /sys/fs/cgroup -type d -path "*/$RUN-pm*" 2>/dev/null)"
    check "the machine's podman directories are as they were" test "$(ls -la $pm_machine_dirs 2>&1)" = "$pm_machine_before"
fi
check "the machine's /etc/cni and /opt/cni are as they were" test "$(ls -la /etc/cni /opt/cni 2>&1)" = "$machine_cni_dirs"
check "the machine's /var/lib/cni, /run/containerd and /opt/containerd hold nothing of this run" \
    test -z "$(find /var/lib/cni /run/containerd /opt/containerd 2>/dev/null | grep -E "ctrnet|bipm|chain|bit-1|$RUN")"
finish
