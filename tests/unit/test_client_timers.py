"""A before-queue gateway keeps its client waiting while it talks to the internal host:
whatever that host does, the client hears a 4xx before its own timeout (RFC 5321
4.5.3.2), scaled down here to seconds, so it never retries a recipient the gateway is
still working on, nor a message the internal host may already have."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP

from portcullis.services import Services
from tests.support.faultproxy import FaultProxy
from tests.unit.test_smtp_session import (
    ENVELOPE,
    Sink,
    answer,
    gateway,
    gateway_config,
    replies_until_closed,
    send_message,
)

pytestmark = pytest.mark.gateway

# The client's RCPT timeout in these tests (5 minutes in RFC 5321).
CLIENT_RCPT_PATIENCE = 4.5


class SlowHost:
    """An internal host that takes ``delay`` seconds over its greeting and over each
    reply, each within the gateway's per-command timeouts, and offers no PIPELINING (so
    MAIL and RCPT wait one after the other)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(self.delay)
            writer.write(b"220 slow.test ESMTP\r\n")
            while await reader.readline():
                await asyncio.sleep(self.delay)
                writer.write(b"250 ok\r\n")
        except ConnectionError:
            pass
        finally:
            writer.close()


def test_a_slow_internal_host_gets_the_client_a_451_before_its_rcpt_timeout(tmp_path):
    # Each of greeting, EHLO, MAIL and RCPT within its own timeout, together longer than
    # the client waits: it gave up and retried while the gateway still worked for it.
    async def main() -> bytes:
        slow = SlowHost(1.2)
        mail_host = await slow.start()
        try:
            async with gateway(tmp_path, hop=lambda _sink: mail_host,
                               delivery={"connect_timeout": 1.5, "command_timeout": 1.5,
                                         "recipient_deadline": 2.0}) as port:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await answer(reader, b"220")
                writer.write(ENVELOPE)
                await answer(reader, b"250")        # EHLO
                await answer(reader, b"250")        # MAIL
                async with asyncio.timeout(CLIENT_RCPT_PATIENCE):
                    reply = await reader.readline()
                writer.close()
                return reply
        finally:
            slow.close()

    reply = asyncio.run(main()).decode()
    assert reply.startswith("451 4.4.1 Internal mail host") and "timeout" in reply, reply


# The client's DATA-termination timeout in these tests (10 minutes in RFC 5321).
CLIENT_DATA_END_PATIENCE = 5.0


def test_an_internal_host_silent_after_the_message_gets_the_client_a_451_in_time(tmp_path):
    # The client waited for the internal host's data_timeout (600 s by default) after the
    # checks and the 354, past its own 10 minutes: it gave up, and its retry of a message
    # delivered meanwhile was a duplicate.  reply_deadline answers 451 before that.
    proxies: list[FaultProxy] = []

    def through_proxy(sink: tuple[str, int]) -> str:
        proxies.append(FaultProxy(sink))
        proxies[0].set_mode("hang_before_reply")    # the host's reply never comes back
        return proxies[0].address

    async def main() -> bytes:
        async with gateway(tmp_path, hop=through_proxy,
                           delivery={"data_timeout": 60.0, "reply_deadline": 2.0}) as port:
            try:
                async with asyncio.timeout(CLIENT_DATA_END_PATIENCE):
                    return await send_message(port, b"Subject: s\r\n\r\nhello\r\n.\r\n")
            finally:
                proxies[0].close()

    reply = asyncio.run(main()).decode()
    assert reply.startswith("451 4.4.1 Internal mail host") and "timeout" in reply, reply
    services = Services.open(gateway_config(tmp_path))
    try:
        [entry] = services.archive.search()
    finally:
        services.close()
    assert entry.verdict == "tempfail" and entry.delivery.startswith("451 4.4.1")


class DeferringHost(Sink):
    """An internal host that defers every recipient (as one greylisting would)."""

    async def handle_RCPT(self, server: SMTP, session: object, envelope: object,
                          address: str, rcpt_options: list[str]) -> str:
        return "450 4.2.0 Greylisted, try again later"


def test_a_client_whose_recipients_are_each_deferred_is_disconnected_past_the_limit(
        tmp_path):
    # A 4xx was counted nowhere while each RCPT reset the idle timeout: a client could
    # send deferred recipients for ever.  They count towards max_deferrals (200), far
    # more than a legitimate transaction greylisted whole gets (one per recipient, at
    # most max_recipients, 100).
    async def main() -> bytes:
        async with gateway(tmp_path, sink=DeferringHost()) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(ENVELOPE + b"RCPT TO:<bob@example.com>\r\n" * 250 + b"QUIT\r\n")
            rest = await replies_until_closed(reader, 30)
            writer.close()
            return rest

    replies = [line[:3] for line in asyncio.run(main()).split(b"\r\n") if line[3:4] == b" "]
    assert replies[:2] == [b"250"] * 2                          # EHLO, MAIL
    assert replies[2:] == [b"450"] * 200 + [b"421"], replies[-5:]
