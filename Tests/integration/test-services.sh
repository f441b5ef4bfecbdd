#!/usr/bin/env bash
# Services through kube-proxy on a bridge node, with kube-proxy's real rule shapes in both of its
# modes (Tests/support/kube-proxy-rules.py: iptables mode written with iptables-nft-restore
# --noflush, nftables mode as `table ip kube-proxy` and `table ip6 kube-proxy`), on a 2-node
# dual-stack cluster in namespaces whose nodes keep net.bridge.bridge-nf-call-iptables (and
# ip6tables) at 0, as on a node where nothing turned them on: only the bridge's own switches, set by
# the plugin, send pod traffic through netfilter. Then the same without them (the same-node cases
# fail), and a node whose FORWARD policy is DROP (iptables-nft), before and after the agent's
# accepts.
#
#   node0: pod0-1 (client), pod0-2 (web :7777, DNS :53), outside host "ext" behind ext0
#   node1: pod1-1 (web :7777)
#
# Nothing touches the root namespace; lib.sh's cleanup removes it all.
source "$(dirname "$0")/lib/lib.sh"
RUN=${RUN:-p19$$}
RUN_DIR=/tmp/$RUN
PLUGIN_DIR=$RUN_DIR/bin
DATA_DIR=$RUN_DIR/leases
DUALSTACK=1
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"
CLUSTER6=fd00:10:244::/56

declare -A TWICE
extra_cleanup() {
    local n
    for n in "${!AGENT_PID[@]}"; do agent_stop $n; done
    for n in "${TWICE[@]}"; do kill $n 2>/dev/null; done
}
setup_run
for tool in iptables-nft iptables-nft-restore ip6tables-nft-restore nft jq openssl; do
    command -v $tool >/dev/null || { echo "FAIL $tool is not installed (make deps)"; echo "0 passed, 1 failed"; exit 1; }
done
if [ ! -d /proc/sys/net/bridge ]; then
    # The kernel needs bridge netfilter for any of this; a fresh CI machine may not have loaded it
    # (`make integration-test` loads it first).
    echo "loading br_netfilter"
    modprobe br_netfilter 2>/dev/null
    [ -d /proc/sys/net/bridge ] || { echo "FAIL br_netfilter is not available in this kernel"; echo "0 passed, 1 failed"; exit 1; }
fi

# The cluster's conflist, as deploy/ ships it: hairpinMode on (a pod reaching itself through
# its own Service comes back through the port it left by).
eval "original_$(declare -f node_conf)"
node_conf() { original_node_conf "$@" | sed 's/"isGateway":true,/"isGateway":true,"hairpinMode":true,/'; }
cluster_up 2 1 || { echo "FAIL the cluster did not come up"; echo "0 passed, 1 failed"; exit 1; }
new_ns pod0-2
result=$(cni node0 ADD pod0-2 /run/netns/$RUN-pod0-2 eth0 "$(node_conf 0)") || { echo "ADD pod0-2: $result"; exit 1; }
POD_IP[0-2]=$(jq -r '[.ips[].address | select(contains("."))][0]' <<<"$result" | cut -d/ -f1)
POD_IP6[0-2]=$(jq -r '[.ips[].address | select(contains(":"))][0]' <<<"$result" | cut -d/ -f1)
CLIENT=pod0-1
for n in 0 1; do
    ip netns exec $RUN-node$n sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0
done
add_outside_host node0 ext
ip -n $RUN-node0 addr add 2001:db8:ff::1/64 dev ext0 nodad
ip -n $RUN-ext addr add 2001:db8:ff::2/64 dev eth0 nodad
# The outside host routes the pod networks via node0, so pod traffic to it needs no NAT.
ip -n $RUN-ext route add 10.244.0.0/16 via 203.0.113.1
ip -n $RUN-ext route add $CLUSTER6 via 2001:db8:ff::1
NODEPORT_V4=203.0.113.1
NODEPORT_V6=2001:db8:ff::1

for p in pod0-1 pod0-2 pod1-1; do
    ip netns exec $RUN-$p python3 -u "$REPO/Tests/support/peer-echo.py" serve 7777 >"$RUN_DIR/web-$p.log" 2>&1 &
