"""Connections that go quiet and then speak again: run inside a namespace,
``python late_sender.py '<json list of [src, dst, port]>'``.  Opens each connection and
reads the service's greeting, prints ``open``, waits for a line on stdin, then sends a
line on each connection and prints ``sent``."""

from __future__ import annotations

import json
import socket
import sys


def main(targets: list[list]) -> None:
    connections = []
    for src, dst, port in targets:
        sock = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET)
        sock.settimeout(10)
        sock.bind((src, 0))
        sock.connect((dst, port))
        sock.recv(200)
        connections.append(sock)
    print("open", flush=True)
    sys.stdin.readline()
    for sock in connections:
        sock.send(b"late\r\n")
    print("sent", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
