#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the node agent's tests, speaking the real wire format
for Nodes: discovery (/api, /apis, resource lists, so kubectl works against it), NodeList with
metadata.resourceVersion and limit/continue paging, watch streams (chunked, one JSON event per
line: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), 410 Gone for a compacted resourceVersion
(an HTTP 410 Status at the start of a watch, an ERROR event with code 410 on an open one),
401 Status without the bearer token (or a client certificate signed by the CA), TLS.

A control port (plain HTTP; bind it to 127.0.0.1) changes the cluster:
  POST /nodes      [{"name","ip","podCIDR"|"podCIDRs"}...] or Node objects: add or modify
  POST /delete     ["name", ...]
  POST /objects    {"resource": "pods"|"namespaces"|"networkpolicies", "items": [objects]}: add or modify
  POST /delete-objects {"resource": ..., "keys": ["namespace/name" or "name", ...]}
  POST /expire     compact history: open watches get ERROR 410, older resourceVersions get 410
                   (and so do the continue tokens of lists begun before)
  POST /fail-watches {"count": N, "code": C, "as": "event"|"status", "message": "..."}: the next N
                   watch requests fail: an ERROR event with that Status at once (the stream then
                   closes), or an HTTP error response
  POST /stop       stop serving: close the listener and every open connection
  POST /hang       stop serving, but keep a listener that accepts no connection: clients connect
                   (the kernel completes the handshake) and then never hear a byte
  POST /start      serve again
  POST /token      "new-token": accept only this bearer token from now on, and cut open connections
  GET  /state      {"resourceVersion", "nodes", "lists", "watches", "open_watches", "unauthorized"}
