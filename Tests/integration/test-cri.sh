#!/usr/bin/env bash
# The kubelet's path: a CRI client (Tests/support/cri/cri-client.py, gRPC) drives containerd's CRI
# plugin, which runs the conflist exactly as `make install DESTDIR=...` lays it down through libcni:
# bridge-ipam, then portmap, with the node's pod subnet learned from the subnet file the conflist
# names. containerd runs inside the node namespace and in a private mount namespace in which
# /run and /var/lib/cni are this run's own directories ($RUN_DIR/run, $RUN_DIR/var-lib-cni), so
# the subnet file, containerd's pod namespaces and shim sockets, libcni's cache and the leases
# never touch the machine's (/var/lib/cni need not exist on the machine:
# Tests/integration/lib/private-mounts.sh adds it in the namespace only). A runtime that cannot
# start here is skipped, saying why, except under CI=true, where it fails.
source "$(dirname "$0")/lib/lib.sh"

setup_run
# Under CI=true nothing the README promises may be skipped: what would be a SKIP fails.
skip() { if [ "${CI:-}" = true ]; then fail "$1 (a SKIP, but CI=true)"; else echo "SKIP $1"; fi; }
PY=/usr/bin/python3   # Debian's python3-grpcio lives in the system interpreter
ROOT=$RUN_DIR/root    # DESTDIR of `make install`
BINDIR=$ROOT/opt/cni/bin
CONFDIR=$ROOT/etc/cni/net.d
CONFLIST=$CONFDIR/10-bridge-ipam.conflist
CTRD=$RUN_DIR/containerd
SOCK=$CTRD/containerd.sock
NODE_RUN=$RUN_DIR/run               # the node's /run, inside containerd's mount namespace
LEASES=$RUN_DIR/var-lib-cni/networks/k8s-pod-network
NETWORK_NS_DIR=$NODE_RUN/netns      # containerd's pod namespaces (/var/run/netns in 1.6)
CGROUP_PARENT=${CGROUP_PARENT-/$RUN}                 # pods' cgroups, removed at the end
machine_state() {
    ls -la /etc/cni /opt/cni 2>&1
    # Only entries of this run: other tests on the machine may use these directories meanwhile.
    find /var/lib/cni /run/containerd /opt/containerd -maxdepth 4 2>/dev/null | grep -E "k8s-pod-network|k8s\.io|$RUN" || true
}
machine_before=$(machine_state)

cri() { CRI_STUBS=$RUN_DIR/cri "$PY" "$REPO/Tests/support/cri/cri-client.py" "$SOCK" "$@"; }
containerd_pid=
# Processes given this run's socket (containerd, its shims). The pattern is read from a file so
# that grep's own command line does not match.
run_processes() { [ -e "$RUN_DIR/sock.pattern" ] && grep -lsF -f "$RUN_DIR/sock.pattern" /proc/[0-9]*/cmdline | cut -d/ -f3; }
extra_cleanup() {
    local id pid
    if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
        for id in $(cri list 2>/dev/null | awk '{print $1}'); do cri stop "$id"; cri remove "$id"; done 2>/dev/null
        kill "$containerd_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # Shims outlive containerd: find ours by the socket they were given, and end them by ID.
    for pid in $(run_processes); do kill -9 "$pid" 2>/dev/null; done
    for _ in $(seq 20); do [ -z "$(run_processes)" ] && break; sleep 0.1; done
    find /sys/fs/cgroup -depth -type d -path "*$CGROUP_PARENT*" -exec rmdir {} + 2>/dev/null
    return 0
}

if ! command -v containerd >/dev/null || ! command -v runc >/dev/null; then
    skip "CRI: containerd or runc is not installed"; finish; exit
fi
if ! "$PY" -c 'import grpc, grpc_tools' 2>/dev/null; then
    skip "CRI: python3-grpcio or python3-grpc-tools is not installed"; finish; exit
