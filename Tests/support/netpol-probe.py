#!/usr/bin/env python3
"""Servers and a parallel prober for the NetworkPolicy tests.

serve PORT...          TCP and UDP servers on each port: TCP answers "ok" and closes, UDP echoes;
                       and a raw IP protocol 132 listener printing "sctp SOURCE SPORT DPORT TAG" for
                       every SCTP packet that arrives (the kernel has no SCTP: nothing else takes them)
probe TIMEOUT [--udp-source-base N] TARGET..
                       TARGET is ADDRESS/PROTO/PORT (PROTO tcp, udp or sctp); all at once, each
                       within TIMEOUT seconds; prints "TARGET 1" (connected / answered) or "TARGET 0";
                       for sctp, one INIT packet is sent through a raw socket and "TARGET sTAG" printed:
                       whether it arrived is in the destination's listener output (one way only)
"""
import random
import socket
import struct
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

    def sctp():
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
        while True:
            data, (source, _) = s.recvfrom(2048)
            header = (data[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", data[header:header + 4])
            tag = struct.unpack("!I", data[header + 16:header + 20])[0] if len(data) >= header + 20 else 0
            print(f"sctp {source} {sport} {dport} {tag}", flush=True)

    for port in ports:
        threading.Thread(target=tcp, args=(port,), daemon=True).start()
        threading.Thread(target=udp, args=(port,), daemon=True).start()
    threading.Thread(target=sctp, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def crc32c(data):
    """SCTP's checksum (RFC 4960 appendix B), so that conntrack takes the packet as valid."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def probe_one(target, timeout, results, udp_source=None):
    address, proto, port = target.split("/")
    ok = 0
    try:
        if proto == "tcp":
            with socket.create_connection((address, int(port)), timeout=timeout) as s:
                s.settimeout(timeout)
                ok = 1 if s.recv(3) == b"ok\n" else 0
        elif proto == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                # A source port of its own: a conntrack entry of an earlier, admitted probe with
                # the same addresses and ports would let this one through as a reply.
                if udp_source:
                    s.bind(("0.0.0.0", udp_source))
                s.settimeout(timeout)
                s.sendto(b"ping", (address, int(port)))
                ok = 1 if s.recvfrom(16)[0] == b"ping" else 0
        else:
            # An SCTP common header (ports, verification tag, checksum) and an INIT chunk.
            tag = random.randrange(1, 2**32)
            init = struct.pack("!BBHIIHHI", 1, 0, 20, tag, 65535, 1, 1, tag)
            sport = random.randrange(20000, 60000)
            packet = struct.pack("!HHII", sport, int(port), 0, 0) + init
            packet = struct.pack("!HHI", sport, int(port), 0) + struct.pack("<I", crc32c(packet)) + init
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, 132) as s:
                s.sendto(packet, (address, 0))
            ok = f"s{tag}"
    except OSError:
        ok = 0
    results[target] = ok


def probe(timeout, targets):
    base = None
    if targets[0] == "--udp-source-base":
        base, targets = int(targets[1]), targets[2:]
    results = {}
    threads = [threading.Thread(target=probe_one, args=(t, timeout, results, base + i if base else None)) for i, t in enumerate(targets)]
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
