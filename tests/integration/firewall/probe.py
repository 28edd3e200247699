"""Connection probes run inside a namespace: ``python probe.py '<json list>'``.

Each probe is ``{"src": ADDR, "dst": ADDR, "port": N, "timeout": SECONDS}``, with
``"send": TEXT`` for a client that speaks first once connected (an SSH client sends its
banner at once, without waiting for the server's); they run in the order given (so
"rapid" repeated connections are really one after another) and the result is a JSON list
of ``{"connected": bool, "banner": str, "error": str}`` (error: why it failed to connect or
to read a banner, e.g. ConnectionResetError).
"""

from __future__ import annotations

import json
import socket
import sys


def probe(src: str, dst: str, port: int, timeout: float, send: str = "") -> dict:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            if src:
                sock.bind((src, 0))
            sock.connect((dst, port))
        except OSError as exc:
            return {"connected": False, "banner": "", "error": type(exc).__name__}
        try:
            sock.sendall(send.encode())
            banner = sock.recv(200).decode(errors="replace")
        except OSError as exc:
            return {"connected": True, "banner": "", "error": type(exc).__name__}
        return {"connected": True, "banner": banner, "error": ""}


if __name__ == "__main__":
    probes = json.loads(sys.argv[1])
    print(json.dumps([probe(p.get("src", ""), p["dst"], p["port"], p.get("timeout", 1.0),
                            p.get("send", "")) for p in probes]))
