#!/usr/bin/env bash
# bridge-ipam-agent against a stand-in API server (Tests/support/fake-apiserver.py, checked against
# the real kubectl first), with the agent running inside every node namespace of a simulated cluster:
# joins, address changes, removals, an outage, 410 Gone, a wrong token, in-cluster config,
# resync, foreign routes, SIGTERM, atomic installs, and 500 nodes.
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"
OUTAGE=${OUTAGE:-10}

agent_suite_start
api POST /nodes '[{"name":"node0","ip":"192.168.1.2","podCIDR":"10.244.0.0/24"},{"name":"node1","ip":"192.168.1.3","podCIDR":"10.244.1.0/24"},{"name":"node2","ip":"192.168.1.4","podCIDR":"10.244.2.0/24"}]' >/dev/null
lists() { api GET /state | jq .lists; }
log_of() { cat "$RUN_DIR/node$1/agent.log"; }

echo "== The stand-in API server, seen by the real kubectl"
if command -v kubectl >/dev/null; then
    kc() { ip netns exec $RUN-underlay env HOME="$RUN_DIR" kubectl --cache-dir "$RUN_DIR/kcache" --request-timeout 5s "$@"; }
    check "kubectl get nodes -o json lists the nodes with podCIDR and InternalIP" test \
        "$(kc --kubeconfig "$KUBECONFIG_FILE" get nodes -o json | jq -c '[.items[] | [.metadata.name, .spec.podCIDR, (.status.addresses[] | select(.type == "InternalIP") | .address)]]')" \
        = '[["node0","10.244.0.0/24","192.168.1.2"],["node1","10.244.1.0/24","192.168.1.3"],["node2","10.244.2.0/24","192.168.1.4"]]'
    check "kubectl with a wrong token is refused: 401 Unauthorized" bash -c \
        "ip netns exec $RUN-underlay env HOME='$RUN_DIR' kubectl --cache-dir '$RUN_DIR/kcache' --kubeconfig '$KUBECONFIG_FILE' --token wrong get nodes 2>&1 | grep -q Unauthorized"
    # A kubeconfig written by kubectl itself, with an embedded client certificate.
    kc config --kubeconfig "$RUN_DIR/kc-cert" set-cluster sim --server=https://$API_ADDR:6443 --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
    kc config --kubeconfig "$RUN_DIR/kc-cert" set-credentials node --client-certificate="$PKI/client.crt" --client-key="$PKI/client.key" --embed-certs >/dev/null
    kc config --kubeconfig "$RUN_DIR/kc-cert" set-context sim --cluster=sim --user=node >/dev/null
    kc config --kubeconfig "$RUN_DIR/kc-cert" use-context sim >/dev/null
    check "kubectl authenticates with a client certificate" test "$(kc --kubeconfig "$RUN_DIR/kc-cert" get node node1 -o jsonpath='{.spec.podCIDR}')" = 10.244.1.0/24
    kc --kubeconfig "$KUBECONFIG_FILE" get nodes --watch-only -o name >"$RUN_DIR/kwatch" 2>&1 &
    kwatch=$!
    sleep 1
    api POST /nodes '{"name":"node9","ip":"192.168.1.11","podCIDR":"10.244.9.0/24"}' >/dev/null
    wait_until 5 grep -q node/node9 "$RUN_DIR/kwatch"
    check "kubectl get --watch reads the watch stream (ADDED node9)" grep -q node/node9 "$RUN_DIR/kwatch"
    kill $kwatch 2>/dev/null; wait $kwatch 2>/dev/null
    api POST /delete '["node9"]' >/dev/null
    out=$(kc --kubeconfig "$KUBECONFIG_FILE" apply --dry-run=client --validate=false -f "$REPO/deploy/" 2>&1)
    check "kubectl apply --dry-run=client accepts deploy/ ($(echo $out | tr '\n' ' '))" \
        bash -c "grep -q 'daemonset.apps/bridge-ipam created (dry run)' <<<'$out' && grep -q 'clusterrole.rbac.authorization.k8s.io/bridge-ipam created' <<<'$out'"
    ds=$(kc --kubeconfig "$KUBECONFIG_FILE" create --dry-run=client --validate=false -o json -f "$REPO/deploy/bridge-ipam.yaml" | jq -c 'select(.kind == "DaemonSet") | .spec.template.spec')
    check "the DaemonSet: hostNetwork, tolerates every taint, NET_ADMIN only, readiness probe" test \
        "$(jq -c '[.hostNetwork, .tolerations, .containers[0].securityContext.capabilities, (.containers[0].readinessProbe.httpGet.path == "/readyz")]' <<<"$ds")" \
        = '[true,[{"operator":"Exists"}],{"add":["NET_ADMIN"],"drop":["ALL"]},true]'
    check "the DaemonSet mounts /opt/cni/bin, /etc/cni/net.d and /run/bridge-ipam from the host" test \
        "$(jq -c '[.volumes[] | select(.hostPath) | .hostPath.path] | sort' <<<"$ds")" = '["/etc/cni/net.d","/opt/cni/bin","/run/bridge-ipam"]'
    check "the ClusterRole allows get, list and watch on nodes, pods, namespaces, networkpolicies, nothing else" test \
        "$(kc --kubeconfig "$KUBECONFIG_FILE" create --dry-run=client --validate=false -o json -f "$REPO/deploy/bridge-ipam.yaml" | jq -c 'select(.kind == "ClusterRole") | .rules')" \
        = '[{"apiGroups":[""],"resources":["nodes","pods","namespaces"],"verbs":["get","list","watch"]},{"apiGroups":["networking.k8s.io"],"resources":["networkpolicies"],"verbs":["get","list","watch"]}]'
