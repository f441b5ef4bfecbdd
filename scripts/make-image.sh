#!/usr/bin/env bash
# make-image.sh: the DaemonSet's image (`make image`), built with podman and no registry.
#
# The image holds exactly what its programs need and nothing else (no shell, no package
# manager): the plugin and the agent from `make build`, the shared libraries they load (the
# agent's libcurl and its dependencies, libmnl, glibc), the CA bundle, and a passwd/group naming
# root. The manifest's probes are httpGet (the agent's status server), so there is no shell and no
# `test` for exec probes. The files come from Debian
# bookworm's packages: a minbase root made once by mmdebstrap (cached in .build/image/debian, it
# needs Debian's mirror, never a container registry), in which `ldd` lists each program's
# libraries. podman builds deploy/Containerfile (FROM scratch) with --network none. The plugin and
# agent are linked against a Debian 11 sysroot (glibc 2.31) and run on bookworm's glibc as well.
#
# Tags: localhost/bridge-ipam:VERSION (what the binaries report) and localhost/bridge-ipam:latest.
# Writes .build/image/bridge-ipam.tar, a docker-archive with both tags, for
# `ctr -n k8s.io images import` on a node.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/.build/image
DEBIAN=$OUT/debian
PACKAGES=libmnl0,libcurl4,ca-certificates
RELEASE=$REPO/.build/release

version=$("$RELEASE/bridge-ipam" --version | sed -n 's/^CNI bridge-ipam plugin v\([^ ]*\).*/\1/p')
agent_version=$("$RELEASE/bridge-ipam-agent" --version | sed -n 's/^bridge-ipam-agent v\([^ ]*\).*/\1/p')
[ -n "$version" ] && [ "$version" = "$agent_version" ] || { echo "the plugin ($version) and the agent ($agent_version) disagree on their version" >&2; exit 1; }

# The Debian root (cached, made atomically under a lock by debian-root.sh), made again when the
# package list changes.
if [ -e "$DEBIAN/.complete" ] && [ "$(cat "$DEBIAN/.complete")" != "bookworm $PACKAGES" ]; then rm -rf "$DEBIAN"; fi
sh "$REPO/scripts/debian-root.sh" "$DEBIAN" bookworm "$PACKAGES"

# The programs go into the Debian root so that its own ldd resolves their libraries there.
mkdir -p "$DEBIAN/usr/local/bin"
install -m 0755 "$RELEASE/bridge-ipam" "$RELEASE/bridge-ipam-agent" "$DEBIAN/usr/local/bin/"
programs=(/usr/local/bin/bridge-ipam-agent /usr/local/bin/bridge-ipam)
# A static program has no libraries (ldd says so and fails); the run below catches a missing one.
libraries=$(for p in "${programs[@]}"; do chroot "$DEBIAN" ldd "$p" || true; done | grep -o '/[^ ]*' | sort -u)

context=$OUT/context
rm -rf "$context"
mkdir -p "$context/rootfs"
root=$context/rootfs
# merged /usr, as in Debian: /lib and /lib64 are links into /usr.
mkdir -p "$root/usr/lib" "$root/usr/lib64" "$root/usr/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/run"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s usr/bin "$root/bin"
chmod 1777 "$root/tmp"
for f in "${programs[@]}" $libraries /etc/ssl/certs/ca-certificates.crt; do
    real=$(chroot "$DEBIAN" realpath "$f")
    mkdir -p "$root$(dirname "$real")"
    cp -a "$DEBIAN$real" "$root$real"
    # The name the program asks for (e.g. libcurl.so.4) is a link to the versioned file.
    [ "$f" = "$real" ] || { [ -e "$root$f" ] || ln -s "$real" "$root$f"; }
done
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

podman build --quiet --network none -f "$REPO/deploy/Containerfile" \
    -t "localhost/bridge-ipam:$version" -t localhost/bridge-ipam:latest "$context" >/dev/null
# A look inside (the limits: podman's default open-file limit can exceed what a VM allows).
run() { podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@"; }
run "localhost/bridge-ipam:$version" --version
run --entrypoint bridge-ipam "localhost/bridge-ipam:$version" --version | head -1
rm -f "$OUT/bridge-ipam.tar"
podman save --quiet --format docker-archive -m -o "$OUT/bridge-ipam.tar" "localhost/bridge-ipam:$version" localhost/bridge-ipam:latest
size=$(podman image inspect --format '{{.Size}}' "localhost/bridge-ipam:$version")
echo "image localhost/bridge-ipam:$version (and :latest): $((size / 1000000)) MB ($size bytes), $(echo $libraries | wc -w) shared libraries"
echo "archive for a node's containerd: $OUT/bridge-ipam.tar ($(($(stat -c %s "$OUT/bridge-ipam.tar") / 1000000)) MB)"
