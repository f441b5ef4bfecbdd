#!/usr/bin/env python3
"""A TCP probe that proves who the receiver saw.

  peer-echo.py serve PORT            answer every connection with the peer address it came from
  peer-echo.py probe PORT IP [IP...] connect to each IP and print "IP SEEN" (SEEN is "-" on failure)

Only ever pointed at addresses inside the test's own namespaces.
"""
import select
import socket
import sys


def listener(family, address, port):
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # A separate IPv6 socket, so IPv4 peers keep showing as plain IPv4 addresses.
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((address, port))
    server.listen(64)
    return server


def serve(port):
    servers = [listener(socket.AF_INET, "0.0.0.0", port)]
    try:
        servers.append(listener(socket.AF_INET6, "::", port))
    except OSError:
        pass  # no IPv6 in this namespace
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(servers, [], [])
        for server in ready:
            conn, peer = server.accept()
            with conn:
                conn.sendall(f"{peer[0]}\n".encode())


def probe(port, targets):
    for target in targets:
        seen = "-"
        for _ in range(3):
            try:
                with socket.create_connection((target, port), timeout=2) as conn:
                    seen = conn.makefile().readline().strip() or "-"
                    break
            except OSError:
                continue
        print(target, seen, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        probe(int(sys.argv[2]), sys.argv[3:])
