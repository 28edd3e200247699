"""Per-connection relay for qemu's guestfwd: stdin/stdout <-> a TCP port on host loopback.

qemu runs ``relay.py PORT`` for each connection the guest opens to a forwarded address
(``guestfwd=tcp:10.0.2.2:P-cmd:...``), so an isolated VM (restrict=on) can still reach a
test server on the host's loopback and nothing else.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def main() -> int:
    port = int(sys.argv[1])
    upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    upstream.settimeout(None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(upstream, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj == 0:
                data = os.read(0, 65536)
                if not data:
                    upstream.shutdown(socket.SHUT_WR)
                    selector.unregister(0)
                    continue
                upstream.sendall(data)
            else:
                data = upstream.recv(65536)
                if not data:
                    return 0
                os.write(1, data)


if __name__ == "__main__":
    sys.exit(main())
