#!/usr/bin/env python3
"""A TCP probe that proves who the receiver saw.

  peer-echo.py serve PORT            answer every connection with the peer address it came from
  peer-echo.py probe PORT IP [IP...] connect to each IP and print "IP SEEN" (SEEN is "-" on failure)

Only ever pointed at addresses inside the test's own namespaces.
"""
import socket
import sys


def serve(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)
    print("ready", flush=True)
    while True:
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