done
ip netns exec $RUN-pod0-2 python3 -u "$REPO/Tests/support/dns-probe.py" serve 53 >"$RUN_DIR/dns.log" 2>&1 &
for log in web-pod0-1 web-pod0-2 web-pod1-1 dns; do
    for _ in $(seq 100); do grep -q ready "$RUN_DIR/$log.log" 2>/dev/null && break; sleep 0.05; done
done

# services FAMILY: the Services of the matrix, as kube-proxy's inputs.
services() {
    local f=$1 v=4 prefix=10.96.0. same=${POD_IP[0-2]} other=${POD_IP[1-1]} self=${POD_IP[0-1]}
    [ "$f" = 6 ] && { prefix=fd00:10:96::; same=${POD_IP6[0-2]}; other=${POD_IP6[1-1]}; self=${POD_IP6[0-1]}; }
    cat <<EOF
[{"namespace":"default","name":"web","portName":"http","protocol":"tcp","clusterIP":"${prefix}10","port":80,"nodePort":30080,"endpoints":[{"ip":"$same","port":7777}]},
 {"namespace":"default","name":"web-remote","portName":"http","protocol":"tcp","clusterIP":"${prefix}11","port":80,"nodePort":30081,"endpoints":[{"ip":"$other","port":7777}]},
 {"namespace":"default","name":"client-self","portName":"http","protocol":"tcp","clusterIP":"${prefix}12","port":80,"endpoints":[{"ip":"$self","port":7777}]},
 {"namespace":"kube-system","name":"kube-dns","portName":"dns","protocol":"udp","clusterIP":"${prefix}53","port":53,"endpoints":[{"ip":"$same","port":53}]}]
EOF
}

# kube_proxy MODE: kube-proxy's rules on both nodes, both families, as kube-proxy writes them.
kube_proxy() {
    local mode=$1 n f cidr
    for n in 0 1; do
        for f in 4 6; do
            cidr=$CLUSTER_CIDR
            [ $f = 6 ] && cidr=$CLUSTER6
            services $f >"$RUN_DIR/services$f.json"
            python3 "$REPO/Tests/support/kube-proxy-rules.py" $mode $f $cidr "$RUN_DIR/services$f.json" >"$RUN_DIR/$mode$f.rules"
            if [ $mode = iptables ]; then
                local ipt=iptables-nft
                [ $f = 6 ] && ipt=ip6tables-nft
                ip netns exec $RUN-node$n $ipt-restore -w --noflush --counters <"$RUN_DIR/$mode$f.rules" || return 1
                kube_proxy_jumps $ipt node$n || return 1
            else
                ip netns exec $RUN-node$n nft -f "$RUN_DIR/$mode$f.rules" || return 1
            fi
        done
    done
}

# kube_proxy_jumps IPTABLES NODE: the jumps from the built-in chains, as kube-proxy's
# iptablesJumpChains (EnsureRule: -C, else -I at the top).
kube_proxy_jumps() {
    local ipt=$1 node=$2 spec
    while IFS='|' read -r table chain rule; do
        # shellcheck disable=SC2086
        eval "set -- $rule"
        ip netns exec $RUN-$node $ipt -w -t $table -C $chain "$@" 2>/dev/null || ip netns exec $RUN-$node $ipt -w -t $table -I $chain "$@" || return 1
    done <<'EOF'
filter|INPUT|-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
filter|INPUT|-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
filter|INPUT|-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
filter|FORWARD|-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
filter|FORWARD|-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
filter|FORWARD|-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
filter|FORWARD|-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
filter|OUTPUT|-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
filter|OUTPUT|-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
nat|OUTPUT|-m comment --comment "kubernetes service portals" -j KUBE-SERVICES
nat|PREROUTING|-m comment --comment "kubernetes service portals" -j KUBE-SERVICES
nat|POSTROUTING|-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
EOF
}

# kube_proxy_cleanup: what kube-proxy's --cleanup leaves (its tables and chains gone), on both
# nodes. The iptables-nft tables go whole: nothing else in this test lives in them yet.
kube_proxy_cleanup() {
    local n t
    for n in 0 1; do
        for t in "ip kube-proxy" "ip6 kube-proxy" "ip nat" "ip6 nat" "ip filter" "ip6 filter"; do
            ip netns exec $RUN-node$n nft delete table $t 2>/dev/null
        done
        ip netns exec $RUN-node$n conntrack -F >/dev/null 2>&1
    done
    return 0
}

