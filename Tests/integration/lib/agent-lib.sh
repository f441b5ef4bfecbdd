# The node agent in the simulated cluster (sourced after lib.sh and cluster.sh): a stand-in API
# server (Tests/support/fake-apiserver.py) in the underlay namespace at 192.168.1.1:6443 (TLS, with
# a CA made here), its control channel on that namespace's 127.0.0.1:8080, and bridge-ipam-agent
# running inside node namespaces. Nothing of this touches the root namespace.

AGENT_BIN=${AGENT_BIN:-$REPO/.build/release/bridge-ipam-agent}
API_ADDR=192.168.1.1
API_TOKEN=token-$RUN
PKI=$RUN_DIR/pki
KUBECONFIG_FILE=$RUN_DIR/kubeconfig
AGENT_RESYNC=${AGENT_RESYNC:-2}
AGENT_BACKOFF=${AGENT_BACKOFF:-1}
declare -A AGENT_PID

# make_pki: a CA, the API server's certificate (for 192.168.1.1 and 127.0.0.1) and a client
# certificate, all made with the openssl CLI.
make_pki() {
    mkdir -p "$PKI"
    (
        cd "$PKI" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-cluster-ca
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver
        printf 'subjectAltName=IP:%s,IP:192.168.1.250,IP:127.0.0.1,DNS:kubernetes\nextendedKeyUsage=serverAuth\n' $API_ADDR >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj "/O=system:nodes/CN=system:node:agent"
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext
    ) >/dev/null 2>&1
}

# write_kubeconfig FILE TOKEN [SERVER]: a kubeconfig in the layout kubectl writes, with the CA
# embedded.
write_kubeconfig() {
    cat >"$1" <<EOF2
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
    server: ${3:-https://$API_ADDR:6443}
  name: sim
contexts:
- context:
    cluster: sim
    user: agent
  name: agent@sim
current-context: agent@sim
kind: Config
preferences: {}
users:
- name: agent
  user:
    token: $2
EOF2
}

# apiserver_up [NAME ADDRESS CONTROL_PORT]: the stand-in API server in the underlay namespace.
apiserver_up() {
    local name=${1:-api} addr=${2:-$API_ADDR} control=${3:-8080}
    ip -n $RUN-underlay addr add $addr/24 dev ul0 2>/dev/null
    ip netns exec $RUN-underlay python3 -u "$REPO/Tests/support/fake-apiserver.py" --listen $addr:6443 --control 127.0.0.1:$control \
        --cert "$PKI/server.crt" --key "$PKI/server.key" --ca "$PKI/ca.crt" --token "$API_TOKEN" --bookmark-interval 1 \
        >"$RUN_DIR/$name.log" 2>&1 &
    local _
    for _ in $(seq 100); do grep -q ready "$RUN_DIR/$name.log" 2>/dev/null && return 0; sleep 0.05; done
    echo "the stand-in API server did not start: $(cat "$RUN_DIR/$name.log")" >&2
    return 1
}

# api METHOD PATH [JSON] [CONTROL_PORT]: the control channel.
api() {
    ip netns exec $RUN-underlay curl -sS -X "$1" --data-binary "${3:-null}" "http://127.0.0.1:${4:-8080}$2"
}

# api_node N [IP]: node N (podCIDR 10.244.N.0/24) added to or changed in the API.
api_node() {
    api POST /nodes "{\"name\":\"node$1\",\"ip\":\"${2:-$(node_ip $1)}\",\"podCIDR\":\"10.244.$1.0/24\"}" >/dev/null
}

# node_ns N: node N's namespace on the underlay, without subnet file or routes.
node_ns() {
    local n=$1
    new_ns node$n
    NODE_IP[$n]=$(node_ip $n)
    ip -n $RUN-underlay link add n$n type veth peer name eth0 netns $RUN-node$n
    ip -n $RUN-underlay link set n$n master ul0 up
    ip -n $RUN-node$n addr add ${NODE_IP[$n]}/24 dev eth0
    ip -n $RUN-node$n link set eth0 up
    mkdir -p "$RUN_DIR/node$n"
}

# agent_start N [ARGS...]: the agent on node N, logging to $RUN_DIR/nodeN/agent.log.
agent_start() {
    local n=$1
    shift
    ip netns exec $RUN-node$n "$AGENT_BIN" --kubeconfig "$KUBECONFIG_FILE" --node node$n \
        --subnet-file "$RUN_DIR/node$n/podcidr" --ready-file "$RUN_DIR/node$n/ready" \
        --resync "$AGENT_RESYNC" --backoff-max "$AGENT_BACKOFF" "$@" >>"$RUN_DIR/node$n/agent.log" 2>&1 &
    AGENT_PID[$n]=$!
}

agent_stop() {
    [ -n "${AGENT_PID[$1]:-}" ] && kill "${AGENT_PID[$1]}" 2>/dev/null && wait "${AGENT_PID[$1]}" 2>/dev/null
    AGENT_PID[$1]=
    return 0
}

# wait_until SECONDS COMMAND...: polls every 20 ms; prints the time it took; fails at the limit.
wait_until() {
    local limit=$1 start now
    shift
    start=$(date +%s%N)
    while true; do
        if "$@"; then
            now=$(date +%s%N)
            WAITED_MS=$(((now - start) / 1000000))
            return 0
        fi
        now=$(date +%s%N)
        if [ $(((now - start) / 1000000)) -ge $((limit * 1000)) ]; then WAITED_MS=$((limit * 1000)); return 1; fi
        sleep 0.02
    done
}

# route_is NODE DEST VIA: node NODE routes DEST via VIA with our protocol (VIA "-": no route).
route_is() {
    local got
    local family=-4
    [[ $2 == *:* ]] && family=-6
    got=$(ip -n $RUN-node$1 $family route show "$2" proto 212 2>/dev/null | awk '{print $3}')
    [ "$got" = "${3/#-/}" ]
}

# all_route N DEST VIA [EXCEPT]: every running node but N (and EXCEPT) has route_is DEST VIA.
others_route() {
    local self=$1 dest=$2 via=$3 n
    for n in "${!AGENT_PID[@]}"; do
        [ "$n" = "$self" ] && continue
        [ -z "${AGENT_PID[$n]}" ] && continue
        route_is $n "$dest" "$via" || return 1
    done
}

# agent_suite_start: the start every agent suite shares: agents stopped at exit, the run set up
# (setup_run), a CA, the underlay bridge, and the stand-in API server with a kubeconfig for it.
# Ends the suite with a failed tally when the agent binary is missing or the server won't start.
agent_suite_start() {
    extra_cleanup() { local n; for n in "${!AGENT_PID[@]}"; do agent_stop $n; done; }
    setup_run
    if [ ! -x "$AGENT_BIN" ]; then echo "no agent binary at $AGENT_BIN (make build)"; echo "0 passed, 1 failed"; exit 1; fi
    make_pki
    new_ns underlay
    ip -n $RUN-underlay link add ul0 type bridge
    ip -n $RUN-underlay link set ul0 up
    apiserver_up || { echo "0 passed, 1 failed"; exit 1; }
    write_kubeconfig "$KUBECONFIG_FILE" "$API_TOKEN"
}