elif [ "${CI:-}" = true ]; then
    fail "kubectl is not installed (make integration-test installs it): a SKIP, but CI=true"
else
    echo "skip: kubectl is not installed (make integration-test installs it), so the server's fidelity and deploy/ are unchecked"
fi

echo "== Agents on three nodes"
for n in 0 1 2; do node_ns $n; done
agent_start 0
agent_start 1
if [ -f "$RUN_DIR/kc-cert" ]; then agent_start 2 --kubeconfig "$RUN_DIR/kc-cert"; else agent_start 2; fi
wait_until 5 bash -c "test -f $RUN_DIR/node0/ready && test -f $RUN_DIR/node1/ready && test -f $RUN_DIR/node2/ready"
check "every agent is ready (${WAITED_MS} ms)" bash -c "test -f $RUN_DIR/node0/ready && test -f $RUN_DIR/node1/ready && test -f $RUN_DIR/node2/ready"
check "every node routes the other two" bash -c "[ \$(ip -n $RUN-node0 route show proto 212 | wc -l) = 2 ] && [ \$(ip -n $RUN-node1 route show proto 212 | wc -l) = 2 ] && [ \$(ip -n $RUN-node2 route show proto 212 | wc -l) = 2 ]"
check "node1 routes node0's podCIDR via node0" route_is 1 10.244.0.0/24 192.168.1.2
check "each subnet file holds its node's podCIDR" bash -c "[ \"\$(grep -hv FLANNEL_MTU $RUN_DIR/node0/podcidr $RUN_DIR/node1/podcidr $RUN_DIR/node2/podcidr)\" = \"\$(printf '10.244.0.0/24\n10.244.1.0/24\n10.244.2.0/24')\" ]"
check "the agent with a client certificate works like the others" grep -q "route added 10.244.0.0/24 via 192.168.1.2 (node0)" "$RUN_DIR/node2/agent.log"
check "one log line per route added" test "$(grep -c 'route added' "$RUN_DIR/node0/agent.log")" = 2

echo "== A node joins"
node_ns 3
mkdir -p "$RUN_DIR/node3/bin" "$RUN_DIR/node3/net.d"
printf 'an older plugin\n' >"$RUN_DIR/node3/bin/bridge-ipam"
old_inode=$(stat -c %i "$RUN_DIR/node3/bin/bridge-ipam")
printf 'do not overwrite\n' >"$RUN_DIR/victim"
ln -s "$RUN_DIR/victim" "$RUN_DIR/node3/net.d/10-bridge-ipam.conflist"
printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","plugins":[{"type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"10.244.0.0/16","dataDir":"%s"}}]}\n' \
    "$RUN_DIR/node3/podcidr" "$RUN_DIR/node3/leases" >"$RUN_DIR/10-bridge-ipam.conflist"
