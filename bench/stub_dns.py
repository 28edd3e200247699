"""A DNS stub on loopback that answers NXDOMAIN at once (echoing EDNS), so peers that look
things up (rspamd's RBL, SPF, DKIM modules) do not wait on timeouts in a machine without
Internet, and the comparison measures content scoring, not DNS waits.

    python -m bench.stub_dns --port PORT
"""

from __future__ import annotations

import argparse
import socket
import sys

import dns.flags
import dns.message
import dns.rcode


def answer(query: bytes) -> bytes | None:
    try:
        request = dns.message.from_wire(query)
    except Exception:  # noqa: BLE001 - garbage in, nothing out
        return None
    response = dns.message.make_response(request)   # echoes EDNS when the query had it
    response.set_rcode(dns.rcode.NXDOMAIN)
    response.flags |= dns.flags.RA
    return response.to_wire()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", args.port))
    while True:
        query, peer = sock.recvfrom(4096)
        reply = answer(query)
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    sys.exit(main())