# seen FROM ADDRESS PORT: the address the web server saw the connection come from ("-": none).
seen() { ip netns exec $RUN-$1 python3 "$REPO/Tests/support/peer-echo.py" probe $3 $2 | awk '{print $2}'; }

# cell NAME GOT WANT: prints "ok" (or "FAIL(got)") for the matrix and counts it.
declare -A MATRIX
cell() {
    local key=$1 got=$2 want=$3
    if [ -n "$got" ] && [ "$got" != "-" ] && [ "$got" = "$want" ]; then
        MATRIX[$key]=ok
        pass "$key: got $got"
    else
        MATRIX[$key]="FAIL(${got:--})"
        fail "$key: got ${got:--}, want $want"
    fi
}

# service_cases MODE FAMILY: the Service cases of the matrix from pod0-1 (and ext).
service_cases() {
    local mode=$1 f=$2 prefix=10.96.0. self=${POD_IP[0-1]} gw=10.244.0.1 node0=${NODE_IP[0]} nodeport=$NODEPORT_V4 qtype=A answer=10.96.7.7
    [ $f = 6 ] && { prefix=fd00:10:96::; self=${POD_IP6[0-1]}; gw=fd00:10:244:0::1; node0=${NODE_IP6[0]}; nodeport=$NODEPORT_V6; qtype=AAAA; answer=fd00:10:96::7:7; }
    gw=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_address(sys.argv[1]))" $gw)
    # Same node: the reply crosses the bridge and must be un-DNATed on its way back.
    cell "$mode IPv$f ClusterIP, endpoint on the same node" "$(seen $CLIENT ${prefix}10 80)" "$self"
    cell "$mode IPv$f ClusterIP, endpoint on another node" "$(seen $CLIENT ${prefix}11 80)" "$self"
    # Hairpin: kube-proxy masquerades a pod reaching itself (KUBE-SEP's -s rule), so the server
    # sees the node's address on the bridge.
    cell "$mode IPv$f hairpin, a pod through its own Service" "$(seen $CLIENT ${prefix}12 80)" "$gw"
    cell "$mode IPv$f UDP DNS through a ClusterIP, server on the same node" \
        "$(ip netns exec $RUN-$CLIENT python3 "$REPO/Tests/support/dns-probe.py" query ${prefix}53 53 web.default.svc.cluster.local $qtype)" "$answer"
    # NodePort from outside: KUBE-EXT masquerades, so the pod sees node0's address toward it.
    cell "$mode IPv$f NodePort from outside, endpoint on the same node" "$(seen ext $nodeport 30080)" "$gw"
    cell "$mode IPv$f NodePort from outside, endpoint on another node" "$(seen ext $nodeport 30081)" "$node0"
}

# bridge_switches NODE: "nf_call_iptables N nf_call_ip6tables N" of the node's cni0.
bridge_switches() { ip -n $RUN-$1 -d link show cni0 | grep -o 'nf_call_ip6\?tables [01]' | tr '\n' ' ' | sed 's/ $//'; }

echo "== The plugin's bridge, the node's sysctls"
check "node0's cni0 passes its traffic to netfilter ($(bridge_switches node0))" test "$(bridge_switches node0)" = "nf_call_iptables 1 nf_call_ip6tables 1"
check "node1's cni0 too ($(bridge_switches node1))" test "$(bridge_switches node1)" = "nf_call_iptables 1 nf_call_ip6tables 1"
node_sysctls() { local n; for n in 0 1; do ip netns exec $RUN-node$n cat /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables; done | tr -d '\n'; }
check "the nodes' bridge-nf-call-iptables/ip6tables sysctls are 0 ($(node_sysctls))" test "$(node_sysctls)" = 0000

