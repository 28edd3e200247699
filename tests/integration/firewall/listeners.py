"""Stand-in services for the appliance namespace: real TCP listeners on the given ports
(dual-stack), each greeting with a banner like the real service would.  Port 25 goes on to
take mail like an SMTP server (enough for smtplib), its EHLO answer naming the address the
connection came from.

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
        if port == 25:
            await smtp(reader, writer)
        else:
            await asyncio.wait_for(reader.read(1), 10)
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")[0].removeprefix("::ffff:")
    received = None              # bytes of the message being received (DATA), else None
    while line := await asyncio.wait_for(reader.readline(), 10):
        if received is not None:
            if line == b".\r\n":
                writer.write(f"250 accepted {received} bytes\r\n".encode())
                received = None
            else:
                received += len(line)
            continue
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(f"250 gw.test hello [{peer}]\r\n".encode())
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            writer.write(b"250 ok\r\n")
        elif verb == b"DATA":
            received = 0
            writer.write(b"354 end with .\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"500 unknown command\r\n")
        await writer.drain()


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
