#!/bin/sh
# Printed by `make install`: what was laid down where, and what the operator still has to do on
# the node before the first pod can start. Checks the node's state (under DESTDIR when staging)
# so each step says whether it is already done.
#   install-report.sh DESTDIR BINDIR CONFDIR
destdir=$1 bindir=$2 confdir=$3
conflist=$confdir/10-bridge-ipam.conflist
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$destdir$conflist" | head -1; }
subnet_file=$(field subnetFile)
cluster=$(field clusterCIDR)
network=$(field name)

echo
echo "bridge-ipam installed${destdir:+ (staged under $destdir)}:"
echo "  $destdir$bindir/bridge-ipam"
echo "      the plugin; the runtime's CNI bin dir must be $bindir (containerd: cni.bin_dir)"
echo "  $destdir$conflist"
echo "      network \"$network\": bridge-ipam (bridge cni0), then portmap; cniVersion 1.0.0 for"
echo "      containerd 1.6/1.7 and CRI-O, cniVersions [1.0.0, 1.1.0] for libcni 1.2 and later"
echo "  (make uninstall removes exactly these two files; directories stay)"
echo
echo "Before the first pod on this node:"
# The plugin needs glibc 2.31 or later and libmnl.so.0. On the node itself, running it says
# whether both are there; a staged tree is searched for libmnl.so.0 in the usual directories.
if [ -z "$destdir" ]; then
    if error=$("$bindir/bridge-ipam" --version 2>&1 >/dev/null); then
        state="done: it runs here"
    else
        state="NOT DONE: it does not run here: $(echo "$error" | head -1)"
    fi
else
    found=
    for d in lib usr/lib lib64 usr/lib64; do
        for f in "$destdir/$d/libmnl.so.0" "$destdir/$d/$(uname -m)-linux-gnu/libmnl.so.0"; do
            [ -e "$f" ] && [ -z "$found" ] && found=${f#"$destdir"}
        done
    done
    if [ -n "$found" ]; then state="done: $found is there"; else state="NOT DONE: no libmnl.so.0 under $destdir"; fi
fi
echo "  1. The plugin needs glibc 2.31 or later and libmnl.so.0 ($state):"
echo "     Debian, Ubuntu: apt-get install libmnl0; RHEL, Rocky, Alma, Fedora, Amazon Linux: dnf install libmnl"
if [ -s "$destdir$subnet_file" ]; then
    state="done: it holds $(head -1 "$destdir$subnet_file")"
else
    state="not there yet"
fi
echo "  2. Write the node's pod subnet to $subnet_file ($state), e.g."
echo "       mkdir -p $(dirname "$subnet_file") && kubectl get node \"\$(hostname)\" -o jsonpath='{.spec.podCIDR}' > $subnet_file"
echo "     or let the bridge-ipam agent keep it (make install-agent). /run is emptied at boot:"
echo "     until the file is rewritten, ADD waits for it (ipam.subnetFileWait, 10 s), then fails"
echo "     with code 11 naming the file."
echo "  3. Check that $cluster is the cluster's pod CIDR (kube-controller-manager --cluster-cidr);"
echo "     otherwise edit ipam.clusterCIDR in $conflist."
missing=
for p in portmap loopback; do [ -e "$destdir$bindir/$p" ] || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "  4. Put the reference plugins$missing into $bindir (portmap runs after bridge-ipam for"
    echo "     hostPort; containerd runs loopback for every pod). From Debian's containernetworking-plugins:"
    for p in $missing; do echo "       ln -s /usr/lib/cni/$p $bindir/$p"; done
else
    echo "  4. portmap and loopback are in $bindir: nothing to do."
fi
earlier=$(ls "$destdir$confdir" 2>/dev/null | grep -E '\.(conf|conflist|json)$' | sort | sed -n '/^10-bridge-ipam\.conflist$/q;p')
if [ -n "$earlier" ]; then
    echo "  4. $confdir holds configs sorting before ours ($(echo $earlier)): containerd and CRI-O"
    echo "     use only the first one. Remove or rename them."
fi
echo "  Between nodes, pods need routes: bridge-ipam routes sync (README, \"A cluster\"); to reach"
echo "  beyond the cluster, masquerade (the agent's --masquerade, or ipMasq with ipMasqExclude)."
