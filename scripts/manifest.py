#!/usr/bin/python3
"""deploy/bridge-ipam.yaml's generated parts, from their one source each:

    manifest.py write [ROOT]   rewrites the ConfigMap's 10-bridge-ipam.conflist and the agent's
                               --cluster-cidr from conf/10-bridge-ipam.conflist, and the agent's
                               image tag from VERSION
    manifest.py check [ROOT]   exits 1, saying what differs, when the manifest is not what
                               `write` makes

ROOT (the repository by default) holds conf/, deploy/ and VERSION. The manifest is edited as
text, so its comments and layout stay; python3-yaml then reads the result back, as kubectl
would, to check that the ConfigMap holds the conflist byte for byte.
"""
import json
import os
import re
import sys

import yaml

REPO = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, "deploy", "bridge-ipam.yaml")
CONFLIST = os.path.join(REPO, "conf", "10-bridge-ipam.conflist")
KEY = "  10-bridge-ipam.conflist: |\n"
IMAGE = "localhost/bridge-ipam"


def generated(text, conflist, version):
    start = text.index(KEY) + len(KEY)
    end = start
    lines = text[start:].splitlines(keepends=True)
    for line in lines:   # the block scalar: every line indented deeper than the key, or empty
        if line.strip() and not line.startswith("    "):
            break
        end += len(line)
    block = "".join(("    " + line if line.strip() else line) for line in conflist.splitlines(keepends=True))
    text = text[:start] + block + text[end:]
    text = re.sub(r"(image: )" + re.escape(IMAGE) + r":\S+", r"\g<1>" + IMAGE + ":" + version, text)
    # The agent's --cluster-cidr: the value on the list item after it.
    cluster = json.loads(conflist)["plugins"][0]["ipam"]["clusterCIDR"]
    return re.sub(r"(\n\s*- --cluster-cidr\n\s*- )\S+", lambda m: m.group(1) + cluster, text)


def main():
    with open(MANIFEST) as f:
        text = f.read()
    with open(CONFLIST) as f:
        conflist = f.read()
    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    want = generated(text, conflist, version)
    docs = list(yaml.safe_load_all(want))
    configmap = next(d for d in docs if d and d["kind"] == "ConfigMap")
    assert configmap["data"]["10-bridge-ipam.conflist"] == conflist, "the generated ConfigMap does not read back as the conflist"
    verb = sys.argv[1:2]
    if verb == ["write"]:
        if want != text:
            with open(MANIFEST, "w") as f:
                f.write(want)
            print("rewrote", os.path.relpath(MANIFEST, REPO))
    elif verb == ["check"]:
        if want != text:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), want.splitlines(True), "deploy/bridge-ipam.yaml",
                                                       "generated from conf/10-bridge-ipam.conflist and VERSION"))
            print("deploy/bridge-ipam.yaml differs from its sources: run `make manifest`")
            sys.exit(1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
