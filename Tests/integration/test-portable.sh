#!/usr/bin/env bash
# The installed plugin on an older node: a Debian 11 root filesystem (glibc 2.31), made from the
# mirror's packages with mmdebstrap exactly as a node has it (minbase plus libmnl0) and cached in
# .build/debian11-root. `make install DESTDIR=` lays the plugin into that root; then, chrooted
# into it, the plugin answers --version and runs ADD, CHECK, STATUS and DEL on a pod, with its
# network in a namespace playing the node and the pod in another.
# The root is never changed: every run sees it through an overlay whose upper layer is in the
# run's directory, mounted only in private mount namespaces, which also bind /proc, /run/netns
# and the run's lease directory (at /var/lib/cni/networks) into it.
source "$(dirname "$0")/lib/lib.sh"

CACHE=$REPO/.build/debian11-root
ROOT=$RUN_DIR/root
LEASES=$DATA_DIR/podnet
setup_run
mkdir -p "$ROOT" "$RUN_DIR/upper" "$RUN_DIR/work"

echo "== The Debian 11 root"
if ! sh "$REPO/scripts/debian-root.sh" "$CACHE" bullseye libmnl0 >"$RUN_DIR/root.log" 2>&1; then
    fail "the Debian 11 root could be made (mmdebstrap): $(tail -3 "$RUN_DIR/root.log" | tr '\n' ' ')"
    finish
    exit 1
fi

# in_root COMMAND...: COMMAND in a private mount namespace where $ROOT is the Debian 11 root.
in_root() {
    unshare -m --propagation private sh -c '
        mount -t overlay overlay -o lowerdir="$1",upperdir="$2/upper",workdir="$2/work" "$2/root" || exit 125
        shift 2
        exec "$@"' in_root "$CACHE" "$RUN_DIR" "$@"
}
# chrooted [NODE] -- COMMAND...: COMMAND run inside the root (in namespace $RUN-NODE if given),
# with /proc, /run/netns and the lease directory bound in. Each call has an upper layer of its
# own over the run's (read-only here): overlayfs refuses a workdir another mount is using, so
# calls running at once (two ADDs) must not share one.
chrooted() {
    local netns=() layer
    [ "$1" != -- ] && netns=(ip netns exec "$RUN-$1") && shift
    shift
    layer=$(mktemp -d "$RUN_DIR/call.XXXXXX") && mkdir "$layer/upper" "$layer/work" || return 125
    "${netns[@]}" unshare -m --propagation private sh -c '
        root=$1 leases=$2
        mount -t overlay overlay -o lowerdir="$4/upper:$3",upperdir="$5/upper",workdir="$5/work" "$root" || exit 125
        mkdir -p "$root/run/netns" "$root/var/lib/cni/networks"
        mount --rbind /proc "$root/proc" && mount --rbind /run/netns "$root/run/netns" &&
            mount --bind "$leases" "$root/var/lib/cni/networks" || exit 125
        shift 5
        exec chroot "$root" "$@"' chrooted "$ROOT" "$DATA_DIR" "$CACHE" "$RUN_DIR" "$layer" "$@"
}
# plugin NODE VERB CONTAINER_ID NETNS CONFIG: the installed plugin, run as a runtime would.
plugin() {
    printf '%s' "$5" | chrooted "$1" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND="$2" \
        CNI_CONTAINERID="$3" CNI_NETNS="$4" CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin timeout -k 2 30 /opt/cni/bin/bridge-ipam
}

glibc=$(chrooted -- /lib/x86_64-linux-gnu/libc.so.6 | head -1)
check "the root's C library is glibc 2.31 ($glibc)" grep -q 'release version 2\.31' <<<"$glibc"
check "the root has libmnl0, and neither libnftnl nor a Swift runtime" \
    sh -c "test -e '$CACHE'/usr/lib/x86_64-linux-gnu/libmnl.so.0 && ! ls -R '$CACHE'/usr/lib | grep -qE 'libnftnl|swift'"
# The control: a program of the build machine's own (Debian 12, glibc 2.36) fails there, as the
# plugin did before it was linked against glibc 2.31.
out=$(cp /usr/bin/true "$RUN_DIR/upper/true-debian12" && chrooted -- /true-debian12 2>&1)
check "a program built against glibc 2.34 fails in the root ($(head -1 <<<"$out" | sed 's/.*: //'))" \
    grep -q "GLIBC_2.3[4-9]' not found" <<<"$out"

