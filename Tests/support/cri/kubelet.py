#!/usr/bin/python3
"""A stand-in kubelet for one DaemonSet pod: reads the manifest (python3-yaml) and starts, probes
and stops the DaemonSet's pod through a runtime's CRI socket the way kubelet does. Run it in the
node's network and mount namespaces (those of the node's containerd), so that hostPath volumes,
the pod directory and an httpGet probe's address mean what they mean on a node.

    kubelet.py SOCKET up MANIFEST DAEMONSET --node NAME --node-ip IP --pod-dir DIR
               --api-host HOST --api-port PORT --token FILE --ca FILE [--cgroup-parent PATH]
        -> JSON {"sandbox": ID, "container": ID}
    kubelet.py SOCKET ready MANIFEST DAEMONSET --container ID --node-ip IP [--within SECONDS]
               [--probe readinessProbe|livenessProbe|startupProbe]
        runs the probe (exec through ExecSync, or httpGet) every periodSeconds until it succeeds
        (exit 0) or SECONDS pass (exit 1); prints what the last attempt saw (exit 3: no such probe)
    kubelet.py SOCKET down MANIFEST DAEMONSET --sandbox ID --container ID
        as when the DaemonSet is deleted: StopContainer with terminationGracePeriodSeconds,
        RemoveContainer, StopPodSandbox, RemovePodSandbox
    kubelet.py SOCKET state --container ID -> the container's state, exit code and reason

What kubelet does that is covered: the image pull policy (ImageStatus; the image must be present
unless the policy is Always, and nothing is pulled: no registry), hostNetwork (the node's network
namespace), hostPath volumes (DirectoryOrCreate, Directory, File...), configMap volumes (the
ConfigMap's keys as files, items and defaultMode), emptyDir (a tmpfs for medium Memory), the
service account volume at /var/run/secrets/kubernetes.io/serviceaccount (token, ca.crt,
namespace) unless automountServiceAccountToken is false, env (value, fieldRef of the downward
API) plus KUBERNETES_SERVICE_HOST/_PORT, command and args, the security context (runAsUser,
readOnlyRootFilesystem, allowPrivilegeEscalation as no_new_privs, capabilities, privileged, the
default masked and read-only /proc paths), resources (CPU shares from the request, the CPU
quota and memory limit from the limits, as kubelet computes them), the probes (exec, httpGet;
initialDelaySeconds counted from the container's start) and terminationGracePeriodSeconds. Not
covered, as they do not change what the container can do: scheduling fields (tolerations,
priorityClassName), log rotation. Anything else in the pod spec is an error, so a manifest change cannot go unnoticed.
"""
import argparse
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.environ["CRI_STUBS"])
import grpc  # noqa: E402
import runtime_v1_subset_pb2 as pb  # noqa: E402
import runtime_v1_subset_pb2_grpc as rpc  # noqa: E402

TIMEOUT = 60
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# kubelet's defaults for procMount Default (k8s.io/kubernetes pkg/securitycontext/util.go).
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# What the stand-in understands of a pod spec and a container; anything else is refused.
POD_FIELDS = {"serviceAccountName", "priorityClassName", "hostNetwork", "tolerations", "terminationGracePeriodSeconds",
              "containers", "volumes", "automountServiceAccountToken", "dnsPolicy"}
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "securityContext", "readinessProbe",
                    "livenessProbe", "startupProbe", "resources", "volumeMounts", "ports"}


class Refused(Exception):
    pass


def manifest(path, daemonset):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ds = next((d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == daemonset), None)
    if ds is None:
        raise Refused(f"{path} has no DaemonSet {daemonset}")
    configmaps = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d for d in docs if d["kind"] == "ConfigMap"}
    return ds, configmaps


def pod_spec(ds):
    spec = ds["spec"]["template"]["spec"]
    unknown = set(spec) - POD_FIELDS
    if unknown:
        raise Refused(f"pod spec fields the stand-in kubelet does not implement: {sorted(unknown)}")
    if len(spec["containers"]) != 1:
        raise Refused("one container per pod is implemented")
    container = spec["containers"][0]
    unknown = set(container) - CONTAINER_FIELDS
    if unknown:
        raise Refused(f"container fields the stand-in kubelet does not implement: {sorted(unknown)}")
    return spec, container


