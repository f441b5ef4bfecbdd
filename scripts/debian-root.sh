#!/bin/sh
# debian-root.sh DIR SUITE PACKAGES [--relative-links]
# A Debian root filesystem made from the mirror's packages with mmdebstrap (minbase plus the
# comma-separated PACKAGES), cached: when DIR is complete it is left as it is, so only the first
# build on a machine pays for it (20 to 70 s). Made beside DIR and renamed into place, so an
# interrupted run never leaves a half-made DIR behind that later builds would trust; a lock
# (DIR.lock) makes a second run started meanwhile wait for the first and then keep its DIR.
# --relative-links rewrites the root's absolute symlinks (/lib64/ld-linux-x86-64.so.2 ->
# /lib/x86_64-linux-gnu/ld-2.31.so) as relative ones: a linker given DIR as its sysroot follows
# them inside DIR instead of into the build machine's own /lib.
set -eu
dir=$1 suite=$2 packages=$3 links=${4:-}
[ -e "$dir/.complete" ] && exit 0
command -v mmdebstrap >/dev/null || { echo "debian-root.sh: needs mmdebstrap (make deps)" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
[ -e "$dir/.complete" ] && exit 0   # made while this run waited
# Holding the lock, whatever else is there was left by a run that was killed outright.
rm -rf "$dir" "$dir".tmp.*
tmp=$dir.tmp.$$
trap 'rm -rf "$tmp"' EXIT
echo "making a Debian $suite root in $dir ($packages)"
mmdebstrap --quiet --variant=minbase --include="$packages" "$suite" "$tmp"
if [ "$links" = --relative-links ]; then
    find "$tmp" -type l -lname '/*' | while read -r link; do
        ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "$tmp$(readlink "$link")")" "$link"
    done
fi
echo "$suite $packages" >"$tmp/.complete"
mv -T "$tmp" "$dir"