fi
# The stubs are generated for each run (0.4 s) so only our own .proto is in the repository.
mkdir -p "$RUN_DIR/cri"
"$PY" -m grpc_tools.protoc -I "$REPO/Tests/support/cri" --python_out="$RUN_DIR/cri" --grpc_python_out="$RUN_DIR/cri" \
    "$REPO/Tests/support/cri/runtime-v1-subset.proto"

new_ns node
ip netns exec $RUN-node sysctl -qw net.ipv4.ip_forward=1
add_outside_host node client   # reaches the node's mapped port from beyond the node

echo "== containerd's CRI plugin, conf_dir and bin_dir of this run, no conflist yet"
mkdir -p "$CTRD" "$NODE_RUN" "$RUN_DIR/var-lib-cni"
printf '%s\n' "$SOCK" >"$RUN_DIR/sock.pattern"
cat >"$CTRD/config.toml" <<TOML
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/bridge-ipam-pause:1"
  disable_apparmor = true
  # Pause containers ask for oom_score_adj -998; without CAP_SYS_RESOURCE (as in some VMs and
  # containers) runc cannot lower it. This keeps it no lower than containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$BINDIR"
    conf_dir = "$CONFDIR"
TOML
# /var/lib/cni need not exist on the machine (Tests/integration/lib/private-mounts.sh never creates
# it there).
nsenter --net=/run/netns/$RUN-node unshare -m --propagation private sh "$REPO/Tests/integration/lib/private-mounts.sh" "$CTRD" \
    "$NODE_RUN:/run" "$RUN_DIR/var-lib-cni:/var/lib/cni" -- containerd --config "$CTRD/config.toml" >"$CTRD/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do cri version >/dev/null 2>&1 && break; sleep 0.1; done
if ! version=$(cri version 2>&1); then
    skip "CRI: containerd did not start: $(tail -2 "$CTRD/containerd.log" | tr '\n' ' ')"; finish; exit
fi
echo "runtime: $version"
"$PY" "$REPO/Tests/support/make-busybox-image.py" "$CTRD/pause.tar" localhost/bridge-ipam-pause:1 /bin/sleep 2147483647
ctr -a "$SOCK" -n k8s.io images import "$CTRD/pause.tar" >/dev/null

status=$(cri status)
check "Status: NetworkReady is false before a conflist exists ($status)" bash -c "[[ '$status' == 'NetworkReady false'* ]]"

echo "== make install DESTDIR=$ROOT"
make -C "$REPO" --no-print-directory install DESTDIR="$ROOT" >"$RUN_DIR/install.log" 2>&1
sed -n '/^bridge-ipam installed/,$p' "$RUN_DIR/install.log"
check "make install laid down the plugin and the shipped conflist" \
    bash -c "cmp -s '$REPO/conf/10-bridge-ipam.conflist' '$CONFLIST' && cmp -s '$BIN' '$BINDIR/bridge-ipam'"
for _ in $(seq 50); do [[ $(cri status) == 'NetworkReady true'* ]] && break; sleep 0.1; done
check "Status: NetworkReady is true once the conflist is installed" bash -c "[[ '$(cri status)' == 'NetworkReady true'* ]]"
# The operator's step 3 of the install report: portmap and loopback from Debian's package.
for p in portmap loopback; do ln -s "$REFERENCE_DIR/$p" "$BINDIR/$p"; done

