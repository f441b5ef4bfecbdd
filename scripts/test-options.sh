#!/usr/bin/env bash
# The reference bridge's remaining options: layer 2 only ("ipam": {}), args.cni.mac,
# macspoofchk, enabledad, disableContainerInterface, portIsolation; the VLAN options and
# ipMasqBackend "iptables" refused; more addresses per family than a 0.1.0/0.2.0 result can show
# refused before anything is leased. Each feature runs on a node namespace of its own.
source "$(dirname "$0")/lib.sh"
setup_run

# cfg NAME EXTRA_TOP_LEVEL IPAM_JSON [VERSION]
cfg() {
    printf '{"cniVersion":"%s","name":"%s","type":"bridge-ipam","bridge":"cni0"%s,"ipam":%s}' \
        "${4:-1.1.0}" "$1" "${2:+,$2}" "$3"
}
v4ipam() { printf '{"type":"host-local","subnet":"%s","dataDir":"%s"}' "$1" "$DATA_DIR"; }
dsipam() {
    printf '{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"%s"}],[{"subnet":"%s"}]]}' "$DATA_DIR" "$1" "$2"
}
code_of() { jq -r '.code // empty' <<<"$1" 2>/dev/null; }
# check_code NODE ID NETNS CONFIG ADD_RESULT: CHECK's error code (empty when it passed).
check_code() { code_of "$(cni "$1" CHECK "$2" "$3" eth0 "$(jq -c --argjson p "$5" '. + {prevResult: $p}' <<<"$4")")"; }
ns_mac() { ip -n "$RUN-$1" -o link show "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
nft_rules() { ip netns exec "$RUN-$1" nft list table bridge bridge_ipam 2>/dev/null | grep -c 'ether saddr' || true; }
pod_adds_v4() { ip -n "$RUN-$1" -4 -o addr show dev eth0 | wc -l; }

echo "== layer 2 only (\"ipam\": {})"
new_ns l2; new_ns l2a; new_ns l2b
L2=$(cfg l2net '' '{}')
ra=$(cni l2 ADD l2a /run/netns/$RUN-l2a eth0 "$L2"); rca=$?
rb=$(cni l2 ADD l2b /run/netns/$RUN-l2b eth0 "$L2")
check "ADD succeeds with an empty ipam section" test $rca = 0
check "the result lists interfaces and no address" test "$(jq -c '[(.interfaces|length), (.ips // [] | length)]' <<<"$ra")" = "[3,0]"
check "the pod interface is up without an IPv4 address" bash -c "ip -n $RUN-l2a link show eth0 | grep -q 'state UP' && [ \$(ip -n $RUN-l2a -4 -o addr show dev eth0 | wc -l) = 0 ]"
check "the bridge has no IPv4 address" test "$(ip -n $RUN-l2 -4 -o addr show dev cni0 | wc -l)" = 0
ip -n $RUN-l2a addr add 192.0.2.1/24 dev eth0; ip -n $RUN-l2b addr add 192.0.2.2/24 dev eth0
check "pods on the bridge reach each other with addresses of their own" ping_ok l2a 192.0.2.2
check "CHECK passes" cni l2 CHECK l2a /run/netns/$RUN-l2a eth0 "$(jq -c --argjson p "$ra" '. + {prevResult: $p}' <<<"$L2")"
check "ipMasq with an empty ipam is refused (code 7)" test "$(code_of "$(cni l2 ADD l2c /run/netns/$RUN-l2a eth9 "$(cfg l2net '"ipMasq":true' '{}')")")" = 7
check "an ipam section with keys but no type is refused (code 7)" test "$(code_of "$(cni l2 ADD l2c /run/netns/$RUN-l2a eth9 "$(cfg l2net '' '{"subnet":"10.1.0.0/24"}')")")" = 7
check "DEL succeeds" cni l2 DEL l2a /run/netns/$RUN-l2a eth0 "$L2"
check "the pod interface is gone" bash -c "! ip -n $RUN-l2a link show eth0 >/dev/null 2>&1"
check "GC succeeds and deletes an unlisted attachment's host veth" bash -c "
    cni() { $(declare -f cni | tail -n +2); }
    printf '%s' '$(jq -c '. + {"cni.dev/valid-attachments": []}' <<<"$L2")' | ip netns exec $RUN-l2 env -i CNI_COMMAND=GC CNI_PATH=$PLUGIN_DIR $PLUGIN_DIR/bridge-ipam &&
    [ \$(ip -n $RUN-l2 -o link show type veth | wc -l) = 0 ]"

echo "== disableContainerInterface"
new_ns dci; new_ns dcia
r=$(cni dci ADD dcia /run/netns/$RUN-dcia eth0 "$(cfg dcinet '"disableContainerInterface":true' '{}')")
check "ADD succeeds" test -z "$(code_of "$r")"
check "the pod interface is left down" bash -c "ip -n $RUN-dcia link show eth0 | grep -q 'state DOWN'"
check "...while the host end is on the bridge" bash -c "ip -n $RUN-dci -o link show master cni0 | grep -q veth"
check "combined with IPAM it is refused (code 7)" test "$(code_of "$(cni dci ADD dcib /run/netns/$RUN-dcia eth1 "$(cfg dcinet '"disableContainerInterface":true' "$(v4ipam 10.10.0.0/24)")")")" = 7
DCI=$(cfg dcinet '"disableContainerInterface":true' '{}')
check "CHECK passes while the pod interface is down" test -z "$(check_code dci dcia /run/netns/$RUN-dcia "$DCI" "$r")"
ip -n $RUN-dcia link set eth0 up
check "CHECK fails (code 105) once it is brought up by hand (issue 22 item 4)" test "$(check_code dci dcia /run/netns/$RUN-dcia "$DCI" "$r")" = 105

echo "== args.cni.mac"
new_ns mac; new_ns maca; new_ns macb; new_ns macc
r=$(cni mac ADD maca /run/netns/$RUN-maca eth0 "$(cfg macnet '"args":{"cni":{"mac":"02:aa:00:00:00:01"}}' "$(v4ipam 10.11.0.0/24)")")
check "args.cni.mac sets the pod interface's MAC" test "$(ns_mac maca eth0)" = 02:aa:00:00:00:01
check "...and the result shows it" test "$(jq -r '.interfaces[2].mac' <<<"$r")" = 02:aa:00:00:00:01
cni mac ADD macb /run/netns/$RUN-macb eth0 "$(cfg macnet '"args":{"cni":{"mac":"02:aa:00:00:00:02"}}' "$(v4ipam 10.11.0.0/24)")" MAC=02:aa:00:00:00:99 >/dev/null
check "args.cni.mac takes precedence over CNI_ARGS MAC=" test "$(ns_mac macb eth0)" = 02:aa:00:00:00:02
cni mac ADD macc /run/netns/$RUN-macc eth0 "$(cfg macnet '"args":{"cni":{"mac":"02:aa:00:00:00:03"}},"runtimeConfig":{"mac":"02:aa:00:00:00:33"}' "$(v4ipam 10.11.0.0/24)")" >/dev/null
check "runtimeConfig.mac takes precedence over args.cni.mac" test "$(ns_mac macc eth0)" = 02:aa:00:00:00:33
check "a malformed args.cni.mac is refused (code 7)" test "$(code_of "$(cni mac ADD macd /run/netns/$RUN-macc eth1 "$(cfg macnet '"args":{"cni":{"mac":"nonsense"}}' "$(v4ipam 10.11.0.0/24)")")")" = 7

echo "== macspoofchk"
new_ns sp; new_ns spa; new_ns spb; new_ns spc
SP=$(cfg spnet '"isGateway":true,"macspoofchk":true' "$(v4ipam 10.12.0.0/24)")
ra=$(cni sp ADD spa /run/netns/$RUN-spa eth0 "$SP")
rb=$(cni sp ADD spb /run/netns/$RUN-spb eth0 "$SP")
bip=$(jq -r '.ips[0].address' <<<"$rb" | cut -d/ -f1)
check "one rule per attachment in table bridge bridge_ipam" test "$(nft_rules sp)" = 2
check "the rule names the host veth and the pod's MAC" bash -c "ip netns exec $RUN-sp nft list table bridge bridge_ipam | grep -q \"iifname \\\"$(jq -r '.interfaces[1].name' <<<"$ra")\\\" ether saddr != $(ns_mac spa eth0) drop\""
check "a pod with its own MAC reaches the other pod" ping_ok spa "$bip"
check "CHECK passes" cni sp CHECK spa /run/netns/$RUN-spa eth0 "$(jq -c --argjson p "$ra" '. + {prevResult: $p}' <<<"$SP")"
orig=$(ns_mac spa eth0)
ip -n $RUN-spa link set eth0 address 02:66:66:66:66:66
ip -n $RUN-spa neigh flush all; ip -n $RUN-spb neigh flush all
check "after changing its MAC the pod gets nothing through (to the pod)" bash -c "! ip netns exec $RUN-spa ping -n -q -c 2 -W 1 $bip >/dev/null 2>&1"
check "...nor to its gateway" bash -c "! ip netns exec $RUN-spa ping -n -q -c 2 -W 1 10.12.0.1 >/dev/null 2>&1"
ip -n $RUN-spa link set eth0 address "$orig"
check "with its own MAC back, it gets through again" ping_ok spa "$bip"
check "DEL removes the attachment's rule" bash -c "cni() { $(declare -f cni | tail -n +2); }; RUN=$RUN PLUGIN_DIR=$PLUGIN_DIR; cni sp DEL spa /run/netns/$RUN-spa eth0 '$SP' && [ \$(ip netns exec $RUN-sp nft list table bridge bridge_ipam | grep -c 'ether saddr') = 1 ]"
check "CHECK without the rule fails (code 105)" bash -c "
    ip netns exec $RUN-sp nft flush chain bridge bridge_ipam macspoof
    out=\$(printf '%s' '$(jq -c --argjson p "$rb" '. + {prevResult: $p}' <<<"$SP")' | ip netns exec $RUN-sp env -i CNI_COMMAND=CHECK CNI_CONTAINERID=spb CNI_NETNS=/run/netns/$RUN-spb CNI_IFNAME=eth0 CNI_PATH=$PLUGIN_DIR $PLUGIN_DIR/bridge-ipam)
    [ \"\$(jq -r .code <<<\"\$out\")\" = 105 ]"
cni sp DEL spb /run/netns/$RUN-spb eth0 "$SP" >/dev/null
cni sp ADD spb /run/netns/$RUN-spb eth0 "$SP" >/dev/null
cni sp ADD spc /run/netns/$RUN-spc eth0 "$SP" >/dev/null
gc=$(jq -c '. + {"cni.dev/valid-attachments": [{"containerID":"spb","ifname":"eth0"}]}' <<<"$SP")
printf '%s' "$gc" | ip netns exec $RUN-sp env -i CNI_COMMAND=GC CNI_PATH=$PLUGIN_DIR $PLUGIN_DIR/bridge-ipam
check "GC removes the rules of unlisted attachments and keeps the listed one" test "$(nft_rules sp)" = 1
r=$(cfg spnet '"isGateway":true,"macspoofchk":true' "$(v4ipam 10.12.0.0/24)")
check "a failed ADD leaves no rule behind" bash -c "
    out=\$(printf '%s' '$(cfg spnet '"isGateway":true,"macspoofchk":true' "$(v4ipam 10.12.0.0/24)" | jq -c '.ipam.routes=[{"dst":"10.99.0.0/24","gw":"10.77.0.1"}]')' | ip netns exec $RUN-sp env -i CNI_COMMAND=ADD CNI_CONTAINERID=spd CNI_NETNS=/run/netns/$RUN-spc CNI_IFNAME=eth5 CNI_PATH=$PLUGIN_DIR $PLUGIN_DIR/bridge-ipam)
    [ -n \"\$(jq -r '.code // empty' <<<\"\$out\")\" ] && [ \$(ip netns exec $RUN-sp nft list table bridge bridge_ipam | grep -c 'ether saddr') = 1 ]"

echo "== portIsolation"
new_ns iso; new_ns isoa; new_ns isob
ISO=$(cfg isonet '"isGateway":true,"portIsolation":true' "$(v4ipam 10.13.0.0/24)")
ra=$(cni iso ADD isoa /run/netns/$RUN-isoa eth0 "$ISO")
rb=$(cni iso ADD isob /run/netns/$RUN-isob eth0 "$ISO")
aip=$(jq -r '.ips[0].address' <<<"$ra" | cut -d/ -f1); bip=$(jq -r '.ips[0].address' <<<"$rb" | cut -d/ -f1)
check "the host veth is an isolated bridge port" bash -c "ip -n $RUN-iso -d link show $(jq -r '.interfaces[1].name' <<<"$ra") | grep -q 'isolated on'"
check "isolated pods do not reach each other" bash -c "! ip netns exec $RUN-isoa ping -n -q -c 2 -W 1 $bip >/dev/null 2>&1"
check "...but reach their gateway" ping_ok isoa 10.13.0.1
check "...and the node reaches them" ping_ok iso "$aip"
veth=$(jq -r '.interfaces[1].name' <<<"$ra")
check "CHECK passes on the isolated port" test -z "$(check_code iso isoa /run/netns/$RUN-isoa "$ISO" "$ra")"
ip -n $RUN-iso link set "$veth" type bridge_slave isolated off
check "CHECK fails (code 105) once isolation is turned off by hand (issue 22 item 4)" \
    test "$(check_code iso isoa /run/netns/$RUN-isoa "$ISO" "$ra")" = 105
HP=$(cfg isonet '"isGateway":true,"hairpinMode":true' "$(v4ipam 10.13.0.0/24)")
new_ns hpa
rh=$(cni iso ADD hpa /run/netns/$RUN-hpa eth0 "$HP")
hveth=$(jq -r '.interfaces[1].name' <<<"$rh")
check "hairpinMode: the host veth has hairpin on" bash -c "ip -n $RUN-iso -d link show $hveth | grep -q 'hairpin on'"
check "CHECK passes with hairpin on" test -z "$(check_code iso hpa /run/netns/$RUN-hpa "$HP" "$rh")"
ip -n $RUN-iso link set "$hveth" type bridge_slave hairpin off
check "CHECK fails (code 105) once hairpin is turned off by hand (issue 22 item 4)" \
    test "$(check_code iso hpa /run/netns/$RUN-hpa "$HP" "$rh")" = 105

echo "== enabledad"
new_ns dad; new_ns dada
DAD=$(cfg dadnet '"isGateway":true,"enabledad":true' "$(dsipam 10.14.0.0/24 fd00:14::/64)")
r=$(cni dad ADD dada /run/netns/$RUN-dada eth0 "$DAD")
check "ADD succeeds" test -z "$(code_of "$r")"
check "ADD returned with the pod's IPv6 address past DAD (not tentative, not nodad)" bash -c "
    a=\$(ip -n $RUN-dada -6 -o addr show dev eth0 scope global); [ -n \"\$a\" ] && ! grep -qE 'tentative|nodad' <<<\"\$a\""
check "accept_dad is on in the pod" test "$(ip netns exec $RUN-dada cat /proc/sys/net/ipv6/conf/eth0/accept_dad)" = 1
new_ns nodad; new_ns nodada
r=$(cni nodad ADD nodada /run/netns/$RUN-nodada eth0 "$(cfg nodadnet '"isGateway":true' "$(dsipam 10.15.0.0/24 fd00:15::/64)")")
check "without enabledad the address is added with nodad and accept_dad is 0" bash -c "
    ip -n $RUN-nodada -6 -o addr show dev eth0 scope global | grep -q nodad && [ \$(ip netns exec $RUN-nodada cat /proc/sys/net/ipv6/conf/eth0/accept_dad) = 0 ]"
new_ns v6off; new_ns v6offa
ip netns exec $RUN-v6offa sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'
r=$(cni v6off ADD v6offa /run/netns/$RUN-v6offa eth0 "$(cfg v6offnet '"isGateway":true' "$(dsipam 10.16.0.0/24 fd00:16::/64)")")
check "a pod namespace with IPv6 disabled gets it enabled on its interface and lo" bash -c "
    [ -z \"$(code_of "$r")\" ] && ip -n $RUN-v6offa -6 -o addr show dev eth0 | grep -q fd00:16:: && [ \$(ip netns exec $RUN-v6offa cat /proc/sys/net/ipv6/conf/lo/disable_ipv6) = 0 ]"
check "...and answers at once" ping_ok v6offa fd00:16::1

echo "== refused options"
new_ns ref; new_ns refa
refused() {  # NAME EXPECTED_CODE CONFIG
    local out
    out=$(cni ref ADD refa /run/netns/$RUN-refa eth0 "$3")
    if [ "$(code_of "$out")" = "$2" ]; then pass "$1 ($(jq -r .msg <<<"$out"))"; else fail "$1: $out"; fi
}
refused "vlan is refused (code 2)" 2 "$(cfg refnet '"vlan":5' "$(v4ipam 10.17.0.0/24)")"
refused "vlanTrunk is refused (code 2)" 2 "$(cfg refnet '"vlanTrunk":[{"id":5}]' "$(v4ipam 10.17.0.0/24)")"
refused "preserveDefaultVlan false is refused (code 2)" 2 "$(cfg refnet '"preserveDefaultVlan":false' "$(v4ipam 10.17.0.0/24)")"
refused "ipMasqBackend iptables is refused (code 2)" 2 "$(cfg refnet '"ipMasq":true,"ipMasqBackend":"iptables"' "$(v4ipam 10.17.0.0/24)")"
refused "hairpinMode with promiscMode is refused (code 7)" 7 "$(cfg refnet '"hairpinMode":true,"promiscMode":true' "$(v4ipam 10.17.0.0/24)")"
TWO6='{"type":"host-local","dataDir":"'$DATA_DIR'","ranges":[[{"subnet":"10.17.0.0/24"}],[{"subnet":"fd00:17:1::/64"}],[{"subnet":"fd00:17:2::/64"}]]}'
refused "two IPv6 range sets with cniVersion 0.2.0 are refused (code 1)" 1 "$(cfg refnet '' "$TWO6" 0.2.0)"
check "...before anything is leased" test ! -e "$DATA_DIR/refnet"
r=$(cni ref ADD refa /run/netns/$RUN-refa eth0 "$(cfg refnet '' "$TWO6" 0.3.1)")
check "...while 0.3.1 gets all three addresses" test "$(jq '.ips | length' <<<"$r")" = 3
check "preserveDefaultVlan true (the default) is accepted" bash -c "
    out=\$(printf '%s' '$(cfg refnet2 '"preserveDefaultVlan":true' "$(v4ipam 10.18.0.0/24)")' | ip netns exec $RUN-ref env -i CNI_COMMAND=ADD CNI_CONTAINERID=refb CNI_NETNS=/run/netns/$RUN-refa CNI_IFNAME=eth1 CNI_PATH=$PLUGIN_DIR $PLUGIN_DIR/bridge-ipam); [ -z \"\$(jq -r '.code // empty' <<<\"\$out\")\" ]"

finish