echo "== make install DESTDIR=<the Debian 11 root>"
in_root make -C "$REPO" --no-print-directory install DESTDIR="$ROOT" >"$RUN_DIR/install.log" 2>&1
check "make install laid the plugin into the root" test -x "$RUN_DIR/upper/opt/cni/bin/bridge-ipam"
check "the install report finds libmnl.so.0 in the root" \
    grep -q 'libmnl.so.0 (done: /usr/lib/x86_64-linux-gnu/libmnl.so.0 is there)' "$RUN_DIR/install.log"
INSTALLED=$RUN_DIR/upper/opt/cni/bin/bridge-ipam
needed=$(objdump -T "$INSTALLED" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
check "the installed plugin needs at most GLIBC_2.31 (objdump -T: highest $needed)" \
    test "$(printf '%s\n' "$needed" GLIBC_2.31 | sort -V | tail -1)" = GLIBC_2.31
libs=$(objdump -p "$INSTALLED" | awk '/NEEDED/ { print $2 }' | tr '\n' ' ')
check "it needs no shared library but glibc's and libmnl's ($libs)" \
    test -z "$(tr ' ' '\n' <<<"$libs" | grep . | grep -vE '^(libc|libm|libpthread|libdl)\.so\.[0-9]$|^ld-linux-x86-64\.so\.2$|^libmnl\.so\.0$')"

echo "== In the root: --version"
out=$(chrooted -- /opt/cni/bin/bridge-ipam --version 2>&1)
check "--version runs ($(head -1 <<<"$out"))" grep -q '^CNI bridge-ipam plugin v' <<<"$out"
check "it reports the version of the build" test "$(head -1 <<<"$out")" = "$("$BIN" --version | head -1)"

echo "== In the root: ADD, CHECK, STATUS, DEL in a node namespace"
new_ns node
new_ns pod1
new_ns pod2
new_ns pod3
# The default lease directory (/var/lib/cni/networks, the run's own here) and ipMasq, so the
# nftables path through the static libnftnl runs too.
CONF=$(conf podnet 10.244.1.0/24 '"ipMasq":true' | jq -c 'del(.ipam.dataDir)')
out=$(echo '{"cniVersion":"1.1.0"}' | chrooted node -- env -i CNI_COMMAND=VERSION /opt/cni/bin/bridge-ipam)
check "VERSION lists 1.1.0" grep -q '"1.1.0"' <<<"$(jq -c .supportedVersions <<<"$out")"
RESULT=$(plugin node ADD ctr-1 /run/netns/$RUN-pod1 "$CONF")
check "ADD pod1 succeeds ($(jq -c '.ips[0].address' <<<"$RESULT" 2>/dev/null || echo "$RESULT"))" \
    test "$(jq -r '.ips[0].address' <<<"$RESULT" 2>/dev/null)" = 10.244.1.2/24
check "pod1's eth0 has 10.244.1.2" sh -c "ip -n $RUN-pod1 -o addr show eth0 | grep -q 'inet 10.244.1.2/24'"
check "the node reaches pod1" ping_ok node 10.244.1.2
check "the lease is in the run's lease directory, in host-local's layout" \
    test "$(tr '\r\n' '|_' <"$LEASES/10.244.1.2" 2>/dev/null)" = "ctr-1|_eth0"
check "ipMasq's nftables rule is in the node" sh -c "ip netns exec $RUN-node nft list ruleset | grep -q masquerade"
WITH_PREV=$(jq -c --argjson r "$RESULT" '. + {prevResult: $r}' <<<"$CONF")
check "CHECK pod1 succeeds" plugin node CHECK ctr-1 /run/netns/$RUN-pod1 "$WITH_PREV"
check "STATUS succeeds" plugin node STATUS "" "" "$CONF"

# Two ADDs at once from inside the root: the lease lock works there too.
plugin node ADD ctr-2 /run/netns/$RUN-pod2 "$CONF" >"$RUN_DIR/add2.out" &
plugin node ADD ctr-3 /run/netns/$RUN-pod3 "$CONF" >"$RUN_DIR/add3.out" &
wait
both=$(jq -r '.ips[0].address' "$RUN_DIR/add2.out" "$RUN_DIR/add3.out" 2>/dev/null | sort | tr '\n' ' ')
check "two ADDs at once get 10.244.1.3 and 10.244.1.4 ($both)" test "$both" = "10.244.1.3/24 10.244.1.4/24 "
check "pod2 and pod3 reach each other" ping_ok pod2 "$(jq -r '.ips[0].address' "$RUN_DIR/add3.out" | cut -d/ -f1)"

check "DEL pod1 succeeds" plugin node DEL ctr-1 /run/netns/$RUN-pod1 "$WITH_PREV"
check "the lease is released" test ! -e "$LEASES/10.244.1.2"
check "pod1's interface is gone" sh -c "! ip -n $RUN-pod1 link show eth0 2>/dev/null"
check "DEL pod1 again succeeds (no netns, no prevResult)" plugin node DEL ctr-1 "" "$CONF"
if plugin node DEL ctr-2 /run/netns/$RUN-pod2 "$CONF" && plugin node DEL ctr-3 /run/netns/$RUN-pod3 "$CONF"; then
    pass "DEL pod2 and pod3 succeed"
else
    fail "DEL pod2 and pod3 succeed"
fi
check "no lease is left" test -z "$(ls "$LEASES" | grep -v '^last_reserved_ip' | grep -v '^lock$')"
check "the masquerade rule went with the last pod" sh -c "! ip netns exec $RUN-node nft list ruleset | grep -q masquerade"

echo "== A node without libmnl0"
in_root rm "$ROOT/usr/lib/x86_64-linux-gnu/libmnl.so.0" "$ROOT/usr/lib/x86_64-linux-gnu/libmnl.so.0.2.0"
cp "$REPO/scripts/install-report.sh" "$RUN_DIR/upper/install-report.sh"
out=$(chrooted -- /opt/cni/bin/bridge-ipam --version 2>&1)
check "the plugin fails, naming libmnl.so.0" grep -q 'libmnl.so.0: cannot open shared object file' <<<"$out"
out=$(chrooted -- sh /install-report.sh "" /opt/cni/bin /etc/cni/net.d 2>&1)
check "the install report on that node says the plugin does not run, and why" \
    grep -q 'libmnl.so.0 (NOT DONE: it does not run here: .*libmnl.so.0' <<<"$out"
check "the cached root is unchanged" test -e "$CACHE/usr/lib/x86_64-linux-gnu/libmnl.so.0" -a ! -e "$CACHE/opt/cni/bin/bridge-ipam"

echo "== debian-root.sh, with a stand-in mmdebstrap"
# The cache's rules, without the mirror: a stand-in that makes a tiny root (with an absolute
# symlink, as Debian 11's /lib64 has), logs each call, and fails when asked to.
STUB=$RUN_DIR/stub
mkdir -p "$STUB"
cat >"$STUB/mmdebstrap" <<'SH'
#!/bin/sh
for target; do :; done
echo "$*" >>"$(dirname "$0")/calls"
mkdir -p "$target/lib/x86_64-linux-gnu" "$target/lib64"
echo loader >"$target/lib/x86_64-linux-gnu/ld-2.31.so"
ln -s /lib/x86_64-linux-gnu/ld-2.31.so "$target/lib64/ld-linux-x86-64.so.2"
sleep 1
[ -z "${STUB_FAIL:-}" ]
SH
chmod +x "$STUB/mmdebstrap"
made() { PATH="$STUB:$PATH" STUB_FAIL=${STUB_FAIL:-} sh "$REPO/scripts/debian-root.sh" "$RUN_DIR/cached" bullseye libfoo "$@" >/dev/null 2>&1; }
calls() { wc -l <"$STUB/calls" 2>/dev/null || echo 0; }
made --relative-links
check "it makes the root and marks it complete" test $? -eq 0 -a -e "$RUN_DIR/cached/.complete"
check "...with the absolute symlink made relative, resolving inside the root" \
    test "$(readlink "$RUN_DIR/cached/lib64/ld-linux-x86-64.so.2")" = ../lib/x86_64-linux-gnu/ld-2.31.so -a \
    "$(cat "$RUN_DIR/cached/lib64/ld-linux-x86-64.so.2")" = loader
made --relative-links
check "a complete root is kept: mmdebstrap ran once for two calls" test "$(calls)" = 1
rm "$RUN_DIR/cached/.complete"
made --relative-links
check "an incomplete root (an interrupted run's) is made anew" test "$(calls)" = 2 -a -e "$RUN_DIR/cached/.complete"
rm -rf "$RUN_DIR/cached"
mkdir "$RUN_DIR/cached.tmp.1"   # left by a run killed with -9
STUB_FAIL=1 made --relative-links
check "a failed mmdebstrap fails the call and leaves no root, not even a killed run's" \
    test $? -ne 0 -a -z "$(ls "$RUN_DIR" | grep '^cached' | grep -vx cached.lock)"
made & made & wait
check "two calls at once: the second waits and keeps the first one's root" \
    test "$(calls)" = 4 -a -e "$RUN_DIR/cached/.complete" -a -z "$(ls "$RUN_DIR" | grep '^cached\.tmp')"
check "...and without --relative-links the symlink stays absolute" \
    test "$(readlink "$RUN_DIR/cached/lib64/ld-linux-x86-64.so.2")" = /lib/x86_64-linux-gnu/ld-2.31.so

finish