def image_present(images, name, policy):
    status = images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=name)), timeout=TIMEOUT)
    present = bool(status.image.id)
    if policy == "Always" or not present:
        # kubelet would pull; there is no registry here, so that is a failure to report.
        raise Refused(f"image {name} with imagePullPolicy {policy}: {'present but Always pulls' if present else 'not present'},"
                      " and there is no registry to pull from")
    return status.image


def write_file(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def volumes(spec, ds, configmaps, pod_dir, a):
    """Prepares each volume as kubelet does; returns name -> (host path, forced read-only)."""
    namespace = ds["metadata"].get("namespace", "default")
    result = {}
    for v in spec.get("volumes", []):
        name = v["name"]
        if "hostPath" in v:
            path, kind = v["hostPath"]["path"], v["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                os.makedirs(path, mode=0o755, exist_ok=True)
            elif kind == "FileOrCreate":
                open(path, "a").close()
            elif kind and not os.path.exists(path):   # Directory, File, Socket, ...: must exist
                raise Refused(f"hostPath {path} ({kind}) does not exist")
            result[name] = (path, False)
        elif "configMap" in v:
            key = (namespace, v["configMap"]["name"])
            if key not in configmaps:
                raise Refused(f"ConfigMap {key[0]}/{key[1]} is not in the manifest")
            data = configmaps[key].get("data", {})
            directory = f"{pod_dir}/volumes/kubernetes.io~configmap/{name}"
            os.makedirs(directory, exist_ok=True)
            mode = v["configMap"].get("defaultMode", 0o644)
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                write_file(f"{directory}/{item['path']}", data[item["key"]], item.get("mode", mode))
            result[name] = (directory, True)
        elif "emptyDir" in v:
            directory = f"{pod_dir}/volumes/kubernetes.io~empty-dir/{name}"
            os.makedirs(directory, exist_ok=True)
            if v["emptyDir"] and v["emptyDir"].get("medium") == "Memory":
                subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0777", "tmpfs", directory], check=True)
            result[name] = (directory, False)
        else:
            raise Refused(f"volume {name}: only hostPath, configMap and emptyDir are implemented")
    if spec.get("automountServiceAccountToken", True):
        directory = f"{pod_dir}/volumes/kubernetes.io~projected/kube-api-access"
        with open(a.token) as f:
            write_file(f"{directory}/token", f.read(), 0o644)
        with open(a.ca) as f:
            write_file(f"{directory}/ca.crt", f.read(), 0o644)
        write_file(f"{directory}/namespace", namespace, 0o644)
        result["kube-api-access"] = (directory, True)
    return result


def env(container, ds, a):
    values = []
    fields = {"spec.nodeName": a.node, "metadata.name": a.pod_name, "metadata.namespace": ds["metadata"].get("namespace", "default"),
              "status.hostIP": a.node_ip, "status.podIP": a.node_ip, "spec.serviceAccountName": "bridge-ipam"}
    for e in container.get("env", []):
        if "value" in e:
            values.append((e["name"], str(e["value"])))
        elif "fieldRef" in e.get("valueFrom", {}):
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            if path not in fields:
                raise Refused(f"env {e['name']}: fieldRef {path} is not implemented")
            values.append((e["name"], fields[path]))
        else:
            raise Refused(f"env {e['name']}: only value and valueFrom.fieldRef are implemented")
    # The kubernetes Service, as kubelet adds it to every container.
    host, port = a.api_host, str(a.api_port)
    values += [("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", port), ("KUBERNETES_SERVICE_PORT_HTTPS", port),
               ("KUBERNETES_PORT", f"tcp://{host}:{port}"), ("KUBERNETES_PORT_443_TCP", f"tcp://{host}:{port}"),
               ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"), ("KUBERNETES_PORT_443_TCP_ADDR", host),
               ("KUBERNETES_PORT_443_TCP_PORT", port)]
    return [pb.KeyValue(key=k, value=v) for k, v in values]


def namespaces(spec):
    return pb.NamespaceOption(network=pb.NODE if spec.get("hostNetwork") else pb.POD, pid=pb.CONTAINER, ipc=pb.POD)


def sandbox_config(ds, spec, a):
    labels = dict(ds["spec"]["template"]["metadata"].get("labels", {}))
    namespace = ds["metadata"].get("namespace", "default")
    labels.update({"io.kubernetes.pod.name": a.pod_name, "io.kubernetes.pod.namespace": namespace,
                   "io.kubernetes.pod.uid": a.pod_uid})
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=a.pod_name, namespace=namespace, uid=a.pod_uid, attempt=0),
        # kubelet names only pods with a network namespace of their own; others share the node's UTS.
        hostname="" if spec.get("hostNetwork") else a.pod_name,
        log_directory=f"{a.pod_dir}/logs",
        labels=labels, annotations={"kubernetes.io/config.source": "api"},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=a.cgroup_parent,
                                       security_context=pb.LinuxSandboxSecurityContext(namespace_options=namespaces(spec))))


