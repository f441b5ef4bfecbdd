#!/bin/sh
# private-mounts.sh SCRATCH SOURCE:TARGET... -- COMMAND...
#
# Runs COMMAND with each TARGET (a directory of the machine, e.g. /var/lib/cni) replaced by the
# test's SOURCE directory. Call it in a private mount namespace (`unshare -m --propagation
# private`): the mounts vanish with the namespace's last process and the machine never sees them.
#
# A TARGET the machine does not have is never created on the machine: its nearest existing
# parent (e.g. /var/lib for a missing /var/lib/cni) gets an overlay whose writable layer is a
# tmpfs under SCRATCH, so the parent keeps showing the machine's files and the missing levels
# exist only in this namespace.
set -eu
scratch=$1
shift
n=0
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    source=${1%%:*}
    target=${1#*:}
    shift
    if [ ! -d "$target" ]; then
        parent=$target
        while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
        n=$((n + 1))
        layer=$scratch/overlay$n
        mkdir -p "$layer"
        mount -t tmpfs -o mode=0755 tmpfs "$layer"
        mkdir "$layer/upper" "$layer/work"
        mount -t overlay overlay -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" "$parent"
        mkdir -p "$target"
    fi
    mount --bind "$source" "$target"
done
[ "${1:-}" = -- ] && shift
exec "$@"