agent_start 3 --install-cni "$RUN_DIR/node3/bin" "$RUN_DIR/node3/net.d" --cni-plugin "$BIN" --cni-conflist "$RUN_DIR/10-bridge-ipam.conflist"
wait_until 3 grep -q "node node3 is not in the API" "$RUN_DIR/node3/agent.log"
check "before its Node exists the agent waits and says why" grep -q "node node3 is not in the API" "$RUN_DIR/node3/agent.log"
check "...with the plugin installed (atomically: a new inode, no temporary file left)" bash -c \
    "cmp -s '$BIN' '$RUN_DIR/node3/bin/bridge-ipam' && [ \$(stat -c %i '$RUN_DIR/node3/bin/bridge-ipam') != $old_inode ] && [ \$(stat -c %a '$RUN_DIR/node3/bin/bridge-ipam') = 755 ] && ! ls -A '$RUN_DIR/node3/bin' | grep -q tmp"
check "...but not yet the conflist, and not ready" bash -c "[ -L '$RUN_DIR/node3/net.d/10-bridge-ipam.conflist' ] && [ ! -f '$RUN_DIR/node3/ready' ]"
api_node 3
if wait_until 1 others_route 3 10.244.3.0/24 192.168.1.5; then pass "every other node routes node3's podCIDR within 1 s (${WAITED_MS} ms)"; else fail "node3's route within 1 s"; fi
wait_until 2 test -f "$RUN_DIR/node3/ready"
check "node3's subnet file appears and it is ready" bash -c "[ \"\$(grep -v FLANNEL_MTU $RUN_DIR/node3/podcidr)\" = 10.244.3.0/24 ] && [ -f $RUN_DIR/node3/ready ]"
check "the conflist is installed as a file of its own; the symlink's target is untouched" bash -c \
    "cmp -s '$RUN_DIR/10-bridge-ipam.conflist' '$RUN_DIR/node3/net.d/10-bridge-ipam.conflist' && [ ! -L '$RUN_DIR/node3/net.d/10-bridge-ipam.conflist' ] && [ \"\$(cat $RUN_DIR/victim)\" = 'do not overwrite' ]"
new_ns pod3-1
pod_conf=$(jq -c '{cniVersion, name} + .plugins[0]' "$RUN_DIR/node3/net.d/10-bridge-ipam.conflist")
result=$(printf '%s' "$pod_conf" | ip netns exec $RUN-node3 env -i CNI_COMMAND=ADD CNI_CONTAINERID=pod3-1 CNI_NETNS=/run/netns/$RUN-pod3-1 CNI_IFNAME=eth0 CNI_PATH="$RUN_DIR/node3/bin" "$RUN_DIR/node3/bin/bridge-ipam")
pod_ip=$(jq -r '.ips[0].address' <<<"$result" | cut -d/ -f1)
check "its first pod gets an address from the subnet file through the installed plugin and conflist ($pod_ip)" bash -c "[[ '$pod_ip' == 10.244.3.* ]]"
check "node0 reaches that pod through the agent's route" ping_ok node0 "$pod_ip"

echo "== Changes"
api_node 1 192.168.1.13
if wait_until 1 others_route 1 10.244.1.0/24 192.168.1.13; then pass "node1's InternalIP changed: its route is replaced within 1 s (${WAITED_MS} ms)"; else fail "node1's route replaced"; fi
check "...and logged as replaced" grep -q "route replaced 10.244.1.0/24 via 192.168.1.13 (node1), was via 192.168.1.3" "$RUN_DIR/node0/agent.log"
api_node 1
wait_until 1 others_route 1 10.244.1.0/24 192.168.1.3
printf '%s' "$pod_conf" | ip netns exec $RUN-node3 env -i CNI_COMMAND=DEL CNI_CONTAINERID=pod3-1 CNI_NETNS=/run/netns/$RUN-pod3-1 CNI_IFNAME=eth0 CNI_PATH="$RUN_DIR/node3/bin" "$RUN_DIR/node3/bin/bridge-ipam" >/dev/null
agent_stop 3
api POST /delete '["node3"]' >/dev/null
if wait_until 1 others_route 3 10.244.3.0/24 -; then pass "node3 deleted: its route goes within 1 s (${WAITED_MS} ms)"; else fail "node3's route removed"; fi
check "...and is logged as removed" grep -q "route removed 10.244.3.0/24 via 192.168.1.5" "$RUN_DIR/node0/agent.log"

