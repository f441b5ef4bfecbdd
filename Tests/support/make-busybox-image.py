#!/usr/bin/env python3
"""Writes an OCI image archive with a busybox-static rootfs, for `ctr images import`.

    make-busybox-image.py OUT.tar NAME:TAG [COMMAND...]

No registry: the layer is built from Debian's busybox-static binary and its applet links.
COMMAND (default /bin/sh) is the image's Cmd; `/bin/sleep 2147483647` makes a pause-like
sandbox image for a CRI runtime.
"""
import hashlib
import io
import json
import subprocess
import sys
import tarfile

out, ref = sys.argv[1], sys.argv[2]
command = sys.argv[3:] or ["/bin/sh"]
busybox = "/bin/busybox"
applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as tar:
    for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
        info = tarfile.TarInfo(d)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    tar.add(busybox, arcname="bin/busybox")
    for applet in applets:
        if applet == "busybox":
            continue
        info = tarfile.TarInfo(f"bin/{applet}")
        info.type, info.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(info)
layer_bytes = layer.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


layer_digest, _ = blob(layer_bytes)
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": command, "Env": ["PATH=/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
}).encode()
config_digest, _ = blob(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer_bytes)}],
}).encode()
manifest_digest, _ = blob(manifest)
index = json.dumps({
    "schemaVersion": 2,
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                   "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref,
                                                          "io.containerd.image.name": ref}}],
}).encode()

with tarfile.open(out, "w") as tar:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for digest, data in ((layer_digest, layer_bytes), (config_digest, config), (manifest_digest, manifest)):
        add("blobs/sha256/" + digest.split(":")[1], data)
