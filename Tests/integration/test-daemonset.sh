#!/usr/bin/env bash
# The DaemonSet path, whole, as a cluster runs it: `make image`'s archive imported into each
# node's containerd, deploy/bridge-ipam.yaml's pod started through CRI as kubelet would
# (Tests/support/cri/kubelet.py reads the manifest; nothing of it is copied here), its agent talking
# to the stand-in API server over TLS with the pod's service account, then pods through CRI on every
# node: addresses from the node's podCIDR, every pair and node to pod without NAT, pod to any
# node without NAT, a host outside the cluster seeing the node's address, hostPort, the
# readiness probe (and the harness's httpGet probe), the masquerade rule following a node that
# joins and leaves. Then a node's reboot (its /run emptied, the agent started late), the
# DaemonSet's deletion (pods keep working) and the README's uninstall steps (nothing left).
# The nodes' FORWARD policy is DROP, as Docker sets it: pods are forwarded through the agent's
# accepts only.
#
# Three nodes, each a network namespace with a containerd of its own, in a private mount
# namespace (Tests/integration/lib/private-mounts.sh) whose /run, /var/lib/cni, /opt/cni/bin,
# /etc/cni/net.d and /var/lib/kubelet are the node's directories under $RUN_DIR/nodeN/root: the
# machine's are never touched, nor created.
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"

PY=/usr/bin/python3   # Debian's python3-grpcio and python3-yaml live in the system interpreter
ARCHIVE=${IMAGE_ARCHIVE:-$REPO/.build/image/bridge-ipam.tar}
MANIFEST=$REPO/deploy/bridge-ipam.yaml
NODES=(0 1 2)
OUTSIDE_IP=192.168.1.200   # a host beyond the nodes, on their network, with no route to any pod
API_PORT=6443
CGROUP_PARENT=/$RUN
declare -A CTRD_PID AGENT_SANDBOX AGENT_CONTAINER POD_ID POD_PID POD_NODE   # POD_IP: cluster.sh

sock() { echo "$RUN_DIR/node$1/containerd/containerd.sock"; }
root() { echo "$RUN_DIR/node$1/root"; }
# in_node N COMMAND...: in node N's network and mount namespaces (those of its containerd).
in_node() { local n=$1; shift; nsenter -t "${CTRD_PID[$n]}" -m -n "$@"; }
cri() { local n=$1; shift; CRI_STUBS=$RUN_DIR/cri "$PY" "$REPO/Tests/support/cri/cri-client.py" "$(sock $n)" "$@"; }
kubelet() { local n=$1; shift; in_node $n env CRI_STUBS=$RUN_DIR/cri "$PY" "$REPO/Tests/support/cri/kubelet.py" "$(sock $n)" "$@"; }
run_processes() { [ -e "$RUN_DIR/sock.pattern" ] && grep -lsF -f "$RUN_DIR/sock.pattern" /proc/[0-9]*/cmdline | cut -d/ -f3; }
machine_state() {
    ls -la /etc/cni /opt/cni /var/lib/cni /var/lib/kubelet 2>&1
    find /run/containerd /opt/containerd -maxdepth 4 2>/dev/null | grep -E "k8s\.io|$RUN" || true
}
machine_before=$(machine_state)

containerd_stop() {
    local n=$1 id
    [ -n "${CTRD_PID[$n]:-}" ] && kill -0 "${CTRD_PID[$n]}" 2>/dev/null || return 0
    for id in $(cri $n list 2>/dev/null | awk '{print $1}'); do cri $n stop "$id"; cri $n remove "$id"; done 2>/dev/null
    kill "${CTRD_PID[$n]}" 2>/dev/null
    for _ in $(seq 50); do kill -0 "${CTRD_PID[$n]}" 2>/dev/null || break; sleep 0.1; done
    CTRD_PID[$n]=
}
extra_cleanup() {
    local n pid
    for n in "${NODES[@]}"; do containerd_stop $n; done
    # Shims outlive containerd: found by the sockets they were given, ended by ID.
    for pid in $(run_processes); do kill -9 "$pid" 2>/dev/null; done
    for _ in $(seq 20); do [ -z "$(run_processes)" ] && break; sleep 0.1; done
    find /sys/fs/cgroup -depth -type d -path "*$CGROUP_PARENT*" -exec rmdir {} + 2>/dev/null
    return 0
}