CONTROL=()
for mode in iptables nftables; do
    echo
    echo "== kube-proxy $mode mode"
    check "kube-proxy's $mode rules load on both nodes, both families" kube_proxy $mode
    if [ $mode = iptables ]; then
        check "iptables-nft lists them: KUBE-SERVICES -> KUBE-SVC- -> KUBE-SEP-, KUBE-NODEPORTS, KUBE-POSTROUTING" bash -c \
            "ip netns exec $RUN-node0 iptables-nft -t nat -S | grep -q -- '-A KUBE-SERVICES .*-j KUBE-SVC-' &&
             ip netns exec $RUN-node0 iptables-nft -t nat -S | grep -q -- '-A KUBE-SVC-.*-j KUBE-SEP-' &&
             ip netns exec $RUN-node0 iptables-nft -t nat -S | grep -q -- '-A KUBE-NODEPORTS .*--dport 30080 -j KUBE-EXT-' &&
             ip netns exec $RUN-node0 iptables-nft -t nat -S POSTROUTING | grep -q -- '-j KUBE-POSTROUTING'"
    else
        check "nft lists table ip kube-proxy and table ip6 kube-proxy with their service-ips maps" bash -c \
            "ip netns exec $RUN-node0 nft list map ip kube-proxy service-ips | grep -q '10.96.0.10 . tcp . 80 : goto service-' &&
             ip netns exec $RUN-node0 nft list map ip6 kube-proxy service-ips | grep -q 'fd00:10:96::10 . tcp . 80 : goto service-'"
    fi
    for f in 4 6; do service_cases $mode $f; done

    # Without the bridge's switches (and with the sysctls at 0) the same-node ClusterIP fails:
    # the case tests something. An ADD puts them back.
    ip -n $RUN-node0 link set cni0 type bridge nf_call_iptables 0 nf_call_ip6tables 0
    for f in 4 6; do
        prefix=10.96.0. self=${POD_IP[0-1]}
        [ $f = 6 ] && { prefix=fd00:10:96::; self=${POD_IP6[0-1]}; }
        got=$(seen $CLIENT ${prefix}10 80)
        CONTROL+=("$mode IPv$f same-node ClusterIP with nf_call_iptables 0: ${got:--}")
        check "$mode IPv$f: without the bridge's switches the same-node ClusterIP gets no answer (got ${got:--})" test "$got" = "-"
    done
    new_ns probe-$mode
    cni node0 ADD probe-$mode /run/netns/$RUN-probe-$mode eth0 "$(node_conf 0)" >"$RUN_DIR/probe-$mode.json"
    check "$mode: the next ADD turns the switches back on ($(bridge_switches node0))" test "$(bridge_switches node0)" = "nf_call_iptables 1 nf_call_ip6tables 1"
    check "$mode: and the same-node ClusterIP answers again" test "$(seen $CLIENT 10.96.0.10 80)" = "${POD_IP[0-1]}"
    kube_proxy_cleanup
done

echo
echo "== CHECK and STATUS"
probe_conf=$(jq --argjson prev "$(cat "$RUN_DIR/probe-nftables.json")" '. + {prevResult: $prev}' <<<"$(node_conf 0)")
check "CHECK passes while the switches are on" cni node0 CHECK probe-nftables /run/netns/$RUN-probe-nftables eth0 "$probe_conf"
ip -n $RUN-node0 link set cni0 type bridge nf_call_ip6tables 0
out=$(cni node0 CHECK probe-nftables /run/netns/$RUN-probe-nftables eth0 "$probe_conf")
check "CHECK fails (105) naming the switch that is off: $(jq -r .msg <<<"$out")" bash -c \
    "[ \"\$(jq .code <<<'$out')\" = 105 ] && jq -r .msg <<<'$out' | grep -q 'nf_call_ip6tables 0'"
ip -n $RUN-node0 link set cni0 type bridge nf_call_ip6tables 1
check "STATUS passes on a kernel with bridge netfilter" cni node0 STATUS "" "" "" "$(node_conf 0)"
# A kernel without br_netfilter has no /proc/sys/net/bridge: played by an empty /proc/sys/net
# in a private mount namespace.
out=$(printf '%s' "$(node_conf 0)" | ip netns exec $RUN-node0 unshare -m --propagation private sh -c \
    'mount -t tmpfs none /proc/sys/net && exec env -i CNI_COMMAND=STATUS CNI_PATH=/nonexistent "$0"' "$PLUGIN_DIR/bridge-ipam")
check "STATUS without br_netfilter is 50 naming the module and the fix: $(jq -r .msg <<<"$out")" bash -c \
    "[ \"\$(jq .code <<<'$out')\" = 50 ] && jq -r .details <<<'$out' | grep -q 'modprobe br_netfilter'"

