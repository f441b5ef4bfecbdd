#!/usr/bin/env bash
# make bench, NetworkPolicy part: what enforcement costs, in namespaces of its own (a node with a
# client and a server pod, the stand-in API server, the agent with --network-policy).
#  - TCP connection setup (connect + first byte) pod to pod on one node with 0, 100 and 1000
#    policies selecting the server, the one admitting the client last (every rule is tried);
#  - the agent's time from an API change to the change applied, at 1000 pods and 200 policies,
#    and its memory.
RUN=${RUN:-nb$$}
source "$(dirname "$0")/../Tests/integration/lib/lib.sh"
source "$(dirname "$0")/../Tests/integration/lib/cluster.sh"
source "$(dirname "$0")/../Tests/integration/lib/agent-lib.sh"
AGENT_RESYNC=600
OUT=${BENCH_NETPOL_OUT:-$REPO/bench/NETPOL.md}
CONNECTS=${BENCH_CONNECTS:-2000}
extra_cleanup() { agent_stop 0; }
# post PATH JSON_FILE: a change through the control channel, the body read from a file (too
# large for an argument).
post() { ip netns exec $RUN-underlay curl -sS -X POST --data-binary @"$2" "http://127.0.0.1:8080$1" >/dev/null; }
setup_run
make_pki
cluster_up 1 0 || exit 1
apiserver_up || exit 1
write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"
api_node 0
ip netns exec $RUN-node0 sysctl -qw net.bridge.bridge-nf-call-iptables=0
for pod in client server; do
    new_ns $pod
    result=$(cni node0 ADD $pod /run/netns/$RUN-$pod eth0 "$(node_conf 0)") || { echo "ADD failed: $result"; exit 1; }
    declare "IP_$pod=$(jq -r '.ips[0].address' <<<"$result" | cut -d/ -f1)"