# containerd_up N: node N's containerd, CRI on, CNI from the node's /opt/cni/bin and /etc/cni/net.d.
containerd_up() {
    local n=$1 ctrd=$RUN_DIR/node$n/containerd r
    r=$(root $n)
    mkdir -p "$ctrd" "$r/run" "$r/var/lib/cni" "$r/opt/cni/bin" "$r/etc/cni/net.d" "$r/var/lib/kubelet"
    cat >"$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
[grpc]
  address = "$(sock $n)"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/bridge-ipam-pause:1"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
TOML
    nsenter --net=/run/netns/$RUN-node$n unshare -m --propagation private sh "$REPO/Tests/integration/lib/private-mounts.sh" "$ctrd" \
        "$r/run:/run" "$r/var/lib/cni:/var/lib/cni" "$r/opt/cni/bin:/opt/cni/bin" "$r/etc/cni/net.d:/etc/cni/net.d" \
        "$r/var/lib/kubelet:/var/lib/kubelet" -- containerd --config "$ctrd/config.toml" >>"$ctrd/containerd.log" 2>&1 &
    CTRD_PID[$n]=$!
    for _ in $(seq 150); do cri $n version >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "containerd of node$n did not start: $(tail -3 "$ctrd/containerd.log")"
    return 1
}

# agent_up N: the DaemonSet's pod on node N, as kubelet starts it; AGENT_ERROR says what failed.
agent_up() {
    local n=$1 out
    AGENT_ERROR=
    if ! out=$(kubelet $n up "$MANIFEST" bridge-ipam --node node$n --node-ip "$(node_ip $n)" --pod-dir /var/lib/kubelet/pods/bridge-ipam \
        --api-host $API_ADDR --api-port $API_PORT --token "$RUN_DIR/token" --ca "$PKI/ca.crt" --cgroup-parent "$CGROUP_PARENT/node$n" 2>&1); then
        AGENT_ERROR=$out
        return 1
    fi
    AGENT_SANDBOX[$n]=$(jq -r .sandbox <<<"$out")
    AGENT_CONTAINER[$n]=$(jq -r .container <<<"$out")
}
agent_ready() {   # agent_ready N [SECONDS [--probe NAME]]
    local n=$1 within=${2:-60}
    shift; shift
    kubelet $n ready "$MANIFEST" bridge-ipam --container "${AGENT_CONTAINER[$n]}" --node-ip "$(node_ip $n)" --within "$within" "$@"
}
agent_down() { kubelet $1 down "$MANIFEST" bridge-ipam --sandbox "${AGENT_SANDBOX[$1]}" --container "${AGENT_CONTAINER[$1]}"; }
agent_log() { cat "$(root $1)"/var/lib/kubelet/pods/bridge-ipam/logs/agent/0.log 2>/dev/null; }