def quantity(text):
    """A Kubernetes resource quantity ("10m", "64Mi", "1", "0.5", "1G") as a number."""
    text = str(text)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40), ("k", 10**3), ("M", 10**6),
                           ("G", 10**9), ("T", 10**12), ("m", 10**-3)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)


def resources(container):
    """What kubelet asks of the runtime for a container's resources (pkg/kubelet/kuberuntime)."""
    r = container.get("resources", {})
    requests, limits = r.get("requests", {}), r.get("limits", {})
    unknown = (set(requests) | set(limits)) - {"cpu", "memory"}
    if unknown:
        raise Refused(f"resources the stand-in kubelet does not implement: {sorted(unknown)}")
    result = pb.LinuxContainerResources()
    cpu_request = requests.get("cpu", limits.get("cpu"))
    result.cpu_shares = max(2, int(quantity(cpu_request) * 1024)) if cpu_request is not None else 2
    if "cpu" in limits:
        result.cpu_period = 100000
        result.cpu_quota = max(1000, int(quantity(limits["cpu"]) * 100000))
    if "memory" in limits:
        result.memory_limit_in_bytes = int(quantity(limits["memory"]))
    return result


def container_security(container, spec):
    sc = container.get("securityContext", {})
    caps = sc.get("capabilities", {})
    result = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(add_capabilities=caps.get("add", []), drop_capabilities=caps.get("drop", [])),
        privileged=sc.get("privileged", False), namespace_options=namespaces(spec),
        readonly_rootfs=sc.get("readOnlyRootFilesystem", False),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False)
    if "runAsUser" in sc:
        result.run_as_user.CopyFrom(pb.Int64Value(value=sc["runAsUser"]))
    unknown = set(sc) - {"runAsUser", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "capabilities", "privileged"}
    if unknown:
        raise Refused(f"securityContext fields the stand-in kubelet does not implement: {sorted(unknown)}")
    if not result.privileged:
        result.masked_paths.extend(MASKED_PATHS)
        result.readonly_paths.extend(READONLY_PATHS)
    return result


def up(runtime, images, a):
    ds, configmaps = manifest(a.manifest, a.daemonset)
    spec, container = pod_spec(ds)
    policy = container.get("imagePullPolicy") or ("Always" if container["image"].endswith(":latest") or ":" not in container["image"] else "IfNotPresent")
    image_present(images, container["image"], policy)
    prepared = volumes(spec, ds, configmaps, a.pod_dir, a)
    mounts = []
    for m in container.get("volumeMounts", []):
        if m["name"] not in prepared:
            raise Refused(f"volumeMount {m['name']} names no volume")
        host, forced = prepared[m["name"]]
        mounts.append(pb.Mount(container_path=m["mountPath"], host_path=host, readonly=m.get("readOnly", False) or forced,
                               propagation=pb.PROPAGATION_PRIVATE))
    if "kube-api-access" in prepared:
        mounts.append(pb.Mount(container_path=SERVICE_ACCOUNT_DIR, host_path=prepared["kube-api-access"][0], readonly=True))
    sandbox = sandbox_config(ds, spec, a)
    sandbox_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox), timeout=TIMEOUT).pod_sandbox_id
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=container["name"], attempt=0), image=pb.ImageSpec(image=container["image"]),
        command=container.get("command", []), args=[str(x) for x in container.get("args", [])], envs=env(container, ds, a),
        mounts=mounts, labels={"io.kubernetes.container.name": container["name"], "io.kubernetes.pod.name": a.pod_name},
        log_path=f"{container['name']}/0.log",
        linux=pb.LinuxContainerConfig(resources=resources(container), security_context=container_security(container, spec)))
    container_id = runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox), timeout=TIMEOUT).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=container_id), timeout=TIMEOUT)
    print(json.dumps({"sandbox": sandbox_id, "container": container_id}))