# Nothing of a pod is left: no lease naming it, no host veth on cni0, no pod namespace, no sandbox.
pod_left() {
    local what=
    grep -qsl "$1" "$LEASES"/* && what="$what lease"
    [ -n "$(ls -A "$NETWORK_NS_DIR" 2>/dev/null)" ] && what="$what namespace($(ls "$NETWORK_NS_DIR"))"
    [ -n "$(ip -n $RUN-node -o link show master cni0 2>/dev/null)" ] && what="$what veth"
    cri list | grep -q "$1" && what="$what sandbox"
    [ -z "$what" ] || { echo "     left:$what"; return 1; }
}

echo "== a pod before the node's subnet file exists"
subnet_file=$(jq -r '.plugins[0].ipam.subnetFile' "$CONFLIST")
if out=$(cri run early default uid-0 --cgroup-parent "$CGROUP_PARENT" 2>&1); then
    fail "RunPodSandbox succeeded without a subnet file"
else
    echo "kubelet sees: ${out:0:300}"
    check "RunPodSandbox fails after the plugin waited for the subnet file (code 11), naming it" grep -q "subnetFile $subnet_file does not exist yet" <<<"$out"
    check "...and leaves no lease, veth, namespace or sandbox behind" pod_left early
fi

echo "== three pods on the node's subnet 10.244.1.0/24"
mkdir -p "$NODE_RUN$(dirname "${subnet_file#/run}")"
echo 10.244.1.0/24 >"$NODE_RUN${subnet_file#/run}"
declare -A id ip pid
run_pod() {   # run_pod NAME NAMESPACE UID [cri-client options]
    local name=$1
    if ! id[$name]=$(cri run "$@" --cgroup-parent "$CGROUP_PARENT" 2>"$RUN_DIR/run-$name.err"); then
        fail "RunPodSandbox $name: $(head -c 400 "$RUN_DIR/run-$name.err")"; return 1
    fi
    local status; status=$(cri inspect "${id[$name]}")
    ip[$name]=$(jq -r .ip <<<"$status")
    pid[$name]=$(jq -r .pid <<<"$status")
    check "RunPodSandbox $2/$name: READY, PodSandboxStatus address ${ip[$name]} in 10.244.1.0/24" \
        bash -c "[[ '$(jq -r .state <<<"$status")' == SANDBOX_READY && '${ip[$name]}' == 10.244.1.* ]]"
}
run_pod web default 6f1c2a4e-0001 --port 8080:80 &&
run_pod resolver default 6f1c2a4e-0002 --dns 10.96.0.10,default.svc.cluster.local,ndots:5 &&
run_pod batch kube-system 6f1c2a4e-0003
if [ ${#ip[@]} = 3 ]; then
    check "each pod's lease names its sandbox ID (K8S_POD_INFRA_CONTAINER_ID)" \
        bash -c "grep -q '${id[web]}' '$LEASES/${ip[web]}' && grep -q '${id[resolver]}' '$LEASES/${ip[resolver]}' && grep -q '${id[batch]}' '$LEASES/${ip[batch]}'"
    check "three distinct addresses" test "$(printf '%s\n' "${ip[@]}" | sort -u | wc -l)" = 3
    check "pod to pod: web reaches batch" bash -c "nsenter -t ${pid[web]} -n ping -n -q -c 1 -w 3 ${ip[batch]} >/dev/null"
    check "pod to pod: batch reaches resolver" bash -c "nsenter -t ${pid[batch]} -n ping -n -q -c 1 -w 3 ${ip[resolver]} >/dev/null"
    node_reaches_pods() { ping_ok node "${ip[web]}" && ping_ok node "${ip[resolver]}" && ping_ok node "${ip[batch]}"; }
    check "node to pod: the node reaches each pod" node_reaches_pods
    resolv=$CTRD/root/io.containerd.grpc.v1.cri/sandboxes/${id[resolver]}/resolv.conf
    check "the DNS config reaches the pod's resolv.conf (written by containerd)" \
        bash -c "grep -q 'nameserver 10.96.0.10' '$resolv' && grep -q 'search default.svc.cluster.local' '$resolv'"
    nsenter -t "${pid[web]}" -n python3 -u "$REPO/Tests/support/peer-echo.py" serve 80 >"$RUN_DIR/web-serve.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do grep -q ready "$RUN_DIR/web-serve.log" 2>/dev/null && break; sleep 0.1; done
    seen=$(ip netns exec $RUN-client python3 "$REPO/Tests/support/peer-echo.py" probe 8080 203.0.113.1 | awk '{print $2}')
    check "hostPort: the node's port 8080 reaches web's port 80 through portmap (server saw $seen)" test "$seen" = 203.0.113.2
    kill $server 2>/dev/null; wait $server 2>/dev/null

    echo "== StopPodSandbox twice, then RemovePodSandbox"
    for name in web resolver batch; do
        check "StopPodSandbox $name" cri stop "${id[$name]}"
        check "...its lease is released" test ! -e "$LEASES/${ip[$name]}"
        check "StopPodSandbox $name again" cri stop "${id[$name]}"
        check "RemovePodSandbox $name" cri remove "${id[$name]}"
    done
    check "no lease, host veth, pod namespace or sandbox is left" pod_left "${id[web]}"
    check "portmap's rules are gone" bash -c "! ip netns exec $RUN-node iptables-save -t nat | grep -q -- '--to-destination 10.244.1.'"
fi

echo "== a pod whose ADD fails: every address of the subnet already taken"
# Leases held by another container, as a crashed runtime could leave them.
mkdir -p "$LEASES"
for i in $(seq 2 254); do [ -e "$LEASES/10.244.1.$i" ] || printf 'other-container\r\neth0' >"$LEASES/10.244.1.$i"; done
if out=$(cri run full default 6f1c2a4e-0004 --cgroup-parent "$CGROUP_PARENT" 2>&1); then
    fail "RunPodSandbox succeeded with no free address"
else
    echo "kubelet sees: ${out:0:300}"
    full_id=$(grep -o '[0-9a-f]\{64\}' <<<"$out" | head -1)
    check "RunPodSandbox fails with the plugin's error (code 100, no free address)" grep -q "no free address" <<<"$out"
    check "...and after containerd's cleanup no veth, namespace, sandbox or lease of it (${full_id:0:12}) is left" \
        pod_left "${full_id:-missing-id}"
fi
rm -f "$LEASES"/10.244.1.*

echo "== what containerd sends to plugins that declare more capabilities"
# dns, portMappings and pod annotations reach a plugin only if the conflist declares them; ours
# declares none (portMappings is portmap's). Declared anyway, they are accepted and ignored.
new_ns extra
conf=$(jq -c --arg f "$NODE_RUN${subnet_file#/run}" --arg d "$LEASES" '.plugins[0] + {cniVersion, name}
    | .ipam.subnetFile = $f | .ipam.dataDir = $d
    | .runtimeConfig = {dns: {Servers: ["10.96.0.10"], Searches: ["default.svc.cluster.local"], Options: ["ndots:5"]},
                        portMappings: [{hostPort: 8080, containerPort: 80, protocol: "tcp"}],
                        "io.kubernetes.cri.pod-annotations": {"kubernetes.io/config.source": "api"}}' "$CONFLIST")
args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=extra;K8S_POD_INFRA_CONTAINER_ID=extra-1;K8S_POD_UID=6f1c2a4e-0005"
out=$(cni node ADD extra-1 /run/netns/$RUN-extra eth0 "$conf" CNI_ARGS="$args")
check "ADD with runtimeConfig dns, portMappings and pod annotations succeeds ($(jq -r '.ips[0].address' <<<"$out"))" \
    test "$(jq -r '.ips[0].address' <<<"$out")" != null
check "...and its result carries no DNS: the runtime writes resolv.conf itself" test "$(jq -c '.dns // {}' <<<"$out")" = "{}"
check "DEL of it succeeds" cni node DEL extra-1 /run/netns/$RUN-extra eth0 "$conf" CNI_ARGS="$args"

extra_cleanup
containerd_pid=
check "no process of this run's containerd is left" test -z "$(run_processes)"
check "no cgroup of this run's pods is left" test -z "$(find /sys/fs/cgroup -type d -path "*$CGROUP_PARENT*" 2>/dev/null)"
check "the machine's /etc/cni, /opt/cni, /var/lib/cni and /run/containerd hold nothing of this run" \
    test "$(machine_state)" = "$machine_before"
finish