# pod_up NAME N [cri-client options]: a pod on node N through CRI.
pod_up() {
    local name=$1 n=$2 status
    shift 2
    if ! POD_ID[$name]=$(cri $n run "$name" default "uid-$name" --cgroup-parent "$CGROUP_PARENT/node$n" "$@" 2>"$RUN_DIR/run-$name.err"); then
        fail "RunPodSandbox $name on node$n: $(head -c 400 "$RUN_DIR/run-$name.err")"
        return 1
    fi
    status=$(cri $n inspect "${POD_ID[$name]}")
    POD_IP[$name]=$(jq -r .ip <<<"$status")
    POD_PID[$name]=$(jq -r .pid <<<"$status")
    POD_NODE[$name]=$n
    check "RunPodSandbox $name on node$n: READY with ${POD_IP[$name]}, from node$n's podCIDR 10.244.$n.0/24" \
        bash -c "[[ '$(jq -r .state <<<"$status")' == SANDBOX_READY && '${POD_IP[$name]}' == 10.244.$n.* ]]"
}
network_ready() { [[ "$(cri $1 status)" == "NetworkReady $2"* ]]; }
pod_down() { cri ${POD_NODE[$1]} stop "${POD_ID[$1]}" && cri ${POD_NODE[$1]} remove "${POD_ID[$1]}"; }
in_pod() { local name=$1; shift; nsenter -t "${POD_PID[$name]}" -n "$@"; }
# seen_from_pod NAME ADDRESS [PORT]: the source address a server at ADDRESS saw for NAME's connection.
seen_from_pod() { in_pod "$1" "$PY" "$REPO/Tests/support/peer-echo.py" probe "${3:-7777}" "$2" | awk '{print $2}'; }
seen_from_node() { ip netns exec $RUN-node$1 "$PY" "$REPO/Tests/support/peer-echo.py" probe 7777 "$2" | awk '{print $2}'; }
serve() {   # serve LOG COMMAND-PREFIX... : peer-echo on port 7777 (or $PORT) there, waited for
    local log=$1; shift
    "$@" "$PY" -u "$REPO/Tests/support/peer-echo.py" serve "${PORT:-7777}" >"$log" 2>&1 &
    for _ in $(seq 50); do grep -q ready "$log" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

setup_run
for need in containerd runc ctr nft; do
    command -v $need >/dev/null || { fail "$need is not installed (make integration-test installs it)"; finish; exit; }
done
"$PY" -c 'import grpc, grpc_tools, yaml' 2>/dev/null || { fail "python3-grpcio, python3-grpc-tools or python3-yaml is missing"; finish; exit; }
[ -s "$ARCHIVE" ] || { fail "no image archive at $ARCHIVE: run \`make image\` first"; finish; exit; }
mkdir -p "$RUN_DIR/cri"
"$PY" -m grpc_tools.protoc -I "$REPO/Tests/support/cri" --python_out="$RUN_DIR/cri" --grpc_python_out="$RUN_DIR/cri" "$REPO/Tests/support/cri/runtime-v1-subset.proto"
"$PY" "$REPO/Tests/support/make-busybox-image.py" "$RUN_DIR/pause.tar" localhost/bridge-ipam-pause:1 /bin/sleep 2147483647
for n in "${NODES[@]}"; do printf '%s\n' "$(sock $n)"; done >"$RUN_DIR/sock.pattern"
# The plugin inside the image (the archive's layers), to compare with what the agent installs.
image_plugin_sha=$("$PY" -c 'import hashlib, json, sys, tarfile
archive = tarfile.open(sys.argv[1])
for layer in json.load(archive.extractfile("manifest.json"))[0]["Layers"]:
    with tarfile.open(fileobj=archive.extractfile(layer)) as t:
        for m in t.getmembers():
            if m.name.lstrip("./") == "usr/local/bin/bridge-ipam":
                print(hashlib.sha256(t.extractfile(m).read()).hexdigest())' "$ARCHIVE")
image=$("$PY" -c 'import sys, yaml
print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"])' "$MANIFEST")

echo "== the cluster: API server (TLS) at $API_ADDR:$API_PORT, three nodes, a host outside"
make_pki
new_ns underlay
ip -n $RUN-underlay link add ul0 type bridge
ip -n $RUN-underlay link set ul0 up
apiserver_up || { fail "the stand-in API server did not start"; finish; exit; }
echo "$API_TOKEN" >"$RUN_DIR/token"
for n in "${NODES[@]}"; do api_node $n; done
new_ns outside
ip -n $RUN-underlay link add out0 type veth peer name eth0 netns $RUN-outside
ip -n $RUN-underlay link set out0 master ul0 up
ip -n $RUN-outside addr add $OUTSIDE_IP/24 dev eth0
ip -n $RUN-outside link set eth0 up
PORT=7777 serve "$RUN_DIR/serve-outside.log" ip netns exec $RUN-outside

for n in "${NODES[@]}"; do
    node_ns $n
    ip netns exec $RUN-node$n sysctl -qw net.ipv4.ip_forward=1
    # A FORWARD policy of DROP, as Docker sets it: pods are forwarded only through the agent's accepts.
    ip netns exec $RUN-node$n iptables-nft -P FORWARD DROP
    # What the README asks of a node before the install: portmap and loopback in /opt/cni/bin.
    mkdir -p "$(root $n)/opt/cni/bin"
    for p in portmap loopback; do ln -s "$REFERENCE_DIR/$p" "$(root $n)/opt/cni/bin/$p"; done
    containerd_up $n || { fail "containerd of node$n did not start"; finish; exit; }
    ctr -a "$(sock $n)" -n k8s.io images import "$RUN_DIR/pause.tar" >/dev/null
    check "node$n: ctr -n k8s.io images import $(basename "$ARCHIVE") makes $image available" \
        bash -c "ctr -a '$(sock $n)' -n k8s.io images import '$ARCHIVE' >/dev/null && ctr -a '$(sock $n)' -n k8s.io images ls -q | grep -qx '$image'"
done
check "node0: NetworkReady is false before the DaemonSet runs ($(cri 0 status))" bash -c "[[ '$(cri 0 status)' == 'NetworkReady false'* ]]"

echo "== the DaemonSet's pod on every node, as kubelet starts it from $(basename "$MANIFEST")"
for n in "${NODES[@]}"; do
    agent_up $n
    check "node$n: RunPodSandbox (host network) + CreateContainer + StartContainer of $image${AGENT_ERROR:+: $AGENT_ERROR}" test -z "$AGENT_ERROR"
    [ -z "$AGENT_ERROR" ] || { finish; exit; }   # nothing after this can work
done
for n in "${NODES[@]}"; do
    seen=$(agent_ready $n 60)
    check "node$n: the readiness probe succeeds ($seen)" test $? = 0
    # Other probes the manifest may declare run as kubelet would run them too.
    for probe in startupProbe livenessProbe; do
        seen=$(agent_ready $n 60 --probe $probe)
        case $? in
            3) ;;
            0) pass "node$n: the $probe succeeds ($seen)" ;;
            *) fail "node$n: the $probe fails ($seen)" ;;
        esac
    done
