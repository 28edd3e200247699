"""The framework's own limit: an aiosmtpd server that accepts every message and discards it.

Run with the same number of worker processes as the gateway (SO_REUSEPORT listeners, the
kernel spreads connections), so ``gateway / bare`` isolates what Portcullis itself costs.

    python -m bench.bare_aiosmtpd --listen 127.0.0.1:PORT --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class Discard:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Ok: discarded"


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def run_worker(host: str, port: int, reuse_port: bool) -> None:
    loop = asyncio.get_running_loop()
    handler = Discard()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bare.test", ident="bare aiosmtpd"),
        sock=listening_socket(host, port, reuse_port), backlog=4096)   # as the gateway
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    host, _, port_text = args.listen.rpartition(":")
    port, workers = int(port_text), max(1, args.workers)
    if workers == 1:
        asyncio.run(run_worker(host, port, reuse_port=False))
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            asyncio.run(run_worker(host, port, reuse_port=True))
            os._exit(0)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