echo "== A dual-stack node"
for n in 0 1 2; do ip -n $RUN-node$n addr add fd00:1::$((n + 2))/64 dev eth0 nodad; done
node_ns 4
ip -n $RUN-node4 addr add fd00:1::6/64 dev eth0 nodad
printf '{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipam":{"type":"host-local","subnetFile":"%s","clusterCIDR":"10.244.0.0/16","dataDir":"%s"}}' \
    "$RUN_DIR/node4/podcidr" "$RUN_DIR/node4/leases" >"$RUN_DIR/node4/conf.json"
agent_start 4
api POST /nodes '{"name":"node4","ips":["192.168.1.6","fd00:1::6"],"podCIDRs":["10.244.4.0/24","fd00:10:244:4::/64"]}' >/dev/null
if wait_until 1 others_route 4 fd00:10:244:4::/64 fd00:1::6; then pass "every other node routes its IPv6 podCIDR via its IPv6 InternalIP within 1 s (${WAITED_MS} ms)"; else fail "IPv6 route: $(ip -n $RUN-node0 -6 route show proto 212) $(tail -n 3 $RUN_DIR/node0/agent.log)"; fi
check "...and its IPv4 podCIDR" others_route 4 10.244.4.0/24 192.168.1.6
wait_until 2 test -f "$RUN_DIR/node4/ready"
check "its subnet file holds both podCIDRs, primary first" test "$(grep -v FLANNEL_MTU "$RUN_DIR/node4/podcidr" 2>/dev/null)" = "$(printf '10.244.4.0/24\nfd00:10:244:4::/64')"
new_ns pod4-1
result=$(ip netns exec $RUN-node4 env -i CNI_COMMAND=ADD CNI_CONTAINERID=pod4-1 CNI_NETNS=/run/netns/$RUN-pod4-1 CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$PLUGIN_DIR/bridge-ipam" <"$RUN_DIR/node4/conf.json")
addrs=$(jq -r '[.ips[].address] | join(" ")' <<<"$result")
check "its pod gets an address of each family from the subnet file ($addrs)" bash -c "[[ '$addrs' == 10.244.4.*' 'fd00:10:244:4:* ]]"
pod6=$(jq -r '.ips[] | select(.address | contains(":")) | .address' <<<"$result" | cut -d/ -f1)
check "node0 reaches it over IPv6 through the agent's route" wait_until 3 bash -c "ip netns exec $RUN-node0 ping -6 -n -q -c 1 -w 1 $pod6 >/dev/null 2>&1"
ip netns exec $RUN-node4 env -i CNI_COMMAND=DEL CNI_CONTAINERID=pod4-1 CNI_NETNS=/run/netns/$RUN-pod4-1 CNI_IFNAME=eth0 CNI_PATH="$PLUGIN_DIR" "$PLUGIN_DIR/bridge-ipam" <"$RUN_DIR/node4/conf.json" >/dev/null
agent_stop 4
api POST /delete '["node4"]' >/dev/null
if wait_until 1 others_route 4 fd00:10:244:4::/64 -; then pass "deleted, both its routes go (${WAITED_MS} ms)"; else fail "IPv6 route removed"; fi

echo "== Routes of other owners"
ip -n $RUN-node0 route add 10.99.0.0/24 via 192.168.1.3
ip -n $RUN-node0 route add 10.244.7.0/24 via 192.168.1.4 proto static
foreign() { ip -n $RUN-node0 route show | grep -v 'proto 212' | sort; }
foreign_before=$(foreign)
api_node 7 192.168.1.9
wait_until 1 others_route 0 10.244.7.0/24 192.168.1.9
check "a node whose podCIDR has a foreign route on node0: the others route it" route_is 1 10.244.7.0/24 192.168.1.9
wait_until 2 grep -q "cannot apply every route" "$RUN_DIR/node0/agent.log"
check "...node0 says why it cannot, and keeps the foreign route ($(grep -m1 'cannot apply' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-))" \
    bash -c "[ \"\$(ip -n $RUN-node0 route show 10.244.7.0/24)\" = '10.244.7.0/24 via 192.168.1.4 dev eth0 proto static ' ]"
api POST /delete '["node7"]' >/dev/null
wait_until 1 others_route 0 10.244.7.0/24 -

echo "== Resync"
ip -n $RUN-node0 route del 10.244.1.0/24 proto 212
if wait_until $((AGENT_RESYNC + 1)) route_is 0 10.244.1.0/24 192.168.1.3; then pass "a route deleted by hand comes back at the next resync (${WAITED_MS} ms, resync ${AGENT_RESYNC} s)"; else fail "deleted route restored"; fi
rm "$RUN_DIR/node1/podcidr"
wait_until $((AGENT_RESYNC + 1)) test -f "$RUN_DIR/node1/podcidr"
check "so does a subnet file deleted by hand" test "$(grep -v FLANNEL_MTU "$RUN_DIR/node1/podcidr" 2>/dev/null)" = 10.244.1.0/24

echo "== The API server stops for $OUTAGE s"
routes_before=$(for n in 0 1 2; do ip -n $RUN-node$n route show; done)
lists_before=$(lists)
api POST /stop >/dev/null
sleep 1
api_node 5 192.168.1.7
sleep $((OUTAGE - 1))
check "routes stay while it is away" test "$(for n in 0 1 2; do ip -n $RUN-node$n route show; done)" = "$routes_before"
check "the agents say so and retry" bash -c "[ \$(grep -c 'watch of nodes failed' $RUN_DIR/node0/agent.log) -ge 3 ]"
api POST /start >/dev/null
if wait_until $((AGENT_BACKOFF + 3)) others_route 3 10.244.5.0/24 192.168.1.7; then pass "back: every agent catches up with the node added meanwhile (${WAITED_MS} ms)"; else fail "catch up after the outage"; fi
check "...from their watch's resourceVersion, without listing again" test "$(lists)" = "$lists_before"

echo "== The API server accepts connections but never answers"
routes_before=$(for n in 0 1 2; do ip -n $RUN-node$n route show; done)
api POST /hang >/dev/null
api_node 10 192.168.1.12
sleep 7
check "the agents give up on each attempt after the 5 s connect timeout and retry: $(grep -m1 'timed out\|timeout' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-)" \
    grep -q 'timed out\|timeout' "$RUN_DIR/node0/agent.log"
check "...with the routes untouched" test "$(for n in 0 1 2; do ip -n $RUN-node$n route show; done)" = "$routes_before"
api POST /start >/dev/null
if wait_until $((AGENT_BACKOFF + 7)) others_route 3 10.244.10.0/24 192.168.1.12; then pass "answering again: the agents catch up (${WAITED_MS} ms)"; else fail "catch up after the hang"; fi
api POST /delete '["node10"]' >/dev/null
wait_until 2 others_route 3 10.244.10.0/24 -
lists_before=$(lists)

echo "== 410 Gone"
api POST /expire >/dev/null
wait_until 3 bash -c "[ \$(ip netns exec $RUN-underlay curl -s http://127.0.0.1:8080/state | jq .lists) -ge $((lists_before + 3)) ]"
check "an ERROR 410 on an open watch: every agent lists again" bash -c "[ $(lists) -ge $((lists_before + 3)) ] && grep -q '410 Gone' $RUN_DIR/node1/agent.log"
api POST /delete '["node5"]' >/dev/null
if wait_until 1 others_route 3 10.244.5.0/24 -; then pass "...and follows changes after it (${WAITED_MS} ms)"; else fail "changes after 410"; fi
lists_before=$(lists)
api POST /stop >/dev/null
api_node 6 192.168.1.8
api POST /expire >/dev/null
sleep 1
api POST /start >/dev/null
if wait_until $((AGENT_BACKOFF + 3)) others_route 3 10.244.6.0/24 192.168.1.8; then pass "a watch refused with HTTP 410: the agents list again and catch up (${WAITED_MS} ms)"; else fail "HTTP 410 path"; fi
check "...by a new list each" bash -c "[ $(lists) -ge $((lists_before + 3)) ]"

echo "== A wrong token"
write_kubeconfig "$RUN_DIR/kc-wrong" wrong-token
routes_before=$(ip -n $RUN-node1 route show)
agent_stop 1
: >"$RUN_DIR/node1/agent.log"
agent_start 1 --kubeconfig "$RUN_DIR/kc-wrong"
api POST /delete '["node6"]' >/dev/null
sleep 3
check "a clear error in the log: $(grep -m1 401 "$RUN_DIR/node1/agent.log" | cut -d' ' -f3-)" grep -q "HTTP 401 Unauthorized.*does not accept our credentials" "$RUN_DIR/node1/agent.log"
check "...and it retries" bash -c "[ \$(grep -c 'cannot list nodes' $RUN_DIR/node1/agent.log) -ge 2 ]"
check "...with the routes untouched" test "$(ip -n $RUN-node1 route show)" = "$routes_before"
agent_stop 1
agent_start 1
if wait_until 3 route_is 1 10.244.6.0/24 -; then pass "with the right token it catches up (${WAITED_MS} ms)"; else fail "catch up with the right token"; fi

echo "== In-cluster config"
agent_stop 2
mkdir -p "$RUN_DIR/sa"
printf '%s\n' "$API_TOKEN" >"$RUN_DIR/sa/token"
cp "$PKI/ca.crt" "$RUN_DIR/sa/ca.crt"
: >"$RUN_DIR/node2/agent.log"
# The service account's files where client-go expects them, in a private mount namespace.
ip netns exec $RUN-node2 unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io && ln -s '$RUN_DIR/sa' /run/secrets/kubernetes.io/serviceaccount && \
    exec env KUBERNETES_SERVICE_HOST=$API_ADDR KUBERNETES_SERVICE_PORT=6443 NODE_NAME=node2 '$AGENT_BIN' --subnet-file '$RUN_DIR/node2/podcidr' --resync $AGENT_RESYNC --backoff-max $AGENT_BACKOFF" \
    >>"$RUN_DIR/node2/agent.log" 2>&1 &
AGENT_PID[2]=$!
api_node 8 192.168.1.10
if wait_until 3 route_is 2 10.244.8.0/24 192.168.1.10; then pass "in-cluster config (service account token and CA, KUBERNETES_SERVICE_HOST, NODE_NAME) works (${WAITED_MS} ms)"; else fail "in-cluster config: $(cat "$RUN_DIR/node2/agent.log")"; fi
printf 'rotated-%s\n' "$API_TOKEN" >"$RUN_DIR/sa/token.new"
mv "$RUN_DIR/sa/token.new" "$RUN_DIR/sa/token"
api POST /token "\"rotated-$API_TOKEN\"" >/dev/null
api POST /delete '["node8"]' >/dev/null
if wait_until 3 route_is 2 10.244.8.0/24 -; then pass "a rotated service-account token is read anew on the next request (${WAITED_MS} ms)"; else fail "token rotation: $(tail -n 3 "$RUN_DIR/node2/agent.log")"; fi
printf '%s\n' "$API_TOKEN" >"$RUN_DIR/sa/token.new"
mv "$RUN_DIR/sa/token.new" "$RUN_DIR/sa/token"
api POST /token "\"$API_TOKEN\"" >/dev/null
wait_until 4 others_route 3 10.244.8.0/24 -

echo "== SIGTERM"
routes_before=$(ip -n $RUN-node0 route show)
subnet_stamp=$(stat -c '%i %Y.%y' "$RUN_DIR/node0/podcidr")
start=$(date +%s%N)
kill -TERM ${AGENT_PID[0]}
wait ${AGENT_PID[0]}
status=$?
ms=$((($(date +%s%N) - start) / 1000000))
AGENT_PID[0]=
check "the agent exits within 1 s (${ms} ms, status $status)" test $ms -lt 1000 -a $status -eq 0
check "...and the routes stay" test "$(ip -n $RUN-node0 route show)" = "$routes_before"
changes='route added\|route removed\|route replaced\|subnet file .* written'
lines_before=$(grep -c "$changes" "$RUN_DIR/node0/agent.log")
agent_start 0
wait_until 3 bash -c "tail -n 3 $RUN_DIR/node0/agent.log | grep -q 'listed .* nodes'"
sleep 0.5
check "restarted, it changes nothing: no route or subnet file line logged, the file not rewritten" bash -c \
    "[ \$(grep -c '$changes' $RUN_DIR/node0/agent.log) = $lines_before ] && [ \"\$(stat -c '%i %Y.%y' $RUN_DIR/node0/podcidr)\" = '$subnet_stamp' ]"
check "routes of other owners were never touched" test "$(foreign)" = "$foreign_before"

echo "== 500 nodes"
new_ns big
ip -n $RUN-underlay link add nbig type veth peer name eth0 netns $RUN-big
ip -n $RUN-underlay link set nbig master ul0 up
ip -n $RUN-big addr add 192.168.1.240/24 dev eth0
ip -n $RUN-big link set eth0 up
# The other nodes' addresses are on-link through a veth pair of the namespace's own.
ip -n $RUN-big link add nodes0 type veth peer name nodes1
ip -n $RUN-big addr add 172.20.0.1/16 dev nodes0
ip -n $RUN-big link set nodes0 up
ip -n $RUN-big link set nodes1 up
apiserver_up big 192.168.1.250 8081 || fail "second API server"
write_kubeconfig "$RUN_DIR/kc-big" "$API_TOKEN" https://192.168.1.250:6443
big_nodes() {  # OFFSET: 500 nodes with addresses 172.20.x.y shifted by OFFSET
    python3 -c "
import json, sys
off = int(sys.argv[1])
nodes = [{'name': 'big', 'ip': '172.20.0.1', 'podCIDR': '10.127.255.0/24'}]
for i in range(1, 501):
    a = 2 + i + off
    nodes.append({'name': f'big{i}', 'ip': f'172.20.{a // 250}.{a % 250 + 2}', 'podCIDR': f'10.{128 + i // 256}.{i % 256}.0/24'})
print(json.dumps(nodes))" "$1"
}
api POST /nodes "$(big_nodes 0)" 8081 >/dev/null
big_routes() { ip -n $RUN-big route show proto 212 | wc -l; }
mkdir -p "$RUN_DIR/big"
ip netns exec $RUN-big "$AGENT_BIN" --kubeconfig "$RUN_DIR/kc-big" --node big --subnet-file "$RUN_DIR/big/podcidr" --resync 30 \
    >"$RUN_DIR/big/agent.log" 2>&1 &
big_pid=$!
if wait_until 10 bash -c "[ \$(ip -n $RUN-big route show proto 212 | wc -l) = 500 ]"; then pass "500 nodes: one list, one sync, 500 routes in ${WAITED_MS} ms"; else fail "500 routes ($(big_routes))"; fi
wait_until 2 bash -c "[ \$(grep -c 'route added' $RUN_DIR/big/agent.log) -ge 500 ]"
check "...each logged once" test "$(grep -c 'route added' "$RUN_DIR/big/agent.log")" = 500
api POST /nodes "$(big_nodes 700)" 8081 >/dev/null
if wait_until 10 bash -c "[ \$(grep -c 'route replaced' $RUN_DIR/big/agent.log) = 500 ]"; then pass "500 nodes change address: 500 routes replaced in ${WAITED_MS} ms"; else fail "500 replaced: $(grep -c "route replaced" $RUN_DIR/big/agent.log) $(grep -v "route " $RUN_DIR/big/agent.log | tail -n 4)"; fi
api POST /delete "$(python3 -c 'import json; print(json.dumps([f"big{i}" for i in range(1, 501)]))')" 8081 >/dev/null
if wait_until 10 bash -c "[ \$(ip -n $RUN-big route show proto 212 | wc -l) = 0 ]"; then pass "500 nodes deleted: every route removed in ${WAITED_MS} ms"; else fail "500 removed ($(big_routes) left)"; fi
check "...with no failure in the log $(grep -m3 cannot "$RUN_DIR/big/agent.log")" bash -c "! grep -q 'cannot' $RUN_DIR/big/agent.log"
kill $big_pid 2>/dev/null; wait $big_pid 2>/dev/null

finish
