#!/usr/bin/env bash
# The lease index (issue 22 item 2): DEL without prevResult opens no lease but its own while the
# index is complete, and still finds the leases that the reference host-local wrote into the same
# directory (and host-local still finds ours).
RUN=${RUN:-p22i$$}
source "$(dirname "$0")/lib.sh"
setup_run
new_ns node
new_ns a
node() { ip netns exec $RUN-node "$@"; }
CONF=$(conf shared 10.97.0.0/16 '"bridge":"idx0"')
D=$DATA_DIR/shared
HL_CONF=$(jq -c '{cniVersion: "1.0.0", name, ipam}' <<<"$CONF")
# host_local COMMAND ID IFNAME: the reference host-local on the same network and directory.
host_local() {
    printf '%s' "$HL_CONF" | node env -i PATH="$PATH" CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$RUN-a \
        CNI_IFNAME=$3 CNI_PATH="$PLUGIN_DIR" "$REFERENCE_DIR/host-local"
}
# opened_by_del ID IFNAME [CONFIG]: lease-dir files a DEL opens (the dir, the lock, leases).
opened_by_del() {
    printf '%s' "${3:-$CONF}" | node env -i PATH="$PATH" CNI_COMMAND=DEL CNI_CONTAINERID=$1 CNI_NETNS=/run/netns/$RUN-a CNI_IFNAME=$2 \
        CNI_PATH="$PLUGIN_DIR" timeout 30 strace -f -e trace=openat -o /dev/stdout "$PLUGIN_DIR/bridge-ipam" | grep -c "\"$D\"\|openat([0-9]"
}
leased() { test -e "$D/$1"; }

echo "== 250 leases of another writer, then ours"
mkdir -p "$D"
for i in $(seq 10 259); do printf 'other-%d\r\neth0' $i >"$D/10.97.200.$((i - 9))"; done
out=$(cni node ADD mine /run/netns/$RUN-a eth0 "$CONF"); mine=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
check "ADD among them takes $mine" test -n "$mine"
opened=$(opened_by_del nobody eth0)
check "the first DEL after the other writer reads every lease: opens $opened files (every lease)" test "$opened" -ge 250
opened=$(opened_by_del nobody eth0)
check "the next DEL without prevResult opens $opened (2: the dir, the lock)" test "$opened" -le 2
opened=$(opened_by_del mine eth0)
check "DEL of our pod without prevResult opens $opened (3: dir, lock, its lease) and releases it" \
    test "$opened" -le 3 -a ! -e "$D/$mine"

echo "== host-local writes into the same directory"
hl=$(host_local ADD hl1 eth1 | jq -r '.ips[0].address' | cut -d/ -f1)
check "host-local's ADD takes $hl" leased "$hl"
check "its lease file has no index entry" test ! -L "$D/.by.hl1:eth1"
check "our DEL without prevResult finds host-local's lease" cni node DEL hl1 /run/netns/$RUN-a eth1 "$CONF"
check "...and released it" bash -c "! test -e '$D/$hl'"
out=$(cni node ADD ours2 /run/netns/$RUN-a eth0 "$CONF"); o2=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
hl2=$(host_local ADD hl2 eth1 | jq -r '.ips[0].address' | cut -d/ -f1)
check "host-local's next ADD ($hl2) steers clear of ours ($o2)" test -n "$hl2" -a "$hl2" != "$o2"
check "host-local's DEL finds ours" host_local DEL ours2 eth0
check "...and released it" bash -c "! test -e '$D/$o2'"
check "our DEL of host-local's second lease" cni node DEL hl2 /run/netns/$RUN-a eth1 "$CONF"
check "...released it" bash -c "! test -e '$D/$hl2'"
# A lease host-local wrote within the same clock tick as our last change still shows.
out=$(cni node ADD t1 /run/netns/$RUN-a eth0 "$CONF")
hl3=$(host_local ADD hl3 eth1 | jq -r '.ips[0].address' | cut -d/ -f1)
check "right after our ADD, host-local's lease $hl3 is released by our DEL without prevResult" \
    bash -c "$(declare -f); $(declare -p RUN PLUGIN_DIR CONF); cni node DEL hl3 /run/netns/$RUN-a eth1 '$CONF' && ! test -e '$D/$hl3'"
cni node DEL t1 /run/netns/$RUN-a eth0 "$CONF" >/dev/null
for i in $(seq 1 250); do rm -f "$D/10.97.200.$i"; done  # the other writer releases its 250
cni node DEL nobody /run/netns/$RUN-a eth0 "$CONF" >/dev/null  # ...and the next DEL rebuilds the index
left=$(ls -A "$D" | grep -v '^lock$\|^last_reserved_ip\.\|^\.gateway\.' | tr '\n' ' ')
check "nothing left but the lock, the hint and the gateway record, no index entry: '${left}'" test -z "$left"
finish