"""
import argparse
import json
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Condition()
nodes = {}          # name -> Node object
node_json = {}      # name -> its JSON text (lists of thousands of nodes are joined, not re-encoded)
# The other kinds served, by resource name: key ("name", or "namespace/name") -> object.
stores = {"nodes": nodes, "pods": {}, "namespaces": {}, "networkpolicies": {}}
KINDS = {"nodes": "Node", "pods": "Pod", "namespaces": "Namespace", "networkpolicies": "NetworkPolicy"}
events = []         # (rv, type, object, resource)
rv = 100
compacted = 0       # watches from a resourceVersion below this get 410
expire_generation = 0
counters = {"lists": 0, "list_pages": 0, "watches": 0, "open_watches": 0, "unauthorized": 0}
snapshots = {}      # resourceVersion -> the items a paginated list began with (its pages' snapshot)
watch_failures = {"count": 0}
open_sockets = set()
args = None
api_server = None
hung_listener = None


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def node_object(spec):
    if "metadata" in spec:
        return spec
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    ips = spec.get("ips") or ([spec["ip"]] if spec.get("ip") else [])
    node = {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": spec["name"], "labels": {"kubernetes.io/hostname": spec["name"]}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]
                       + [{"type": "Hostname", "address": spec["name"]}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
    if cidrs:
        node["spec"] = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
    return node


def record(kind, obj, resource="nodes"):
    """Appends an event under the lock; returns the new resourceVersion."""
    global rv
    rv += 1
    obj["metadata"]["resourceVersion"] = str(rv)
    text = json.dumps(obj)
    if resource == "nodes":
        if kind == "DELETED":
            node_json.pop(obj["metadata"]["name"], None)
        else:
            node_json[obj["metadata"]["name"]] = text.encode()
    events.append((rv, kind, json.loads(text), resource))
    lock.notify_all()
    return rv


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
        for g in ("apps", "rbac.authorization.k8s.io", "networking.k8s.io")]},
}


def resources(group_version, entries):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": [
        {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": short}
        for name, kind, namespaced, short in entries]}


DISCOVERY["/api/v1"] = resources("v1", [("nodes", "Node", False, ["no"]), ("namespaces", "Namespace", False, ["ns"]),
                                        ("serviceaccounts", "ServiceAccount", True, ["sa"]),
                                        ("configmaps", "ConfigMap", True, ["cm"]), ("pods", "Pod", True, ["po"])])
DISCOVERY["/apis/networking.k8s.io/v1"] = resources(
    "networking.k8s.io/v1", [("networkpolicies", "NetworkPolicy", True, ["netpol"])])
DISCOVERY["/apis/apps/v1"] = resources("apps/v1", [("daemonsets", "DaemonSet", True, ["ds"])])
DISCOVERY["/apis/rbac.authorization.k8s.io/v1"] = resources(
    "rbac.authorization.k8s.io/v1", [("clusterroles", "ClusterRole", False, []),
                                     ("clusterrolebindings", "ClusterRoleBinding", False, [])])


class APIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def log_message(self, fmt, *a):
        if args.verbose:
            super().log_message(fmt, *a)

    def setup(self):
        super().setup()
        with lock:
            open_sockets.add(self.connection)

    def finish(self):
        with lock:
            open_sockets.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authenticated(self):
        try:
            if self.connection.getpeercert():
                return True
        except (AttributeError, ValueError):
            pass
        return self.headers.get("Authorization", "") == f"Bearer {args.token}"

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not self.authenticated():
            with lock:
                counters["unauthorized"] += 1
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        path = url.path.rstrip("/") or "/"
        if path in DISCOVERY:
            return self.send_json(200, DISCOVERY[path])
        if path == "/api/v1/nodes":
            if query.get("watch") in ("1", "true"):
                return self.watch(query)
            return self.list(query)
        collection = self.collection(path)
        if collection:
            resource, namespace = collection
            if query.get("watch") in ("1", "true"):
                return self.watch(query, resource, namespace)
            return self.list_objects(query, resource, namespace)
        if path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            with lock:
                ns = stores["namespaces"].get(path.rsplit("/", 1)[1])
                body = json.loads(json.dumps(ns)) if ns else None
            if body:
                return self.send_json(200, body)
            return self.send_json(404, status(404, "NotFound", f'namespaces "{path.rsplit("/", 1)[1]}" not found'))
        if path.startswith("/api/v1/nodes/"):
            with lock:
                node = nodes.get(path.rsplit("/", 1)[1])
                body = json.loads(json.dumps(node)) if node else None
            if body:
                return self.send_json(200, body)
            return self.send_json(404, status(404, "NotFound", f'nodes "{path.rsplit("/", 1)[1]}" not found'))
        parts = path.split("/")
        return self.send_json(404, status(404, "NotFound", f'{parts[-2] if len(parts) > 1 else "resource"} "{parts[-1]}" not found'))

    def list(self, query):
        # Every page of a paginated list comes from one snapshot, at the first page's
        # resourceVersion, as the real API server serves them from etcd; a continue token
        # carries that version and expires with compaction (410 Expired).
        token = query.get("continue") or ""
        limit = int(query.get("limit") or 0)
        with lock:
            counters["list_pages"] += 1
            if token:
                try:
                    version, start = (int(x) for x in token.split(":"))
                except ValueError:
                    return self.send_json(400, status(400, "BadRequest", "continue key is not valid"))
                items = snapshots.get(version)
                if items is None or version < compacted:
                    return self.send_json(410, status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
            else:
                counters["lists"] += 1
                version, start = rv, 0
                items = [node_json[n] for n in sorted(nodes)]
                if limit and limit < len(items):
                    snapshots[version] = items
                    for old in sorted(snapshots)[:-20]:
                        del snapshots[old]
        metadata = {"resourceVersion": str(version)}
        if limit and start + limit < len(items):
            metadata["continue"] = f"{version}:{start + limit}"
            metadata["remainingItemCount"] = len(items) - start - limit
            page = items[start:start + limit]
        else:
            page = items[start:]
        data = b'{"kind":"NodeList","apiVersion":"v1","metadata":%s,"items":[%s]}' % (json.dumps(metadata).encode(), b",".join(page))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def collection(path):
        """(resource, namespace or None) for a list/watch path of pods, namespaces or networkpolicies."""
        for prefix, resource in (("/api/v1/", "pods"), ("/api/v1/", "namespaces"), ("/apis/networking.k8s.io/v1/", "networkpolicies")):
            if path == prefix + resource:
                return resource, None
            if resource != "namespaces" and path.startswith(prefix + "namespaces/") \
                    and path.endswith("/" + resource) and path.count("/") == prefix.count("/") + 2:
                return resource, path[len(prefix + "namespaces/"):-len("/" + resource)]
        return None

    @staticmethod
    def visible(obj, namespace):
        return namespace is None or obj["metadata"].get("namespace") == namespace

    def list_objects(self, query, resource, namespace):
        """Pods, namespaces, networkpolicies: a list at the current resourceVersion, paged by offset."""
        with lock:
            counters["lists"] += 1
            store = stores[resource]
            items = [json.loads(json.dumps(store[n])) for n in sorted(store) if self.visible(store[n], namespace)]
            version = str(rv)
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0)
        metadata = {"resourceVersion": version}
        if limit and start + limit < len(items):
            metadata["continue"] = str(start + limit)
            items = items[start:start + limit]
        else:
            items = items[start:]
        api_version = "networking.k8s.io/v1" if resource == "networkpolicies" else "v1"
        self.send_json(200, {"kind": KINDS[resource] + "List", "apiVersion": api_version, "metadata": metadata, "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, query, resource="nodes", namespace=None):
        version = query.get("resourceVersion", "")
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        with lock:
            counters["watches"] += 1
            failure = None
            if watch_failures["count"] > 0:
                watch_failures["count"] -= 1
                failure = dict(watch_failures)
        if failure:
            body = status(failure["code"], failure.get("reason", "InternalError"), failure.get("message", "injected failure"))
            if failure.get("as") == "status":
                return self.send_json(failure["code"], body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(json.dumps({"type": "ERROR", "object": body}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return
        with lock:
            if version not in ("", "0") and int(version) < compacted:
                expired = f"too old resource version: {version} ({compacted})"
            else:
                expired = None
                if version in ("", "0"):
                    store = stores[resource]
                    backlog = [(rv, "ADDED", json.loads(json.dumps(store[n])))
                               for n in sorted(store) if self.visible(store[n], namespace)]
                    last = rv
                else:
                    last = int(version)
                    backlog = []
            generation = expire_generation
        if expired:
            return self.send_json(410, status(410, "Expired", expired))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with lock:
            counters["open_watches"] += 1
        try:
            for _, kind, obj in backlog:
                self.chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + args.bookmark_interval
            while True:
                with lock:
                    pending = [e for e in events if e[0] > last]
                    if not pending and generation == expire_generation:
                        lock.wait(timeout=max(0.01, min(deadline, next_bookmark) - time.monotonic()))
                        pending = [e for e in events if e[0] > last]
                    mine = [e for e in pending if e[3] == resource and self.visible(e[2], namespace)]
                    expired_now = generation != expire_generation
                    current = rv
                for _, kind, obj, _ in mine:
                    self.chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                if pending:
                    last = pending[-1][0]
                if expired_now:
                    self.chunk(json.dumps({"type": "ERROR", "object": status(
                        410, "Expired", f"too old resource version: {last} ({compacted})")}).encode() + b"\n")
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    self.chunk(json.dumps({"type": "BOOKMARK", "object": {
                        "kind": KINDS[resource], "apiVersion": "v1", "metadata": {"resourceVersion": str(current)}}}).encode() + b"\n")
                    last = max(last, current)
                    next_bookmark = now + args.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        finally:
            with lock:
                counters["open_watches"] -= 1
        self.close_connection = True


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, context):
        self.context = context
        super().__init__(address, APIHandler)

    def get_request(self):
        sock, addr = super().get_request()
        # The handshake happens in the request's own thread, not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def start_serving():
    global api_server
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(args.ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    host, port = args.listen.rsplit(":", 1)
    api_server = TLSServer((host, int(port)), context)
    threading.Thread(target=api_server.serve_forever, daemon=True).start()


def stop_serving():
    global api_server
    if api_server is None:
        return
    api_server.shutdown()
    api_server.server_close()
    api_server = None
    with lock:
        victims = list(open_sockets)
        lock.notify_all()
    for s in victims:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if args.verbose:
            super().log_message(fmt, *a)

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            state = dict(counters, resourceVersion=rv, nodes=sorted(nodes), serving=api_server is not None)
        self.reply(state)

    def do_POST(self):
        global compacted, expire_generation, hung_listener
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if self.path == "/nodes":
            specs = body.get("items", [body]) if isinstance(body, dict) else body
            with lock:
                for spec in specs:
                    node = node_object(spec)
                    name = node["metadata"]["name"]
                    kind = "MODIFIED" if name in nodes else "ADDED"
                    if kind == "ADDED":
                        node["metadata"].setdefault("uid", str(uuid.uuid4()))
                        node["metadata"].setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                    else:
                        node["metadata"]["uid"] = nodes[name]["metadata"]["uid"]
                        node["metadata"]["creationTimestamp"] = nodes[name]["metadata"]["creationTimestamp"]
                    nodes[name] = node
                    record(kind, node)
                self.reply({"resourceVersion": rv})
        elif self.path == "/delete":
            with lock:
                for name in body:
                    node = nodes.pop(name, None)
                    if node:
                        record("DELETED", node)
                self.reply({"resourceVersion": rv})
        elif self.path == "/fail-watches":
            with lock:
                watch_failures.clear()
                watch_failures.update(body)
            self.reply({"failing": body.get("count", 0)})
        elif self.path == "/objects":
            resource = body["resource"]
            store = stores[resource]
            with lock:
                for obj in body["items"]:
                    obj = json.loads(json.dumps(obj))
                    meta = obj.setdefault("metadata", {})
                    obj.setdefault("kind", KINDS[resource])
                    obj.setdefault("apiVersion", "networking.k8s.io/v1" if resource == "networkpolicies" else "v1")
                    key = f'{meta["namespace"]}/{meta["name"]}' if meta.get("namespace") else meta["name"]
                    old = store.get(key)
                    meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
                    meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else \
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    store[key] = obj
                    record("MODIFIED" if old else "ADDED", obj, resource)
                self.reply({"resourceVersion": rv})
        elif self.path == "/delete-objects":
            resource = body["resource"]
            with lock:
                for key in body["keys"]:
                    obj = stores[resource].pop(key, None)
                    if obj:
                        record("DELETED", obj, resource)
                self.reply({"resourceVersion": rv})
        elif self.path == "/expire":
            with lock:
                # The current version stays watchable (a list made now can be watched from),
                # every older one is gone.
                compacted = rv
                events.clear()
                expire_generation += 1
                lock.notify_all()
                self.reply({"compacted": compacted})
        elif self.path == "/stop":
            stop_serving()
            self.reply({"serving": False})
        elif self.path == "/token":
            args.token = body
            with lock:
                victims = list(open_sockets)
            for s in victims:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.reply({"token": "set"})
        elif self.path == "/hang":
            stop_serving()
            if hung_listener is None:
                host, port = args.listen.rsplit(":", 1)
                hung_listener = socket.socket()
                hung_listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                hung_listener.bind((host, int(port)))
                hung_listener.listen(128)
            self.reply({"serving": False, "hanging": True})
        elif self.path == "/start":
            if hung_listener is not None:
                hung_listener.close()
                hung_listener = None
            if api_server is None:
                start_serving()
            self.reply({"serving": True})
        else:
            self.send_error(404)


def main():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, help="HOST:PORT for the API (TLS)")
    parser.add_argument("--control", required=True, help="HOST:PORT for the control channel (plain HTTP)")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True, help="CA that signs accepted client certificates")
    parser.add_argument("--token", required=True)
    parser.add_argument("--bookmark-interval", type=float, default=2.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    start_serving()
    host, port = args.control.rsplit(":", 1)
    control = ThreadingHTTPServer((host, int(port)), ControlHandler)
    control.daemon_threads = True
    print("ready", flush=True)
    control.serve_forever()


if __name__ == "__main__":
    main()
