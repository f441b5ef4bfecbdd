#!/usr/bin/env bash
# bridge-ipam-agent as production meets it (issue 21), against the stand-in API server: a
# paginated list (checked against kubectl --chunk-size first), /healthz, /readyz and /metrics
# (validated by promtool), readiness when this node's own Node is missing, backoff for every
# failure kind (a persistent ERROR event, a 410 storm, "Too large resource version"), and
# kubeconfigs written by hand and by kubectl (CRLF, anchors, block scalars, tls-server-name,
# proxy-url, a token file ending in CRLF). Everything runs inside the run's namespaces.
RUN=${RUN:-p21$$}
source "$(dirname "$0")/lib/lib.sh"
source "$(dirname "$0")/lib/cluster.sh"
source "$(dirname "$0")/lib/agent-lib.sh"
PORT=9461

need() { command -v "$1" >/dev/null || { [ "${CI:-}" = true ] && fail "$1 is not installed (make integration-test installs it)" || echo "skip: $1 is not installed"; return 1; }; }
agent_suite_start
for n in 1 2 3 4 5 6; do api_node $n; done
state() { api GET /state | jq ".$1"; }
# status N PATH: "CODE BODY" of the agent's status server on node N.
status() { ip netns exec $RUN-node$1 curl -s -m 3 -w ' %{http_code}' "http://127.0.0.1:$PORT$2" 2>/dev/null | tr '\n' ' '; }
code_is() { [[ "$(status $1 $2)" == *" $3" ]]; }
metric() { ip netns exec $RUN-node$1 curl -s -m 3 "http://127.0.0.1:$PORT/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
export RUN PORT
export -f api state status code_is metric

echo "== Pagination, as kubectl does it"
if need kubectl; then
    kc() { ip netns exec $RUN-underlay env HOME="$RUN_DIR" kubectl --cache-dir "$RUN_DIR/kcache" --request-timeout 5s --kubeconfig "$KUBECONFIG_FILE" "$@"; }
    pages=$(state list_pages)
    names=$(kc get nodes --chunk-size=2 -o name | tr '\n' ' ')
    check "kubectl get nodes --chunk-size=2 reads every page of the stand-in server ($names)" test "$names" = "node/node1 node/node2 node/node3 node/node4 node/node5 node/node6 "
    check "...in 3 requests with limit/continue" test $(($(state list_pages) - pages)) = 3
fi

echo "== This node's own Node is missing"
for n in 0 1 2 3; do node_ns $n; done
write_kubeconfig "$RUN_DIR/kc-wrong-token" wrong-token
agent_start 0 --metrics-address 127.0.0.1:$PORT --list-page-size 4
wait_until 5 code_is 0 /healthz 200
check "/healthz answers 200 while the loop runs ($(status 0 /healthz))" code_is 0 /healthz 200
wait_until 3 grep -q "listed 6 nodes" "$RUN_DIR/node0/agent.log"
check "the list came in pages of 4: $(grep -m1 'listed' "$RUN_DIR/node0/agent.log" | cut -d' ' -f3-)" grep -q "listed 6 nodes at resourceVersion [0-9]* in 2 pages" "$RUN_DIR/node0/agent.log"
check "/readyz: 503 with the reason ($(status 0 /readyz))" bash -c "[[ '$(status 0 /readyz)' == *'node node0 is not in the API'*' 503' ]]"
api_node 0
if wait_until 3 code_is 0 /readyz 200; then pass "its Node appears: /readyz 200 in ${WAITED_MS} ms ($(status 0 /readyz))"; else fail "ready: $(status 0 /readyz)"; fi
check "...with a route to each of the 6 others" test "$(ip -n $RUN-node0 route show proto 212 | wc -l)" = 6
routes_before=$(ip -n $RUN-node0 route show)
api POST /delete '["node0"]' >/dev/null
wait_until 3 code_is 0 /readyz 503
check "its Node deleted: /readyz 503 again, saying why ($(status 0 /readyz))" bash -c "[[ '$(status 0 /readyz)' == *'node node0 is not in the API'*' 503' ]]"
api_node 6 192.168.1.99
sleep 1
check "...the routes are kept as they were" test "$(ip -n $RUN-node0 route show)" = "$routes_before"
api_node 6
api_node 0
wait_until 3 code_is 0 /readyz 200
check "back: ready again, and logged" bash -c "code_is 0 /readyz 200 && grep -q 'ready again' '$RUN_DIR/node0/agent.log'"

echo "== /metrics"
ip netns exec $RUN-node0 curl -s "http://127.0.0.1:$PORT/metrics" >"$RUN_DIR/metrics.txt"
[ -n "${METRICS_SCRAPE_OUT:-}" ] && cp "$RUN_DIR/metrics.txt" "$METRICS_SCRAPE_OUT"
if need promtool; then
    out=$(promtool check metrics <"$RUN_DIR/metrics.txt" 2>&1)
    check "promtool check metrics accepts the scrape ${out:+($out)}" test -z "$out"
fi
check "routes desired, installed, failed: 6 6 0; nodes seen 7; ready 1" test \
    "$(metric 0 bridge_ipam_routes_desired) $(metric 0 bridge_ipam_routes_installed) $(metric 0 bridge_ipam_routes_failed) $(metric 0 bridge_ipam_nodes_seen) $(metric 0 bridge_ipam_ready)" = "6 6 0 7 1"
check "a last successful sync time within the last minute" bash -c "t=\$(metric 0 bridge_ipam_last_successful_sync_timestamp_seconds); [ \${t%.*} -gt \$(( \$(date +%s) - 60 )) ]"
check "the sync duration histogram counts every sync" bash -c "[ \$(metric 0 bridge_ipam_sync_duration_seconds_count) -ge 2 ] && grep -q 'bridge_ipam_sync_duration_seconds_bucket{le=\"+Inf\"}' '$RUN_DIR/metrics.txt'"
check "an unknown path is 404" code_is 0 /nope 404
# 40 connections that never send a request (more than the 32 it keeps), then a probe.
ip netns exec $RUN-node0 python3 -c "
import socket, sys, time
idle = [socket.create_connection(('127.0.0.1', $PORT)) for _ in range(40)]
time.sleep(0.5)
start = time.monotonic()
probe = socket.create_connection(('127.0.0.1', $PORT), timeout=3)
probe.sendall(b'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
reply = probe.recv(100)
print('%d ms %s' % ((time.monotonic() - start) * 1000, reply.split(b'\\r\\n')[0].decode()))
" >"$RUN_DIR/idle.txt" 2>&1
check "40 idle connections do not starve a probe: $(cat "$RUN_DIR/idle.txt")" grep -q "HTTP/1.1 200 OK" "$RUN_DIR/idle.txt"
api POST /stop >/dev/null
sleep 2
check "the API server away: /healthz still 200, the errors counted (transport: $(metric 0 'bridge_ipam_api_errors_total{code="transport"}'))" bash -c \
    "code_is 0 /healthz 200 && [ -n \"\$(metric 0 'bridge_ipam_api_errors_total{code=\"transport\"}')\" ]"
api POST /start >/dev/null
wait_until 5 bash -c "[ \$(metric 0 bridge_ipam_watch_restarts_total) -ge 1 ]"
check "...and the watch restarts counted ($(metric 0 bridge_ipam_watch_restarts_total))" bash -c "[ \$(metric 0 bridge_ipam_watch_restarts_total) -ge 1 ]"

echo "== Retries back off, whatever failed"
agent_start 1 --metrics-address 127.0.0.1:$PORT --backoff-max 4
wait_until 5 code_is 1 /readyz 200
agent_stop 0
api POST /fail-watches '{"count": 1000, "code": 500, "reason": "InternalError", "message": "etcdserver: leader changed", "as": "event"}' >/dev/null
api POST /token "\"$API_TOKEN\"" >/dev/null  # cuts the open watch
sleep 8
errors=$(metric 1 'bridge_ipam_api_errors_total{code="500"}')
check "a persistent ERROR event: $errors retries in 8 s (every second would be 8), backing off: $(grep -o 'reconnecting in [0-9.]* s' "$RUN_DIR/node1/agent.log" | tail -n 4 | cut -d' ' -f3 | tr '\n' ' ')" \
    bash -c "[ '${errors:-0}' -ge 2 ] && [ '${errors:-0}' -le 6 ] && grep 'reconnecting in' '$RUN_DIR/node1/agent.log' | tail -n 1 | grep -q 'in [2-4]\.'"
api POST /fail-watches '{"count": 0}' >/dev/null
api_node 7
if wait_until 8 route_is 1 10.244.7.0/24 192.168.1.9; then pass "the failures over: it catches up (${WAITED_MS} ms)"; else fail "catch up after ERROR events"; fi
sleep 1.5  # a bookmark: the watch is healthy, the backoff starts over
lists=$(metric 1 bridge_ipam_node_lists_total)
api POST /fail-watches '{"count": 1000, "code": 410, "reason": "Expired", "message": "too old resource version: 1 (2)", "as": "event"}' >/dev/null
api POST /token "\"$API_TOKEN\"" >/dev/null
sleep 8
relists=$(($(metric 1 bridge_ipam_node_lists_total) - lists))
check "a 410 storm: the first relist at once, then backing off: $relists lists in 8 s" bash -c "[ $relists -ge 2 ] && [ $relists -le 6 ]"
api POST /fail-watches '{"count": 0}' >/dev/null
wait_until 8 bash -c "[ \$(state open_watches) -ge 1 ]"
sleep 1.5
lists=$(metric 1 bridge_ipam_node_lists_total)
api POST /fail-watches '{"count": 1, "code": 504, "reason": "Timeout", "message": "Too large resource version: 99999, current: 170", "as": "status"}' >/dev/null
api POST /token "\"$API_TOKEN\"" >/dev/null
wait_until 5 grep -q "Too large resource version" "$RUN_DIR/node1/agent.log"
check "\"Too large resource version\": $(grep -m1 'Too large' "$RUN_DIR/node1/agent.log" | cut -d' ' -f3-)" grep -q "Too large resource version): listing nodes again" "$RUN_DIR/node1/agent.log"
wait_until 3 bash -c "[ \$(metric 1 bridge_ipam_node_lists_total) -gt $lists ]"
check "...and a new list, not the same version again" bash -c "[ \$(metric 1 bridge_ipam_node_lists_total) -gt $lists ]"
api POST /delete '["node7"]' >/dev/null
if wait_until 5 route_is 1 10.244.7.0/24 -; then pass "...after which changes arrive (${WAITED_MS} ms)"; else fail "changes after too large"; fi
agent_stop 1

agent_start 3 --metrics-address 127.0.0.1:$PORT --kubeconfig "$RUN_DIR/kc-wrong-token"
wait_until 5 bash -c "status 3 /readyz | grep -q 'HTTP 401'"
check "never listed: /readyz says why ($(status 3 /readyz))" bash -c "[[ '$(status 3 /readyz)' == *'not listed yet: HTTP 401'*' 503' ]]"
agent_stop 3

echo "== Kubeconfigs"
# By hand, with Windows line ends: comments, an anchor and a merge key, the CA as a block
# scalar, a flow mapping, tls-server-name, and a token file ending in CRLF.
printf '%s\r\n' "$API_TOKEN" >"$RUN_DIR/token-crlf"
{
    echo "# the agent's kubeconfig, written by hand"
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    echo "- name: base"
    echo "  cluster: &base"
    echo "    server: https://$API_ADDR:6443   # the stand-in"
    echo "    tls-server-name: kubernetes"
    echo "    certificate-authority-data: |"
    base64 -w 60 "$PKI/ca.crt" | sed 's/^/      /'
    echo "- name: sim"
    echo "  cluster:"
    echo "    <<: *base"
    echo "contexts:"
    echo "- {name: main, context: {cluster: sim, user: agent}}"
    echo "current-context: \"main\""
    echo "users:"
    echo "- name: agent"
    echo "  user:"
    echo "    tokenFile: token-crlf"
} | sed 's/$/\r/' >"$RUN_DIR/kc-hand"
agent_start 2 --kubeconfig "$RUN_DIR/kc-hand"
if wait_until 5 route_is 2 10.244.1.0/24 192.168.1.3; then pass "a hand-written CRLF kubeconfig (anchors, block scalar, flow, tls-server-name) and a CRLF token file work (${WAITED_MS} ms)"; else fail "hand-written kubeconfig: $(tail -n 3 "$RUN_DIR/node2/agent.log")"; fi
agent_stop 2
sed 's/tls-server-name: kubernetes/tls-server-name: wrong.example/' "$RUN_DIR/kc-hand" >"$RUN_DIR/kc-wrong-name"
: >"$RUN_DIR/node2/agent.log"
agent_start 2 --kubeconfig "$RUN_DIR/kc-wrong-name"
wait_until 5 grep -q "wrong.example" "$RUN_DIR/node2/agent.log"
check "tls-server-name is what the certificate is checked against: $(grep -m1 'wrong.example' "$RUN_DIR/node2/agent.log" | cut -d' ' -f3-)" grep -q "wrong.example" "$RUN_DIR/node2/agent.log"
agent_stop 2
sed 's/^\(    server: .*\)\r$/\1\r\n    proxy-url: http:\/\/proxy.example:3128\r/' "$RUN_DIR/kc-hand" >"$RUN_DIR/kc-proxy"
out=$(ip netns exec $RUN-node2 "$AGENT_BIN" --kubeconfig "$RUN_DIR/kc-proxy" --node node2 --subnet-file "$RUN_DIR/node2/podcidr" 2>&1)
status_code=$?
check "proxy-url is refused at start, clearly: $(echo "$out" | cut -d' ' -f3-)" bash -c "[ $status_code = 1 ] && grep -q 'proxy-url http://proxy.example:3128 is not supported' <<<'$out'"
if need kubectl; then
    kcv() { ip netns exec $RUN-underlay env HOME="$RUN_DIR" kubectl --cache-dir "$RUN_DIR/kcache" --request-timeout 5s "$@"; }
    check "kubectl reads the hand-written kubeconfig too" test "$(kcv --kubeconfig "$RUN_DIR/kc-hand" get node node1 -o jsonpath='{.spec.podCIDR}')" = 10.244.1.0/24
    kcv --kubeconfig "$RUN_DIR/kc-hand" config view --raw --flatten >"$RUN_DIR/kc-view"
    : >"$RUN_DIR/node2/agent.log"
    agent_start 2 --kubeconfig "$RUN_DIR/kc-view"
    api_node 8
    if wait_until 5 route_is 2 10.244.8.0/24 192.168.1.10; then pass "kubectl config view --raw --flatten's rewrite of it works (${WAITED_MS} ms)"; else fail "kubectl view: $(tail -n 3 "$RUN_DIR/node2/agent.log")"; fi
    agent_stop 2
    ds=$(kcv --kubeconfig "$KUBECONFIG_FILE" create --dry-run=client --validate=false -o json -f "$REPO/deploy/bridge-ipam.yaml" | jq -c 'select(.kind == "DaemonSet") | .spec.template.spec.containers[0]')
    check "the DaemonSet probes /healthz (liveness) and /readyz (readiness) on port $PORT: $(jq -c '[.livenessProbe.httpGet, .readinessProbe.httpGet]' <<<"$ds")" test \
        "$(jq -c '[.livenessProbe.httpGet.path, .livenessProbe.httpGet.port, .readinessProbe.httpGet.path, .readinessProbe.httpGet.port, (.command | index("--metrics-address") != null)]' <<<"$ds")" \
        = "[\"/healthz\",$PORT,\"/readyz\",$PORT,true]"
fi

finish