echo
echo "== FORWARD policy DROP (iptables-nft), kube-proxy iptables mode"
kube_proxy iptables >/dev/null
for n in 0 1; do
    ip netns exec $RUN-node$n iptables-nft -P FORWARD DROP
    ip netns exec $RUN-node$n ip6tables-nft -P FORWARD DROP
done
# reach FROM ADDRESS: the TCP server at ADDRESS:7777 answers (to a pod's own address).
reach() { local got; got=$(seen $1 $2 7777); [ -n "$got" ] && [ "$got" != "-" ]; }
declare -A DROP_BEFORE DROP_AFTER
drop_cases() {
    local -n into=$1
    local f a
    for f in 4 6; do
        a=(${POD_IP[0-2]} ${POD_IP[1-1]} 203.0.113.2)
        [ $f = 6 ] && a=(${POD_IP6[0-2]} ${POD_IP6[1-1]} 2001:db8:ff::2)
        into["IPv$f pod to pod, same node"]=$(reach $CLIENT ${a[0]} && echo ok || echo MISS)
        into["IPv$f pod to pod, across nodes"]=$(reach $CLIENT ${a[1]} && echo ok || echo MISS)
        into["IPv$f pod to outside"]=$(reach $CLIENT ${a[2]} && echo ok || echo MISS)
    done
}
ip netns exec $RUN-ext python3 -u "$REPO/Tests/support/peer-echo.py" serve 7777 >"$RUN_DIR/web-ext.log" 2>&1 &
for _ in $(seq 100); do grep -q ready "$RUN_DIR/web-ext.log" 2>/dev/null && break; sleep 0.05; done
drop_cases DROP_BEFORE
check "without the accepts, FORWARD DROP drops pod traffic, even on the same node (bridged traffic meets FORWARD)" \
    test "${DROP_BEFORE["IPv4 pod to pod, same node"]} ${DROP_BEFORE["IPv4 pod to pod, across nodes"]}" = "MISS MISS"

make_pki
apiserver_up || fail "the stand-in API server started"
write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"
for n in 0 1; do
    api POST /nodes "{\"name\":\"node$n\",\"ips\":[\"${NODE_IP[$n]}\",\"${NODE_IP6[$n]}\"],\"podCIDRs\":[\"10.244.$n.0/24\",\"$(pod_cidr6 $n)\"]}" >/dev/null
    agent_start $n --cluster-cidr $CLUSTER_CIDR --cluster-cidr $CLUSTER6
done
ours() { ip netns exec $RUN-node$1 ${2:-iptables-nft} -S FORWARD | grep -c 'bridge-ipam: pod traffic'; }
wait_until 20 bash -c "[ \$(ip netns exec $RUN-node0 iptables-nft -S FORWARD | grep -c 'bridge-ipam: pod traffic') = 2 ] && [ \$(ip netns exec $RUN-node1 ip6tables-nft -S FORWARD | grep -c 'bridge-ipam: pod traffic') = 2 ]"
check "the agents appended their accepts within ${WAITED_MS} ms" test "$(ours 0)$(ours 0 ip6tables-nft)$(ours 1)$(ours 1 ip6tables-nft)" = 2222
expected_v4="-A FORWARD -s 10.244.0.0/16 -m comment --comment \"bridge-ipam: pod traffic from 10.244.0.0/16\" -j ACCEPT
-A FORWARD -d 10.244.0.0/16 -m comment --comment \"bridge-ipam: pod traffic to 10.244.0.0/16\" -j ACCEPT"
check "iptables-nft -S FORWARD lists them cleanly, after kube-proxy's jumps" test \
    "$(ip netns exec $RUN-node0 iptables-nft -S FORWARD 2>&1 | grep -v -- '-m comment --comment \"kubernetes' )" = "-P FORWARD DROP
$expected_v4"
check "ip6tables-nft -S FORWARD too" test "$(ip netns exec $RUN-node0 ip6tables-nft -S FORWARD 2>&1 | grep 'bridge-ipam')" = \
    "-A FORWARD -s fd00:10:244::/56 -m comment --comment \"bridge-ipam: pod traffic from fd00:10:244::/56\" -j ACCEPT
