"""Stand-in services for the appliance namespace: real TCP listeners on the given ports
(dual-stack), each greeting with a banner like the real service would.

Run inside a namespace: ``python listeners.py 22 25 80``; prints ``ready`` when listening.
"""

from __future__ import annotations

import asyncio
import socket
import sys

BANNERS = {22: b"SSH-2.0-OpenSSH_9.2p1 test\r\n", 25: b"220 gw.test ESMTP\r\n",
           80: b"HTTP/1.0 200 OK\r\n\r\nportcullis\r\n"}


async def greet(port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(BANNERS.get(port, b"hello\r\n"))
    try:
        await writer.drain()
        await asyncio.wait_for(reader.read(1), 10)
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def main(ports: list[int]) -> None:
    servers = []
    for port in ports:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        servers.append(await asyncio.start_server(
            lambda r, w, port=port: greet(port, r, w), sock=sock, backlog=256))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main([int(p) for p in sys.argv[1:]]))