def probe_once(runtime, probe, container, a):
    timeout = probe.get("timeoutSeconds", 1)
    if "exec" in probe:
        reply = runtime.ExecSync(pb.ExecSyncRequest(container_id=a.container, cmd=probe["exec"]["command"], timeout=timeout),
                                 timeout=TIMEOUT)
        return reply.exit_code == 0, f"exec {probe['exec']['command']}: exit {reply.exit_code} {reply.stderr.decode().strip()}"
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = get["port"]
        if isinstance(port, str):   # a named port of the container
            port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
        host = get.get("host") or a.node_ip   # the pod's IP: the node's with hostNetwork
        if get.get("scheme", "HTTP") == "HTTPS":   # kubelet does not verify the certificate
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
            conn.request("GET", get.get("path", "/"), headers={"User-Agent": "kube-probe/1.30", **headers})
            reply = conn.getresponse()
            body = (reply.read(200).decode(errors="replace").strip().splitlines() or [""])[0][:80]
            return 200 <= reply.status < 400, f"GET {host}:{port}{get.get('path', '/')}: {reply.status} {body}"
        except OSError as e:
            return False, f"GET {host}:{port}{get.get('path', '/')}: {e}"
        finally:
            conn.close()
    raise Refused("only exec and httpGet probes are implemented")


def ready(runtime, a):
    ds, _ = manifest(a.manifest, a.daemonset)
    _, container = pod_spec(ds)
    probe = container.get(a.probe)
    if probe is None:
        print(f"the container has no {a.probe}")
        return 3
    # kubelet counts the initial delay from the container's start.
    status = runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=a.container), timeout=TIMEOUT).status
    since_start = time.time() - status.started_at / 1e9
    time.sleep(max(0, probe.get("initialDelaySeconds", 0) - since_start))
    end = time.monotonic() + a.within
    while True:
        ok, seen = probe_once(runtime, probe, container, a)
        if ok or time.monotonic() >= end:
            print(seen)
            return 0 if ok else 1
        time.sleep(probe.get("periodSeconds", 10))


def down(runtime, a):
    ds, _ = manifest(a.manifest, a.daemonset)
    spec, _ = pod_spec(ds)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    runtime.StopContainer(pb.StopContainerRequest(container_id=a.container, timeout=grace), timeout=TIMEOUT + grace)
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=a.container), timeout=TIMEOUT)
    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=a.sandbox), timeout=TIMEOUT)
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=a.sandbox), timeout=TIMEOUT)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    sub = p.add_subparsers(dest="verb", required=True)
    u = sub.add_parser("up")
    r = sub.add_parser("ready")
    d = sub.add_parser("down")
    for s in (u, r, d):
        s.add_argument("manifest")
        s.add_argument("daemonset")
    u.add_argument("--node", required=True)
    u.add_argument("--pod-dir", required=True)
    u.add_argument("--api-host", required=True)
    u.add_argument("--api-port", required=True, type=int)
    u.add_argument("--token", required=True)
    u.add_argument("--ca", required=True)
    u.add_argument("--cgroup-parent", default="")
    for s in (u, r):
        s.add_argument("--node-ip", required=True)
    r.add_argument("--container", required=True)
    r.add_argument("--within", type=float, default=30)
    r.add_argument("--probe", default="readinessProbe", choices=["readinessProbe", "livenessProbe", "startupProbe"])
    d.add_argument("--sandbox", required=True)
    d.add_argument("--container", required=True)
    st = sub.add_parser("state")
    st.add_argument("--container", required=True)
    a = p.parse_args()

    channel = grpc.insecure_channel("unix://" + a.socket)
    runtime = rpc.RuntimeServiceStub(channel)
    images = rpc.ImageServiceStub(channel)
    try:
        if a.verb == "up":
            a.pod_name = f"{a.daemonset}-{hashlib.sha256(a.node.encode()).hexdigest()[:5]}"
            a.pod_uid = hashlib.sha256(f"{a.daemonset}/{a.node}".encode()).hexdigest()[:32]
            up(runtime, images, a)
        elif a.verb == "ready":
            sys.exit(ready(runtime, a))
        elif a.verb == "down":
            down(runtime, a)
        elif a.verb == "state":
            s = runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=a.container), timeout=TIMEOUT).status
            print(pb.ContainerState.Name(s.state), s.exit_code, s.reason)
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(2)
    except grpc.RpcError as e:
        print(f"{e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
