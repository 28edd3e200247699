"""The gateway's SMTP protocol in-process on loopback, next hop an aiosmtpd sink: how a
session ends when the client stalls, trickles its message or leaves mid-command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from portcullis import config as configuration
from portcullis.directory import domains
from portcullis.services import Services
from portcullis.smtp.handler import GatewayHandler
from portcullis.smtp.server import GatewaySMTP, SessionLimits

pytestmark = pytest.mark.gateway

ENVELOPE = b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.com>\r\n"


class Sink:
    """The internal host: takes every message."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 2.0.0 Ok"


@contextlib.asynccontextmanager
async def gateway(state: Path, smtp: dict | None = None, *, sink: Sink | None = None,
                  mail_host: str | None = None) -> AsyncIterator[int]:
    """A gateway protecting example.com (next hop ``mail_host``, else ``sink``); its port."""
    loop = asyncio.get_running_loop()
    sink = sink or Sink()
    internal = await loop.create_server(lambda: SMTP(sink, hostname="sink.test"),
                                        "127.0.0.1", 0)
    config = configuration.parse({
        "smtp": {"listen": "127.0.0.1:2525", "hostname": "gw.test", **(smtp or {})},
        "web": {"listen": "127.0.0.1:8080"},
        "store": {"dir": str(state)},
        "delivery": {"connect_timeout": 5.0, "command_timeout": 5.0, "data_timeout": 5.0}})
    services = Services.open(config)
    services.store.migrate()
    port = internal.sockets[0].getsockname()[1]
    domains.add_domain(services.store, "example.com", mail_host or f"127.0.0.1:{port}")
    handler = GatewayHandler(services)
    limits = SessionLimits(100, 100)
    server = await loop.create_server(lambda: GatewaySMTP(handler, limits, config.smtp, 60.0),
                                      "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        internal.close()
        await handler.nexthops.close()
        services.close()


async def replies_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        return await reader.read()


async def answer(reader: asyncio.StreamReader, code: bytes) -> bytes:
    """Read replies up to the last line of one starting with ``code``."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, "connection closed"
        if line.startswith(code + b" "):
            return line
        assert line.startswith(code + b"-") or line[:1] in b"2", line


def test_an_idle_client_is_told_421_timeout_before_it_is_closed(tmp_path):
    async def main() -> bytes:
        async with gateway(tmp_path, {"timeout": 0.5}) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(b"EHLO client.test\r\n")
            await answer(reader, b"250")
            rest = await replies_until_closed(reader, 10)
            writer.close()
            return rest

    assert asyncio.run(main()) == b"421 4.4.2 gw.test Error: timeout exceeded\r\n"
