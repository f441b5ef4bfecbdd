#!/usr/bin/env python3
"""Servers and a parallel prober for the NetworkPolicy tests.

serve PORT...          TCP and UDP servers on each port: TCP answers "ok" and closes, UDP echoes
probe TIMEOUT TARGET.. TARGET is ADDRESS/PROTO/PORT (PROTO tcp, udp or sctp); all at once, each
                       within TIMEOUT seconds; prints "TARGET 1" (connected / answered) or "TARGET 0"
"""
import socket
import sys
import threading


def serve(ports):
    def tcp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(256)
        while True:
            c, _ = s.accept()
            try:
                c.sendall(b"ok\n")
            except OSError:
                pass
            c.close()

    def udp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)

    for port in ports:
        threading.Thread(target=tcp, args=(port,), daemon=True).start()
        threading.Thread(target=udp, args=(port,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def probe_one(target, timeout, results):
    address, proto, port = target.split("/")
    ok = 0
    try:
        if proto == "tcp":
            with socket.create_connection((address, int(port)), timeout=timeout) as s:
                s.settimeout(timeout)
                ok = 1 if s.recv(3) == b"ok\n" else 0
        elif proto == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(b"ping", (address, int(port)))
                ok = 1 if s.recvfrom(16)[0] == b"ping" else 0
        else:
            ok = 0
    except OSError:
        ok = 0
    results[target] = ok


def probe(timeout, targets):
    results = {}
    threads = [threading.Thread(target=probe_one, args=(t, timeout, results)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in targets:
        print(t, results[t])


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        probe(float(sys.argv[2]), sys.argv[3:])