-A FORWARD -d fd00:10:244::/56 -m comment --comment \"bridge-ipam: pod traffic to fd00:10:244::/56\" -j ACCEPT"
check "nft says nothing is untranslatable in the table" bash -c "! ip netns exec $RUN-node0 nft list table ip filter 2>&1 | grep -qi 'unsupported\\|xt '"
saved() { ip netns exec $RUN-node0 iptables-nft-save -t filter | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'; }
saved >"$RUN_DIR/filter.before"
ip netns exec $RUN-node0 iptables-nft-save -t filter | ip netns exec $RUN-node0 iptables-nft-restore -w
saved >"$RUN_DIR/filter.after"
check "iptables-nft-save | iptables-nft-restore round-trips the filter table unchanged" cmp -s "$RUN_DIR/filter.before" "$RUN_DIR/filter.after"
check "kube-proxy's iptables-restore --noflush runs again with our rules in place" kube_proxy iptables
check "and our rules are still there, once each" test "$(ours 0)" = 2
drop_cases DROP_AFTER
for key in "${!DROP_AFTER[@]}"; do
    check "FORWARD DROP with the accepts: $key" test "${DROP_AFTER[$key]}" = ok
done
cell "FORWARD DROP IPv4 ClusterIP, endpoint on the same node" "$(seen $CLIENT 10.96.0.10 80)" "${POD_IP[0-1]}"
cell "FORWARD DROP IPv6 ClusterIP, endpoint on another node" "$(seen $CLIENT fd00:10:96::11 80)" "${POD_IP6[0-1]}"
cell "FORWARD DROP IPv4 NodePort from outside, endpoint on another node" "$(seen ext $NODEPORT_V4 30081)" "${NODE_IP[0]}"

ip netns exec $RUN-node0 iptables-nft -F FORWARD
wait_until 15 bash -c "[ \$(ip netns exec $RUN-node0 iptables-nft -S FORWARD | grep -c 'bridge-ipam: pod traffic') = 2 ]"
check "a flushed FORWARD chain gets the accepts back at the next resync (${WAITED_MS} ms)" test "$(ours 0)" = 2
kube_proxy iptables  # its next sync puts back the jumps the flush took
agent_stop 0
check "--remove-forward-accepts takes ours out, both families, and nothing else" bash -c \
    "ip netns exec $RUN-node0 '$AGENT_BIN' --remove-forward-accepts 2>/dev/null &&
     [ \$(ip netns exec $RUN-node0 iptables-nft -S FORWARD | grep -c 'bridge-ipam') = 0 ] &&
     [ \$(ip netns exec $RUN-node0 ip6tables-nft -S FORWARD | grep -c 'bridge-ipam') = 0 ] &&
     [ \$(ip netns exec $RUN-node0 iptables-nft -S FORWARD | grep -c 'kubernetes') -ge 3 ]"
check "and then pod traffic across nodes is dropped again" test "$(seen $CLIENT ${POD_IP[1-1]} 7777)" = -

echo
echo "== Two agents at once, then an iptables-legacy node"
# Two agents racing on one node may both append; the next sync of either keeps one of each.
for i in 1 2; do
    ip netns exec $RUN-node0 "$AGENT_BIN" --kubeconfig "$KUBECONFIG_FILE" --node node0 --subnet-file "$RUN_DIR/node0/podcidr" \
        --resync 1 --cluster-cidr $CLUSTER_CIDR --cluster-cidr $CLUSTER6 >>"$RUN_DIR/node0/agent-twice.log" 2>&1 &
    TWICE[$i]=$!
done
sleep 3
check "two agents at once end with each accept once ($(ours 0) IPv4, $(ours 0 ip6tables-nft) IPv6)" test "$(ours 0)$(ours 0 ip6tables-nft)" = 22
kill ${TWICE[1]} ${TWICE[2]} 2>/dev/null; wait ${TWICE[1]} ${TWICE[2]} 2>/dev/null
# iptables-legacy keeps FORWARD in x_tables, out of nftables' reach: the agent can add nothing.
ip netns exec $RUN-node0 nft delete table ip filter
ip netns exec $RUN-node0 nft delete table ip6 filter
ip netns exec $RUN-node0 iptables-legacy -P FORWARD DROP
agent_start 0 --cluster-cidr $CLUSTER_CIDR --cluster-cidr $CLUSTER6
wait_until 10 grep -q "iptables-legacy's filter table is in use" "$RUN_DIR/node0/agent.log"
check "on iptables-legacy the agent says it has no FORWARD chain to add to, and what to do" \
    grep -q "no iptables-nft FORWARD chain (nftables table ip filter).*iptables-legacy -A FORWARD -s CIDR -j ACCEPT" "$RUN_DIR/node0/agent.log"
LEGACY_BEFORE=$(reach $CLIENT ${POD_IP[1-1]} && echo ok || echo MISS)
check "and pod traffic across nodes stays dropped by iptables-legacy's FORWARD DROP" test "$LEGACY_BEFORE" = MISS
ip netns exec $RUN-node0 iptables-legacy -A FORWARD -s $CLUSTER_CIDR -j ACCEPT
ip netns exec $RUN-node0 iptables-legacy -A FORWARD -d $CLUSTER_CIDR -j ACCEPT
LEGACY_AFTER=$(reach $CLIENT ${POD_IP[1-1]} && echo ok || echo MISS)
check "until the accepts the README gives are added with iptables-legacy" test "$LEGACY_AFTER" = ok
agent_stop 0
ip netns exec $RUN-node0 iptables-legacy -F FORWARD
ip netns exec $RUN-node0 iptables-legacy -P FORWARD ACCEPT

echo
echo "== The agent without br_netfilter"
agent_stop 1
rm -f "$RUN_DIR/node1/ready"
ip netns exec $RUN-node1 unshare -m --propagation private sh -c 'mount -t tmpfs none /proc/sys/net && exec "$@"' sh \
    "$AGENT_BIN" --kubeconfig "$KUBECONFIG_FILE" --node node1 --subnet-file "$RUN_DIR/node1/podcidr" \
    --ready-file "$RUN_DIR/node1/ready" --resync "$AGENT_RESYNC" --backoff-max "$AGENT_BACKOFF" >"$RUN_DIR/node1/agent-nobr.log" 2>&1 &
AGENT_PID[1]=$!
wait_until 10 grep -q "not ready: the kernel has no bridge netfilter" "$RUN_DIR/node1/agent-nobr.log"
check "it says it is not ready, naming br_netfilter and the fix" grep -q "modprobe br_netfilter" "$RUN_DIR/node1/agent-nobr.log"
sleep $((AGENT_RESYNC + 1))
check "and stays not ready (no ready file) after a resync" test ! -e "$RUN_DIR/node1/ready"
agent_stop 1

check "the nodes' sysctls are still 0 at the end ($(node_sysctls))" test "$(node_sysctls)" = 0000

echo
echo "Service matrix (pod0-1 on node0 is the client; ext is outside the cluster, behind node0;"
echo "the nodes' bridge-nf-call-iptables/ip6tables sysctls are 0; ok = answered, and the server saw"
echo "the source kube-proxy's rules give it: the client pod, or the node's address when masqueraded)"
printf '%-52s %-14s %-14s %-14s %-14s\n' case "iptables IPv4" "iptables IPv6" "nftables IPv4" "nftables IPv6"
for c in "ClusterIP, endpoint on the same node" "ClusterIP, endpoint on another node" "hairpin, a pod through its own Service" \
    "UDP DNS through a ClusterIP, server on the same node" "NodePort from outside, endpoint on the same node" \
    "NodePort from outside, endpoint on another node"; do
    printf '%-52s %-14s %-14s %-14s %-14s\n' "$c" "${MATRIX["iptables IPv4 $c"]:-?}" "${MATRIX["iptables IPv6 $c"]:-?}" \
        "${MATRIX["nftables IPv4 $c"]:-?}" "${MATRIX["nftables IPv6 $c"]:-?}"
done
echo
echo "Control (bridge switches off, sysctls 0):"
printf '  %s\n' "${CONTROL[@]}"
echo
echo "FORWARD policy DROP (iptables-nft), pod0-1 as the client: before / after the agent's accepts"
for key in "IPv4 pod to pod, same node" "IPv4 pod to pod, across nodes" "IPv4 pod to outside" \
    "IPv6 pod to pod, same node" "IPv6 pod to pod, across nodes" "IPv6 pod to outside"; do
    printf '  %-34s %-6s %s\n' "$key" "${DROP_BEFORE[$key]}" "${DROP_AFTER[$key]}"
done
printf '  %-34s %-6s %s\n' "iptables-legacy DROP, IPv4 across" "$LEGACY_BEFORE" "$LEGACY_AFTER (accepts added by hand)"
echo
finish
