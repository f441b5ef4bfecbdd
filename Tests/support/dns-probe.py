#!/usr/bin/env python3
"""A tiny DNS server and client over UDP, to test a DNS Service the way pods use CoreDNS.

  dns-probe.py serve PORT                 answer every A/AAAA query for NAME with the fixed
                                          addresses below (both families, until killed)
  dns-probe.py query SERVER PORT NAME A|AAAA   ask SERVER once per try (3 tries, 2 s each) from a
                                          connected socket, so only a reply from SERVER itself
                                          counts (as for a pod's resolver); prints the answer or "-"

Only ever pointed at addresses inside the test's own namespaces.
"""
import select
import socket
import struct
import sys

ANSWERS = {1: socket.inet_pton(socket.AF_INET, "10.96.7.7"), 28: socket.inet_pton(socket.AF_INET6, "fd00:10:96::7:7")}


def answer(query):
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    qtype = struct.unpack("!H", query[end + 1:end + 3])[0]
    data = ANSWERS.get(qtype)
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1 if data else 0, 0, 0)
    if not data:
        return header + question
    record = struct.pack("!HHHIH", 0xC00C, qtype, 1, 30, len(data)) + data
    return header + question + record


def serve(port):
    sockets = []
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, port))
        sockets.append(s)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(sockets, [], [])
        for s in ready:
            query, peer = s.recvfrom(512)
            reply = answer(query)
            if reply:
                s.sendto(reply, peer)


def query(server, port, name, qtype):
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    code = 28 if qtype == "AAAA" else 1
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    message = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", code, 1)
    for _ in range(3):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((server, port))
        try:
            s.send(message)
            reply = s.recv(512)
        except OSError:
            continue
        finally:
            s.close()
        if struct.unpack("!H", reply[6:8])[0] == 1:
            data = reply[-(4 if code == 1 else 16):]
            print(socket.inet_ntop(socket.AF_INET6 if code == 28 else socket.AF_INET, data))
            return
    print("-")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        query(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