done
ip -n $RUN-node0 -d link show cni0 | grep -q 'nf_call_iptables 1' || ip -n $RUN-node0 link set cni0 type bridge nf_call_iptables 1
ip netns exec $RUN-server python3 -u "$REPO/Tests/support/netpol-probe.py" serve 80 >"$RUN_DIR/serve.log" 2>&1 &
wait_until 5 grep -q ready "$RUN_DIR/serve.log"
api POST /objects '{"resource":"namespaces","items":[{"metadata":{"name":"bench"}}]}' >/dev/null
api POST /objects "{\"resource\":\"pods\",\"items\":[
  {\"metadata\":{\"namespace\":\"bench\",\"name\":\"server\",\"labels\":{\"app\":\"server\"}},\"spec\":{\"nodeName\":\"node0\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"$IP_server\"}},
  {\"metadata\":{\"namespace\":\"bench\",\"name\":\"client\",\"labels\":{\"app\":\"client\"}},\"spec\":{\"nodeName\":\"node0\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"$IP_client\"}}]}" >/dev/null
agent_start 0 --network-policy
LOG=$RUN_DIR/node0/agent.log
wait_until 10 grep -q "table rebuilt" "$LOG" || { echo "the agent did not build its table"; cat "$LOG"; exit 1; }

rules_of_server() { ip netns exec $RUN-node0 nft list chain inet bridge_ipam_policy ingress/bench/server 2>/dev/null | grep -c ' accept' || true; }
ROWS=()
previous=0
for n in 0 100 1000; do
    python3 -c "import json; print(json.dumps({'resource': 'networkpolicies', 'keys': [f'bench/deny-{j:04d}' for j in range($previous)] + ['bench/zz-allow']}))" >"$RUN_DIR/body.json"
    post /delete-objects "$RUN_DIR/body.json"
    if [ $n -gt 0 ]; then
        echo "{\"resource\":\"networkpolicies\",\"items\":$(python3 "$REPO/Tests/support/netpol-bench.py" latency-policies $n server "$IP_client")}" >"$RUN_DIR/body.json"
        post /objects "$RUN_DIR/body.json"
        wait_until 30 bash -c "[ \"\$(ip netns exec $RUN-node0 nft list chain inet bridge_ipam_policy ingress/bench/server 2>/dev/null | grep -c ' accept')\" = $((n + 1)) ]"
    else
        wait_until 30 bash -c "! ip netns exec $RUN-node0 nft list chain inet bridge_ipam_policy ingress/bench/server >/dev/null 2>&1"
    fi
    previous=$n
    read -r median p90 < <(ip netns exec $RUN-client python3 "$REPO/Tests/support/netpol-bench.py" connect "$IP_server" 80 "$CONNECTS")
    echo "$n policies: server chain has $(rules_of_server) accept rules; connect median $median us, p90 $p90 us"
    ROWS+=("| TCP connect + first byte, pod to pod on one node, $n policies select the server ($CONNECTS connects) | $median | $p90 | µs |")
done

echo "== 1000 pods (500 on this node), 200 policies"
agent_stop 0
api POST /delete-objects '{"resource":"networkpolicies","keys":["bench/zz-allow"]}' >/dev/null
python3 "$REPO/Tests/support/netpol-bench.py" cluster 1000 200 >"$RUN_DIR/big.json"
for kind in namespaces pods policies; do
    jq -c "{resource: (if \"$kind\" == \"policies\" then \"networkpolicies\" else \"$kind\" end), items: .$kind}" "$RUN_DIR/big.json" >"$RUN_DIR/body.json"
    post /objects "$RUN_DIR/body.json"
done
ip netns exec $RUN-node0 nft delete table inet bridge_ipam_policy
: >"$LOG"
started=$(date +%s%N)
agent_start 0 --network-policy
wait_until 60 grep -q "table rebuilt" "$LOG" || { echo "no table"; tail "$LOG"; exit 1; }
built_ms=$((($(date +%s%N) - started) / 1000000))
line=$(grep "table rebuilt" "$LOG" | tail -1)
echo "$line"
chains=$(ip netns exec $RUN-node0 nft list chains | grep -c 'chain ')
sets=$(ip netns exec $RUN-node0 nft list sets | grep -c 'set ')
rules=$(ip netns exec $RUN-node0 nft -a list table inet bridge_ipam_policy | grep -c '# handle')
ROWS+=("| agent start to table built, 1000 pods / 200 policies ($chains chains, $sets sets, $rules rules) | $built_ms | | ms |")
ROWS+=("| of which compile / apply (one transaction) | $(sed -n 's/.*(compile \(.*\) ms, apply \(.*\) ms)/\1 \/ \2/p' <<<"$line") | | ms |")

# ms_of HH:MM:SS.mmm -> milliseconds of the day
ms_of() { IFS=:. read -r h m s ms <<<"$1"; echo $(((10#$h * 3600 + 10#$m * 60 + 10#$s) * 1000 + 10#$ms)); }
change() {  # change NAME CONTROL_PATH JSON: POST, then the time until the agent logs the change applied
    local name=$1 before after line t0 t1
    before=$(grep -c "network policy: applied" "$LOG")
    t0=$(ms_of "$(date -u +%H:%M:%S.%3N)")
    api POST "$2" "$3" >/dev/null
    wait_until 30 bash -c "[ \$(grep -c 'network policy: applied' '$LOG') -gt $before ]" || { echo "$name: not applied"; return; }
    line=$(grep "network policy: applied" "$LOG" | tail -1)
    t1=$(ms_of "${line%% *}")
    echo "$name: $line"
    ROWS+=("| $name: API change to applied (compile / apply) | $((t1 - t0)) | $(sed -n 's/.*(compile \(.*\) ms, apply \(.*\) ms)/\1 \/ \2/p' <<<"$line") | ms |")
    ROWS+=("| $name: messages in the transaction | $(sed -n 's/.*applied \([0-9]*\) changes.*/\1/p' <<<"$line") | | |")
}
# np8 selects pods of ns8, all on node0; p5 (ns5, team t0, tier web) is a peer of every policy
# admitting team t0's web pods.
policy8=$(jq -c '.policies[8] | .spec.ingress[0].ports[0].port = 81' "$RUN_DIR/big.json")
change "a policy updated" /objects "{\"resource\":\"networkpolicies\",\"items\":[$policy8]}"
pod5=$(jq -c '.pods[5] | .metadata.labels.tier = "db"' "$RUN_DIR/big.json")
change "a peer pod relabelled" /objects "{\"resource\":\"pods\",\"items\":[$pod5]}"
change "a pod started on this node" /objects '{"resource":"pods","items":[{"metadata":{"namespace":"ns3","name":"new","labels":{"app":"a3","tier":"web"}},"spec":{"nodeName":"node0"},"status":{"phase":"Running","podIP":"10.110.0.2"}}]}'
change "a pod started on another node" /objects '{"resource":"pods","items":[{"metadata":{"namespace":"ns4","name":"new","labels":{"app":"a4","tier":"web"}},"spec":{"nodeName":"node1"},"status":{"phase":"Running","podIP":"10.110.0.3"}}]}'
change "a policy deleted" /delete-objects '{"resource":"networkpolicies","keys":["ns3/np3"]}'
pid=${AGENT_PID[0]}
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
ROWS+=("| agent memory at 1000 pods / 200 policies: peak RSS / RSS now | $((hwm / 1024)) | $((rss / 1024)) | MiB |")
agent_stop 0

{
    echo "# make bench: NetworkPolicy"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r); \`bash bench/bench-netpol.sh\`."
    echo "Connection rows: median and p90; the client and the server are pods on one node (bridged,"
    echo "through the bridge's nf_call_iptables), policies made by Tests/support/netpol-bench.py. Agent rows:"
    echo "the first column is the time from the API server's change to the agent's log line saying it"
    echo "is applied (the log has millisecond stamps), then the agent's own compile / apply time."
    echo
    echo "| measurement | value | p90 / detail | unit |"
    echo "|---|---:|---:|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$OUT"
cat "$OUT"