done
limit=$(CRI_STUBS=$RUN_DIR/cri "$PY" -c 'import sys, yaml
sys.path.insert(0, sys.argv[2]); import kubelet
d = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet")
print(int(kubelet.quantity(d["spec"]["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {}).get("memory", 0))))' \
    "$MANIFEST" "$REPO/Tests/support/cri" 2>/dev/null)
if [ "${limit:-0}" -gt 0 ]; then
    # cgroup v2 memory.max, or v1 memory.limit_in_bytes
    memory_max=$(cat "$(find /sys/fs/cgroup -path "*$CGROUP_PARENT/node0*" -path "*${AGENT_CONTAINER[0]}*" \
        \( -name memory.max -o -name memory.limit_in_bytes \) 2>/dev/null | head -1)" 2>/dev/null)
    check "node0: the agent's container runs under the manifest's memory limit ($memory_max bytes, limit $limit)" \
        test "$memory_max" = "$limit"
fi
for n in "${NODES[@]}"; do
    r=$(root $n)
    check "node$n: the agent installed the image's plugin into /opt/cni/bin" \
        test "$(sha256sum <"$r/opt/cni/bin/bridge-ipam" | cut -d' ' -f1)" = "$image_plugin_sha"
    check "node$n: ...and the ConfigMap's conflist, which is conf/10-bridge-ipam.conflist, into /etc/cni/net.d" \
        cmp -s "$REPO/conf/10-bridge-ipam.conflist" "$r/etc/cni/net.d/10-bridge-ipam.conflist"
    check "node$n: /run/bridge-ipam/podcidr holds its podCIDR ($(head -1 "$r/run/bridge-ipam/podcidr" 2>/dev/null))" \
        test "$(head -1 "$r/run/bridge-ipam/podcidr" 2>/dev/null)" = "10.244.$n.0/24"
    routes_ok() { local m; for m in "${NODES[@]}"; do [ $m = $1 ] || route_is $1 10.244.$m.0/24 "$(node_ip $m)" || return 1; done; }
    wait_until 10 routes_ok $n
    check "node$n: routes to the other nodes' podCIDRs via their InternalIPs" routes_ok $n
    masq=$(ip netns exec $RUN-node$n nft list table ip bridge_ipam_agent 2>&1 | grep -E 'masquerade|elements' | sed 's/^[[:space:]]*//' | paste -sd' ')
    check "node$n: pod traffic is accepted in FORWARD (policy DROP): $(ip netns exec $RUN-node$n iptables-nft -S FORWARD | grep -c 'bridge-ipam: pod traffic') rules" \
        test "$(ip netns exec $RUN-node$n iptables-nft -S FORWARD | grep -c -- '-j ACCEPT')" = 2
    # The three node addresses are adjacent: nft shows them as one interval.
    check "node$n: the agent's masquerade rule: $masq" \
        grep -qF 'elements = { 10.244.0.0/16, 192.168.1.2-192.168.1.4 } ip saddr 10.244.0.0/16 ip daddr != @excluded masquerade' <<<"$masq"
    wait_until 10 network_ready $n true
    check "node$n: containerd reports NetworkReady true" network_ready $n true
done
# The rule and its set's elements (nft wraps a long element list onto lines of their own).
masq_rule() {
    ip netns exec $RUN-node$1 nft list table ip bridge_ipam_agent 2>&1 | grep -E 'masquerade|elements|^[[:space:]]+[0-9]'
}
api POST /nodes '{"name":"node7","ip":"192.168.1.77","podCIDR":"10.244.7.0/24"}' >/dev/null
wait_until 10 bash -c "ip netns exec $RUN-node0 nft list table ip bridge_ipam_agent | grep -q '192.168.1.77 }'"
check "a node joins (192.168.1.77): node0's masquerade rule excludes it within ${WAITED_MS} ms" grep -q '192.168.1.77 }' <<<"$(masq_rule 0)"
api POST /delete '["node7"]' >/dev/null
wait_until 10 bash -c "! ip netns exec $RUN-node0 nft list table ip bridge_ipam_agent | grep -q '192.168.1.77'"
check "it leaves: the rule no longer excludes it (${WAITED_MS} ms), and still one rule" \
    test "$(masq_rule 0 | grep -c masquerade)-$(masq_rule 0 | grep -c 192.168.1.77)" = 1-0

echo "== the harness's httpGet readiness probe (the manifest's probe may become one)"
# The same manifest with an httpGet probe, against a web server on node0's address.
mkdir -p "$RUN_DIR/http"
touch "$RUN_DIR/http/readyz"
"$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "DaemonSet":
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 18080}, "periodSeconds": 1}
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "$MANIFEST" "$RUN_DIR/httpget.yaml"
ip netns exec $RUN-node0 "$PY" -m http.server 18080 --bind "$(node_ip 0)" --directory "$RUN_DIR/http" >"$RUN_DIR/http.log" 2>&1 &
http_server=$!
http_probe() { kubelet 0 ready "$RUN_DIR/httpget.yaml" bridge-ipam --container "${AGENT_CONTAINER[0]}" --node-ip "$(node_ip 0)" --within "$1"; }
seen=$(http_probe 10)
check "httpGet /readyz on the pod's (node's) address succeeds: $seen" test $? = 0
rm "$RUN_DIR/http/readyz"
seen=$(http_probe 2)
check "...and fails when the server answers 404: $seen" test $? = 1
kill $http_server; wait $http_server 2>/dev/null

echo "agent log of node0:"
agent_log 0 | sed 's/^/    /' | head -12

echo "== pods through CRI on every node"
pod_up web0 0 --port 8080:80
pod_up db0 0
pod_up web1 1
pod_up db1 1
pod_up web2 2
pod_up db2 2
PODS=(web0 db0 web1 db1 web2 db2)
for p in "${PODS[@]}"; do serve "$RUN_DIR/serve-$p.log" in_pod $p || fail "server in $p did not start"; done
for n in "${NODES[@]}"; do serve "$RUN_DIR/serve-node$n.log" ip netns exec $RUN-node$n || fail "server on node$n did not start"; done

# matrix: every pair of pods, node to pod, pod to every node; a cell is right only when the
# receiver saw the sender's own address (no NAT on the way).
matrix() {
    local misses=() a b n seen
    for a in "${PODS[@]}"; do
        for b in "${PODS[@]}"; do
            [ $a = $b ] && continue
            seen=$(seen_from_pod $a "${POD_IP[$b]}")
            [ "$seen" = "${POD_IP[$a]}" ] || misses+=("$a->$b:$seen")
        done
    done
    echo "pod to pod misses: ${misses[*]:-none}" >"$RUN_DIR/matrix"
    [ ${#misses[@]} = 0 ]
}
check "all 30 pairs of pods reach each other, each seeing the other's own address" matrix || cat "$RUN_DIR/matrix"
node_to_pod() {
    local misses=() n p seen
    for n in "${NODES[@]}"; do
        for p in "${PODS[@]}"; do
            seen=$(seen_from_node $n "${POD_IP[$p]}")
            # A node reaches its own pods from its bridge's address (the route's source).
            [ "$seen" = "$(node_ip $n)" ] || [ "$seen" = "10.244.$n.1" -a "${POD_NODE[$p]}" = $n ] || misses+=("node$n->$p:$seen")
        done
    done
    echo "node to pod misses: ${misses[*]:-none}"
    [ ${#misses[@]} = 0 ]
}
check "every node reaches every pod, seen with the node's own address (its InternalIP, or cni0's to its own pods)" node_to_pod
pod_to_node() {
    local misses=() n p seen
    for p in "${PODS[@]}"; do
        for n in "${NODES[@]}"; do
            seen=$(seen_from_pod $p "$(node_ip $n)")
            [ "$seen" = "${POD_IP[$p]}" ] || misses+=("$p->node$n:$seen")
        done
    done
    echo "pod to node misses: ${misses[*]:-none}"
    [ ${#misses[@]} = 0 ]
}
check "every pod reaches every node's InternalIP un-NATed (seen with the pod's address)" pod_to_node
outside() {
    local misses=() p seen
    for p in "${PODS[@]}"; do
        seen=$(seen_from_pod $p $OUTSIDE_IP)
        [ "$seen" = "$(node_ip ${POD_NODE[$p]})" ] || misses+=("$p:$seen")
    done
    echo "outside misses: ${misses[*]:-none}"
    [ ${#misses[@]} = 0 ]
}
check "every pod reaches the host outside the cluster, which sees the pod's node's address" outside
PORT=80 serve "$RUN_DIR/serve-web0-80.log" in_pod web0
seen=$(ip netns exec $RUN-outside "$PY" "$REPO/Tests/support/peer-echo.py" probe 8080 "$(node_ip 0)" | awk '{print $2}')
check "hostPort: the outside host reaches web0's port 80 at node0's port 8080 (web0 saw $seen)" test "$seen" = $OUTSIDE_IP

echo "== node2 reboots: its /run is empty, /etc/cni/net.d keeps the conflist, the agent comes back late"
for p in web2 db2; do pod_down $p; done
containerd_stop 2
for pid in $(run_processes); do grep -qsF "$(sock 2)" /proc/$pid/cmdline && kill -9 $pid; done
# The node keeps its NIC's MAC address across the reboot, so the others' neighbour entries stay right.
node2_mac=$(ip -n $RUN-node2 -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
ip netns pids $RUN-node2 | xargs -r kill 2>/dev/null
sleep 0.2
ip netns del $RUN-node2
ip -n $RUN-underlay link del n2 2>/dev/null
rm -rf "$(root 2)/run"
node_ns 2
ip -n $RUN-node2 link set eth0 address "$node2_mac"
ip netns exec $RUN-node2 sysctl -qw net.ipv4.ip_forward=1
ip netns exec $RUN-node2 iptables-nft -P FORWARD DROP
containerd_up 2 || { fail "containerd of node2 did not start again"; finish; exit; }
check "node2 after the reboot: conflist kept, no subnet file; containerd says NetworkReady true" bash -c \
    "[ -e '$(root 2)/etc/cni/net.d/10-bridge-ipam.conflist' ] && [ ! -e '$(root 2)/run/bridge-ipam/podcidr' ] && [[ '$(cri 2 status)' == 'NetworkReady true'* ]]"
start=$(date +%s)
if out=$(cri 2 run orphan default uid-orphan --cgroup-parent "$CGROUP_PARENT/node2" 2>&1); then
    fail "RunPodSandbox succeeded with no subnet file and no agent"
else
    echo "kubelet sees: ${out:0:400}"
    says_why() { grep -q 'try again later' <<<"$out" && grep -q '/run/bridge-ipam/podcidr' <<<"$out" && grep -q 'bridge-ipam-agent' <<<"$out"; }
    check "with no agent, RunPodSandbox fails after a bounded wait ($(($(date +%s) - start)) s), naming the file and its writer" says_why
    nothing_of_orphan() {
        ! cri 2 list | grep -q orphan &&
            [ -z "$(ls -A "$(root 2)/var/lib/cni/networks/k8s-pod-network" 2>/dev/null | grep -v -e lock -e last_reserved)" ] &&
            [ -z "$(ip -n $RUN-node2 -o link show master cni0 2>/dev/null)" ]
    }
    check "...and leaves no sandbox, lease or host veth" nothing_of_orphan
fi
# A pod the runtime starts while the agent is still down: its ADD waits for the subnet file.
cri 2 run early default uid-early --cgroup-parent "$CGROUP_PARENT/node2" >"$RUN_DIR/early.id" 2>"$RUN_DIR/early.err" &
early=$!
sleep 2   # the plugin waits 10 s: the agent, started now, has about 8 s to write the file
check "the pod's RunPodSandbox is still waiting after 2 s (not failed)" kill -0 $early
start=$(date +%s)
agent_up 2
check "the DaemonSet's pod starts on node2 again${AGENT_ERROR:+: $AGENT_ERROR}" test -z "$AGENT_ERROR"
wait $early
status=$?
waited=$(($(date +%s) - start))
POD_ID[early]=$(cat "$RUN_DIR/early.id")
if [ $status = 0 ]; then
    st=$(cri 2 inspect "${POD_ID[early]}")
    POD_IP[early]=$(jq -r .ip <<<"$st"); POD_PID[early]=$(jq -r .pid <<<"$st"); POD_NODE[early]=2
    check "...and the waiting pod gets ${POD_IP[early]} from 10.244.2.0/24 ${waited} s after the agent started" \
        bash -c "[[ '${POD_IP[early]}' == 10.244.2.* ]]"
    serve "$RUN_DIR/serve-early.log" in_pod early
    # The agent writes the subnet file, then its routes in the same sync: allow it a moment.
    web0_reaches_early() { [ "$(seen_from_pod web0 "${POD_IP[early]}")" = "${POD_IP[web0]}" ]; }
    wait_until 10 web0_reaches_early
    check "web0 on node0 reaches it, seen with web0's own address (after ${WAITED_MS} ms)" web0_reaches_early
    check "it reaches the outside host, seen as node2" test "$(seen_from_pod early $OUTSIDE_IP)" = "$(node_ip 2)"
else
    fail "the waiting pod's RunPodSandbox failed: $(head -c 400 "$RUN_DIR/early.err")"
fi
seen=$(agent_ready 2 60)
check "node2: the readiness probe succeeds again ($seen)" test $? = 0

echo "== the DaemonSet is deleted: its pods stop, the pod network keeps working"
PODS=(web0 db0 web1 db1)
[ -n "${POD_IP[early]:-}" ] && PODS+=(early)
for n in "${NODES[@]}"; do check "node$n: StopContainer (grace period of the manifest), RemoveContainer, Stop/RemovePodSandbox" agent_down $n; done
no_agent() { local n; for n in "${NODES[@]}"; do cri $n list | grep -q bridge-ipam && return 1; done; return 0; }
check "no agent is left running (the CRI lists no bridge-ipam pod)" no_agent
check "pods still reach each other without NAT" matrix || cat "$RUN_DIR/matrix"
check "pods still reach the outside host as their node" outside

echo "== uninstall, as the README says: pods first, then each node"
for p in "${PODS[@]}"; do pod_down $p || fail "removing pod $p"; done
uninstall=$(awk '/<!-- test: uninstall -->/{f=1; next} f && /^```sh/{b=1; next} b && /^```/{exit} b' "$REPO/README.md")
check "the README has an uninstall block for the nodes" test -n "$uninstall"
for n in "${NODES[@]}"; do
    in_node $n bash -euc "$uninstall" >"$RUN_DIR/uninstall-$n.log" 2>&1 || fail "node$n: the uninstall steps failed: $(cat "$RUN_DIR/uninstall-$n.log")"
    r=$(root $n)
    left=$( { ls "$r/opt/cni/bin" | grep -v -x -e portmap -e loopback; ls -A "$r/etc/cni/net.d"; ls -d "$r/run/bridge-ipam" "$r/var/lib/cni/networks/k8s-pod-network" 2>/dev/null
        ip netns exec $RUN-node$n ip -o route show proto 212; ip netns exec $RUN-node$n nft list tables | grep bridge_ipam
        ip netns exec $RUN-node$n iptables-nft-save -t nat | grep -e CNI-HOSTPORT -e CNI-DN-
        ip netns exec $RUN-node$n iptables-nft-save -t filter | grep 'bridge-ipam: pod traffic'; ip -n $RUN-node$n -o link show cni0 2>/dev/null
        ip -n $RUN-node$n -o link show bipam.1 2>/dev/null; } | tr '\n' ' ')
    check "node$n: nothing of bridge-ipam is left (files, routes, nftables, FORWARD accepts, bridge, VXLAN, portmap's chains)${left:+: $left}" test -z "$left"
done
wait_until 10 network_ready 0 false
check "node0: containerd reports NetworkReady false again" network_ready 0 false

extra_cleanup
check "no process of this run's containerds is left" test -z "$(run_processes)"
check "no cgroup of this run's pods is left" test -z "$(find /sys/fs/cgroup -type d -path "*$CGROUP_PARENT*" 2>/dev/null)"
check "the machine's /etc/cni, /opt/cni, /var/lib/cni, /var/lib/kubelet and /run/containerd are as they were" \
    test "$(machine_state)" = "$machine_before"
finish
