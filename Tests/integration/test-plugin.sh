#!/usr/bin/env bash
# Namespace integration tests of the bridge-ipam plugin on one simulated node.
# Needs root, iproute2, iputils-ping, jq, and the reference plugins in /usr/lib/cni.
source "$(dirname "$0")/lib/lib.sh"

setup_run
NODE=node
new_ns $NODE
SUBNET=10.244.1.0/24
CONF=$(conf podnet $SUBNET)
LEASES=$DATA_DIR/podnet

# State of the node that bad input must not change: links, addresses, routes, leases, pod links.
snapshot() {
    {
        ip netns exec "$RUN-$NODE" ip -o link show | awk '{print $2, $9}'
        ip netns exec "$RUN-$NODE" ip -o addr show | awk '{print $2, $4}'
        ip netns exec "$RUN-$NODE" ip route show
        ip netns exec "$RUN-$NODE" cat /proc/sys/net/ipv4/ip_forward
        if [ -d "$LEASES" ]; then for f in "$LEASES"/*; do
            [ -f "$f" ] && [ "$f" != "${SKIP_CURSOR:+$LEASES/last_reserved_ip.0}" ] && echo "$f $(cat "$f")"
        done; fi
        local p
        for p in $(ip netns list | awk '{print $1}' | grep "^$RUN-pod"); do echo "$p $(ip netns exec "$p" ip -o link show | awk '{print $2}' | tr '\n' ' ')"; done
    } | sort
}

# expect_error NAME CODE NETNS IFNAME CONFIG [VAR=VALUE ...]: ADD fails with CODE, exit non-zero,
# valid error JSON, and the node unchanged.
expect_error() {
    local name=$1 code=$2 netns=$3 ifname=$4 config=$5
    shift 5
    local before after out rc
    before=$(snapshot)
    out=$(cni $NODE ADD ctr-bad "$netns" "$ifname" "$config" "$@")
    rc=$?
    after=$(snapshot)
    if [ $rc -eq 0 ]; then fail "$name: expected code $code, ADD succeeded: $out"; return; fi
    if [ "$(jq -r .code <<<"$out" 2>/dev/null)" != "$code" ]; then fail "$name: expected code $code, got: $out"; return; fi
    if [ -z "$(jq -r '.msg // empty' <<<"$out")" ]; then fail "$name: error has no msg: $out"; return; fi
    if [ "$before" != "$after" ]; then fail "$name: the node changed: $(diff <(echo "$before") <(echo "$after") | tail -n +2 | tr '\n' ' ')"; return; fi
    pass "$name (code $code: $(jq -r .msg <<<"$out"))"
}

echo "== VERSION"
out=$(echo '{"cniVersion":"1.0.0"}' | env -i CNI_COMMAND=VERSION CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy "$PLUGIN_DIR/bridge-ipam")
check "VERSION answers with the input's cniVersion and the supported list" \
    test "$(jq -c '[.cniVersion, .supportedVersions]' <<<"$out")" = '["1.0.0",["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]]'

echo "== ADD three pods"
declare -A IP RESULT
for i in 1 2 3; do
    new_ns pod$i
    RESULT[$i]=$(cni $NODE ADD ctr-$i /run/netns/$RUN-pod$i eth0 "$CONF")
    IP[$i]=$(jq -r '.ips[0].address' <<<"${RESULT[$i]}" | cut -d/ -f1)
    check "ADD pod$i gets ${IP[$i]}" test "${IP[$i]}" = "10.244.1.$((i + 1))"
done
check "result names bridge, host veth and pod interface with its sandbox" \
    test "$(jq -c '[.interfaces[0].name, (.interfaces[1].name|test("^veth[0-9a-f]{8}$")), .interfaces[2].name, .interfaces[2].sandbox, .ips[0].interface, .ips[0].gateway, .routes[0].dst]' <<<"${RESULT[1]}")" \
    = "[\"cni0\",true,\"eth0\",\"/run/netns/$RUN-pod1\",2,\"10.244.1.1\",\"0.0.0.0/0\"]"
check "pod interface carries the MAC from the result" \
    test "$(ip netns exec $RUN-pod1 cat /sys/class/net/eth0/address)" = "$(jq -r '.interfaces[2].mac' <<<"${RESULT[1]}")"
check "lease files use host-local's layout" test "$(cat "$LEASES/${IP[1]}" | tr '\r\n' '|_')" = "ctr-1|_eth0"
check "gateway address is on the bridge" bash -c "ip netns exec $RUN-$NODE ip -o addr show dev cni0 | grep -q 'inet 10.244.1.1/24'"
check "IPv4 forwarding is on in the node" test "$(ip netns exec $RUN-$NODE cat /proc/sys/net/ipv4/ip_forward)" = 1
check "default route in the pod goes via the gateway" bash -c "ip netns exec $RUN-pod1 ip route show default | grep -q 'via 10.244.1.1 dev eth0'"
check "arp_notify is on for the pod interface" test "$(ip netns exec $RUN-pod1 cat /proc/sys/net/ipv4/conf/eth0/arp_notify)" = 1

echo "== Reachability"
for i in 1 2 3; do check "node reaches pod$i" ping_ok $NODE "${IP[$i]}"; done
for i in 1 2 3; do for j in 1 2 3; do
    [ $i = $j ] && continue
    check "pod$i reaches pod$j" ping_ok pod$i "${IP[$j]}"
done; done
check "pod1 reaches its gateway" ping_ok pod1 10.244.1.1

echo "== CHECK"
with_prev() { jq -c --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"; }
check "CHECK passes on an intact attachment" cni $NODE CHECK ctr-1 /run/netns/$RUN-pod1 eth0 "$(with_prev "$CONF" "${RESULT[1]}")"
ip netns exec $RUN-pod2 ip addr del "${IP[2]}/24" dev eth0
out=$(cni $NODE CHECK ctr-2 /run/netns/$RUN-pod2 eth0 "$(with_prev "$CONF" "${RESULT[2]}")")
check "CHECK fails with code 105 naming a missing address" bash -c "[ \"\$(jq -r .code <<<'$out')\" = 105 ] && jq -r .msg <<<'$out' | grep -q '${IP[2]}'"
ip netns exec $RUN-pod2 ip addr add "${IP[2]}/24" dev eth0
ip netns exec $RUN-pod2 ip route add default via 10.244.1.1
out=$(cni $NODE CHECK ctr-3 /run/netns/$RUN-pod3 eth0 "$(with_prev "$(conf podnet $SUBNET '' '' 0.3.1)" "${RESULT[3]}")")
check "CHECK under cniVersion 0.3.1 is refused with code 1" test "$(jq -r .code <<<"$out")" = 1

echo "== Bad input: an error with the right code, and nothing changed"
new_ns podx
PODX=/run/netns/$RUN-podx
expect_error "missing CNI_CONTAINERID and CNI_IFNAME" 4 "$PODX" "" "$CONF" CNI_CONTAINERID=
expect_error "CNI_IFNAME with a slash" 4 "$PODX" "a/b" "$CONF"
expect_error "unknown CNI_ARGS without IgnoreUnknown" 4 "$PODX" eth0 "$CONF" CNI_ARGS="FOO=bar"
expect_error "undecodable JSON" 6 "$PODX" eth0 '{"cniVersion": "1.1.0", "name": '
expect_error "unsupported cniVersion" 1 "$PODX" eth0 "$(conf podnet $SUBNET '' '' 9.9.9)"
expect_error "invalid CIDR" 7 "$PODX" eth0 "$(conf podnet 10.244.1.0/33)"
expect_error "range outside its subnet" 7 "$PODX" eth0 "$(conf podnet $SUBNET '' '"rangeStart":"10.244.2.10"')"
expect_error "network name that escapes the data directory" 7 "$PODX" eth0 "$(conf ../../etc $SUBNET)"
expect_error "ipMasq with an invalid exclusion" 7 "$PODX" eth0 "$(conf podnet $SUBNET '"ipMasq":true,"ipMasqExclude":["300.1.1.0/24"]')"
expect_error "vlan (not supported) is refused, not ignored" 2 "$PODX" eth0 "$(conf podnet $SUBNET '"vlan":100')"
expect_error "CNI_NETNS that does not exist" 106 "/run/netns/$RUN-nonexistent" eth0 "$CONF"
expect_error "CNI_NETNS that is the node's own namespace" 106 "/proc/self/ns/net" eth0 "$CONF"
expect_error "CNI_IFNAME that already exists in the pod" 101 "/run/netns/$RUN-pod1" eth0 "$CONF"
expect_error "requested IP that another pod holds" 104 "$PODX" eth0 "$CONF" CNI_ARGS="IgnoreUnknown=1;IP=${IP[1]}"
TINY=$(conf tiny 10.244.9.0/24 '' '"rangeStart":"10.244.9.10","rangeEnd":"10.244.9.10"' | sed 's/"bridge":"cni0"/"bridge":"cni9"/')
new_ns holder
cni $NODE ADD holder /run/netns/$RUN-holder eth0 "$TINY" >/dev/null
expect_error "exhausted range, named in the message" 100 "$PODX" eth0 "$TINY"
ip netns exec $RUN-$NODE ip link add notabridge type veth peer name notabridge-peer
expect_error "bridge name taken by a device that is not a bridge" 103 "$PODX" eth0 "$(conf podnet $SUBNET | sed 's/"cni0"/"notabridge"/')"
ip netns exec $RUN-$NODE ip link del notabridge

echo "== Rollback after a failure half-way through ADD"
# A route whose gateway is not on the pod's network fails in the kernel after the lease and the
# veth pair exist: both must be gone afterwards. (The round-robin cursor last_reserved_ip may move
# on, as host-local's does: it is a hint, not a lease.)
export SKIP_CURSOR=1
before=$(snapshot)
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(conf podnet $SUBNET '' '"routes":[{"dst":"192.0.2.0/24","gw":"198.51.100.1"}]')")
rc=$?
after=$(snapshot)
check "ADD that fails in the pod reports a netlink error ($(jq -r .details <<<"$out"))" test "$rc:$(jq -r .code <<<"$out")" = "1:102"
check "...and leaves no veth, lease or pod interface behind" test "$before" = "$after"
unset SKIP_CURSOR

echo "== Requested address and MAC"
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(jq -c '. + {runtimeConfig: {mac: "02:42:0a:f4:01:63"}}' <<<"$CONF")" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.244.1.99")
check "CNI_ARGS IP= and runtimeConfig.mac are honoured" \
    test "$(jq -r '.ips[0].address' <<<"$out") $(ip netns exec $RUN-podx cat /sys/class/net/eth0/address)" = "10.244.1.99/24 02:42:0a:f4:01:63"
cni $NODE DEL ctr-x "$PODX" eth0 "$CONF" >/dev/null

echo "== Chaining, runtimeConfig.ips, dns"
prev='{"cniVersion":"1.1.0","interfaces":[{"name":"earlier0"}],"ips":[{"address":"192.0.2.5/24","interface":0}],"routes":[{"dst":"192.0.2.0/24"}]}'
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(jq -c --argjson p "$prev" '. + {prevResult: $p}' <<<"$CONF")")
check "a prevResult is passed through with our interfaces, addresses and routes appended" \
    test "$(jq -c '[.interfaces[0].name, .interfaces[3].name, .ips[0].address, .ips[1].interface, .routes[0].dst]' <<<"$out")" = '["earlier0","eth0","192.0.2.5/24",3,"192.0.2.0/24"]'
cni $NODE DEL ctr-x "$PODX" eth0 "$CONF" >/dev/null
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(jq -c '. + {runtimeConfig: {ips: ["10.244.1.88/24"]}}' <<<"$CONF")")
check "runtimeConfig.ips asks for a specific address" test "$(jq -r '.ips[0].address' <<<"$out")" = 10.244.1.88/24
cni $NODE DEL ctr-x "$PODX" eth0 "$CONF" >/dev/null
printf 'nameserver 10.0.0.53\nsearch svc.cluster.local cluster.local\noptions ndots:5\n' >"$RUN_DIR/resolv.conf"
dns_conf=$(conf podnet $SUBNET '"dns":{"nameservers":["10.96.0.10"]}' "\"resolvConf\":\"$RUN_DIR/resolv.conf\"")
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$dns_conf")
check "dns from the config and resolvConf from the IPAM section fill the result's dns" \
    test "$(jq -c .dns <<<"$out")" = '{"nameservers":["10.96.0.10"],"search":["svc.cluster.local","cluster.local"],"options":["ndots:5"]}'
cni $NODE DEL ctr-x "$PODX" eth0 "$CONF" >/dev/null

echo "== Result formats of older versions"
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(conf podnet $SUBNET '' '' 0.4.0)")
check "0.4.0 result has \"version\":\"4\" in ips" test "$(jq -r '.cniVersion + " " + .ips[0].version' <<<"$out")" = "0.4.0 4"
cni $NODE DEL ctr-x "$PODX" eth0 "$(conf podnet $SUBNET '' '' 0.4.0)" >/dev/null
out=$(cni $NODE ADD ctr-x "$PODX" eth0 "$(conf podnet $SUBNET '' '' 0.2.0)")
check "0.2.0 result has an ip4 block" bash -c "jq -e '.ip4.ip and .ip4.gateway' <<<'$out' >/dev/null"
cni $NODE DEL ctr-x "$PODX" eth0 "$(conf podnet $SUBNET '' '' 0.2.0)" >/dev/null

echo "== DEL"
veth3=$(jq -r '.interfaces[1].name' <<<"${RESULT[3]}")
check "DEL pod3 succeeds" cni $NODE DEL ctr-3 /run/netns/$RUN-pod3 eth0 "$CONF"
check "...its lease is released" test ! -e "$LEASES/${IP[3]}"
check "...its host veth is gone" bash -c "! ip netns exec $RUN-$NODE ip link show $veth3 >/dev/null 2>&1"
check "...and its pod interface" bash -c "! ip netns exec $RUN-pod3 ip link show eth0 >/dev/null 2>&1"
check "DEL pod3 again succeeds (idempotent)" cni $NODE DEL ctr-3 /run/netns/$RUN-pod3 eth0 "$CONF"
ip netns del $RUN-pod2
check "DEL after the netns is gone succeeds" cni $NODE DEL ctr-2 /run/netns/$RUN-pod2 eth0 "$CONF"
check "...and releases the lease" test ! -e "$LEASES/${IP[2]}"
check "DEL with an empty CNI_NETNS succeeds (containerd sends that)" cni $NODE DEL ctr-never "" eth0 "$CONF"

echo "== GC and STATUS"
new_ns podg
cni $NODE ADD ctr-g /run/netns/$RUN-podg eth0 "$CONF" >/dev/null
gc_conf=$(jq -c '. + {"cni.dev/valid-attachments": [{containerID: "ctr-1", ifname: "eth0"}]}' <<<"$CONF")
vethg=$(ip netns exec $RUN-$NODE ip -o link show master cni0 | grep -o 'veth[0-9a-f]*' | while read -r v; do
    ip netns exec $RUN-$NODE ip -d link show "$v" | grep -q 'alias bridge-ipam podnet ctr-g eth0' && echo "$v"; done)
check "the host veth carries its attachment as alias ($vethg)" test -n "$vethg"
check "GC succeeds" cni $NODE GC "" "" "" "$gc_conf"
check "...keeps the lease of a listed attachment" test -e "$LEASES/${IP[1]}"
check "...and releases the lease of an unlisted one" bash -c "! grep -rl ctr-g '$LEASES' >/dev/null 2>&1"
check "...deletes the host veth of the unlisted attachment although its pod still exists" \
    bash -c "! ip netns exec $RUN-$NODE ip link show $vethg >/dev/null 2>&1 && ! ip netns exec $RUN-podg ip link show eth0 >/dev/null 2>&1"
check "...and leaves the listed attachment working" ping_ok $NODE "${IP[1]}"
cni $NODE DEL ctr-g /run/netns/$RUN-podg eth0 "$CONF" >/dev/null
check "STATUS succeeds when addresses are free" cni $NODE STATUS "" "" "" "$CONF"
out=$(cni $NODE STATUS "" "" "" "$TINY")
check "STATUS is code 50 when the range is exhausted" test "$(jq -r .code <<<"$out")" = 50
cni $NODE DEL holder /run/netns/$RUN-holder eth0 "$TINY" >/dev/null
check "STATUS succeeds again once the address is released" cni $NODE STATUS "" "" "" "$TINY"
out=$(cni $NODE GC "" "" "" "$(conf podnet $SUBNET '' '' 1.0.0)")
check "GC under cniVersion 1.0.0 is refused with code 1" test "$(jq -r .code <<<"$out")" = 1
rm -rf "$DATA_DIR/tiny"

echo "== Delegated IPAM (the reference static plugin through CNI_PATH)"
# Debian's reference plugins speak CNI up to 1.0.0.
static_conf=$(jq -c '.cniVersion = "1.0.0" | .ipam = {type: "static", addresses: [{address: "10.244.1.77/24", gateway: "10.244.1.1"}]}' <<<"$CONF")
out=$(cni $NODE ADD ctr-s "$PODX" eth0 "$static_conf")
check "ADD with ipam type static gets the static address" test "$(jq -r '.ips[0].address' <<<"$out")" = "10.244.1.77/24"
check "...which is reachable from the node" ping_ok $NODE 10.244.1.77
check "DEL with delegated IPAM succeeds" cni $NODE DEL ctr-s "$PODX" eth0 "$static_conf"

echo "== Sharing a data directory with the reference host-local"
ref_ipam=$(jq -c '.ipam' <<<"$(conf podnet $SUBNET)")
ref_out=$(printf '{"cniVersion":"1.0.0","name":"podnet","ipam":%s}' "$ref_ipam" | ip netns exec $RUN-$NODE env -i CNI_COMMAND=ADD CNI_CONTAINERID=ref-1 CNI_NETNS=$PODX CNI_IFNAME=eth1 CNI_PATH=$PLUGIN_DIR $REFERENCE_DIR/host-local)
ref_ip=$(jq -r '.ips[0].address' <<<"$ref_out" | cut -d/ -f1)
new_ns podh
out=$(cni $NODE ADD ctr-h /run/netns/$RUN-podh eth0 "$CONF")
check "an address held by the reference host-local ($ref_ip) is not handed out again" \
    bash -c "[ -n '$ref_ip' ] && [ '$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)' != '$ref_ip' ]"
cni $NODE DEL ctr-h /run/netns/$RUN-podh eth0 "$CONF" >/dev/null
printf '{"cniVersion":"1.0.0","name":"podnet","ipam":%s}' "$ref_ipam" | ip netns exec $RUN-$NODE env -i CNI_COMMAND=DEL CNI_CONTAINERID=ref-1 CNI_NETNS=$PODX CNI_IFNAME=eth1 CNI_PATH=$PLUGIN_DIR $REFERENCE_DIR/host-local
check "...and the reference host-local releases it again" test ! -e "$LEASES/$ref_ip"

echo "== Concurrency: 24 ADDs at once, then 24 DELs at once"
for i in $(seq 1 24); do new_ns c$i; done
for i in $(seq 1 24); do cni $NODE ADD cc-$i /run/netns/$RUN-c$i eth0 "$CONF" >"$RUN_DIR/add-$i.json" & done
wait
ok=$(for i in $(seq 1 24); do jq -r '.ips[0].address // empty' "$RUN_DIR/add-$i.json"; done | sort | uniq | wc -l)
check "24 concurrent ADDs all succeed with 24 distinct addresses" test "$ok" = 24
check "...and 24 lease files" test "$(grep -l '^cc-' "$LEASES"/10.* 2>/dev/null | wc -l)" = 24
for i in $(seq 1 24); do cni $NODE DEL cc-$i /run/netns/$RUN-c$i eth0 "$CONF" & done
wait
check "24 concurrent DELs leave no lease" test "$(grep -l '^cc-' "$LEASES"/10.* 2>/dev/null | wc -l)" = 0
check "...and no veth of theirs on the bridge" test "$(ip netns exec $RUN-$NODE ip -o link show master cni0 | wc -l)" = 1

echo "== Teardown leaves nothing"
cni $NODE DEL ctr-1 /run/netns/$RUN-pod1 eth0 "$CONF" >/dev/null
check "after the last DEL no lease file remains" test -z "$(ls "$LEASES" | grep -v -e '^lock$' -e '^last_reserved_ip')"
check "...and no veth remains on the bridge" test "$(ip netns exec $RUN-$NODE ip -o link show master cni0 | wc -l)" = 0
finish
