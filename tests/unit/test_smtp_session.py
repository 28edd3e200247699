"""The gateway's SMTP protocol in-process on loopback, next hop an aiosmtpd sink: how a
session ends when the client stalls, trickles its message or leaves mid-command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from aiosmtpd.smtp import SMTP

from portcullis import config as configuration
from portcullis.directory import domains, valid_addresses
from portcullis.services import Services
from portcullis.smtp.handler import GatewayHandler
from portcullis.smtp.server import GatewaySMTP, PregreetTest, SessionLimits, tls_context
from portcullis.store import open_store
from portcullis.tlscert import make_self_signed
from tests.support.faultproxy import FaultProxy
from tests.support.gateway import DEFENSES_OFF

pytestmark = pytest.mark.gateway

ENVELOPE = b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.com>\r\n"


class Sink:
    """The internal host: takes every message (or answers each with ``reply``)."""

    def __init__(self, reply: str = "250 2.0.0 Ok") -> None:
        self.messages: list[bytes] = []
        self.reply = reply

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return self.reply


def gateway_config(state: Path, smtp: dict | None = None,
                   delivery: dict | None = None,
                   defenses: dict | None = None) -> configuration.Config:
    return configuration.parse({
        "smtp": {"listen": "127.0.0.1:2525", "hostname": "gw.test", **(smtp or {})},
        "web": {"listen": "127.0.0.1:8080"},
        "store": {"dir": str(state)},
        "delivery": {"connect_timeout": 5.0, "command_timeout": 5.0, "data_timeout": 5.0,
                     **(delivery or {})},
        "defenses": {**DEFENSES_OFF, **(defenses or {})}, "clamav": {"enabled": False}})


@contextlib.asynccontextmanager
async def gateway(state: Path, smtp: dict | None = None, *, sink: Sink | None = None,
                  hop: Callable[[tuple[str, int]], str] | None = None,
                  delivery: dict | None = None, defenses: dict | None = None,
                  **switches: bool) -> AsyncIterator[int]:
    """A gateway protecting example.com (with the domain ``switches`` given), next hop
    ``sink`` (or the mail host ``hop`` gives for the sink's address); its port.
    ``delivery`` and ``defenses`` override those sections."""
    loop = asyncio.get_running_loop()
    sink = sink or Sink()
    internal = await loop.create_server(lambda: SMTP(sink, hostname="sink.test"),
                                        "127.0.0.1", 0)
    config = gateway_config(state, smtp, delivery, defenses)
    services = Services.open(config)
    services.store.migrate()
    address = ("127.0.0.1", internal.sockets[0].getsockname()[1])
    domains.add_domain(services.store, "example.com",
                       hop(address) if hop else "{}:{}".format(*address), **switches)
    handler = GatewayHandler(services)
    limits = SessionLimits(100, 100)
    tls = tls_context(config.smtp)
    pregreet = PregreetTest(config.smtp)
    server = await loop.create_server(
        lambda: GatewaySMTP(handler, limits, config.smtp, tls, pregreet), "127.0.0.1", 0)
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


async def send_message_slowly(port: int, chunks: list[bytes], pause: float) -> bytes:
    """Send a message in ``chunks``, ``pause`` seconds apart, until the gateway closes the
    connection; everything it answered after 354."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await answer(reader, b"220")
    writer.write(ENVELOPE + b"DATA\r\n")
    await answer(reader, b"354")
    answered = bytearray()

    async def collect() -> None:
        # Read as replies come: once the gateway has closed, a write of ours may fail
        # and the reader would then raise instead of handing over what it holds.
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                answered.extend(chunk)

    collecting = asyncio.ensure_future(collect())
    try:
        for chunk in [*chunks, b".\r\nQUIT\r\n"]:
            if collecting.done():
                break
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
    except ConnectionError:
        pass                                 # closed by the gateway while sending
    await asyncio.wait_for(collecting, 20)
    writer.close()
    return bytes(answered)


SLOW_LINKS = {"timeout": 2.0, "min_data_rate": 50_000}
HEADER = b"Subject: slow\r\nFrom: a@remote.test\r\nTo: bob@example.com\r\n\r\n"


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr("portcullis.smtp.server.DATA_RATE_GRACE", 0.5)


def test_a_client_trickling_its_message_below_the_floor_rate_gets_421(tmp_path, short_grace):
    sink = Sink()

    async def main() -> bytes:
        async with gateway(tmp_path, SLOW_LINKS, sink=sink) as port:
            # 10 KB/s against a 50 KB/s floor, each pause well within the idle timeout.
            return await send_message_slowly(port, [HEADER] + [b"x" * 98 + b"\r\n"] * 400,
                                             0.01)

    assert asyncio.run(main()).startswith(b"421 4.4.2 gw.test Error: timeout exceeded")
    assert sink.messages == []


def test_a_large_message_above_the_floor_rate_goes_through_however_long_it_takes(
        tmp_path, short_grace):
    sink = Sink()
    line = b"y" * 98 + b"\r\n"

    async def main() -> bytes:
        async with gateway(tmp_path, SLOW_LINKS, sink=sink) as port:
            # 200 KB/s for 2 s, longer than the grace and the idle timeout together.
            return await send_message_slowly(port, [HEADER] + [line * 200] * 20, 0.1)

    assert asyncio.run(main()).startswith(b"250 ")
    assert len(sink.messages) == 1 and sink.messages[0].count(line) == 4000


def test_a_pause_in_a_message_longer_than_the_idle_timeout_gets_421(tmp_path):
    async def main() -> bytes:
        async with gateway(tmp_path, {"timeout": 0.5, "min_data_rate": 0}) as port:
            return await send_message_slowly(port, [HEADER, b"body\r\n"], 1.0)

    assert asyncio.run(main()).startswith(b"421 4.4.2 gw.test Error: timeout exceeded")


def test_no_next_hop_connection_stays_open_when_the_client_leaves_during_rset(tmp_path):
    proxies: list[FaultProxy] = []

    def through_proxy(sink: tuple[str, int]) -> str:
        proxies.append(FaultProxy(sink))
        proxies[0].set_mode("hang_at_rset")     # the next hop never answers RSET
        return proxies[0].address

    async def main() -> int:
        async with gateway(tmp_path, hop=through_proxy) as port:
            (faults,) = proxies
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(ENVELOPE)
            await answer(reader, b"250")        # EHLO
            await answer(reader, b"250")        # MAIL
            await answer(reader, b"250")        # RCPT, passed on: a transaction is open
            assert faults.open_connections() == 1
            writer.write(b"RSET\r\n")
            await writer.drain()
            assert await asyncio.to_thread(faults.wait_hung, 1, 10)
            writer.close()                      # gone while the gateway waits for RSET
            # Well within the delivery timeouts (5 s) that would otherwise end the wait.
            for _ in range(100):
                if not faults.open_connections():
                    break
                await asyncio.sleep(0.02)
            left = faults.open_connections()
            faults.close()
            return left

    assert asyncio.run(main()) == 0


async def send_message(port: int, message: bytes) -> bytes:
    """Send one message (``message`` with its end line) in a session of its own; the
    reply to it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await answer(reader, b"220")
    writer.write(ENVELOPE + b"DATA\r\n")
    for _ in range(3):                  # EHLO, MAIL, RCPT
        await answer(reader, b"250")
    await answer(reader, b"354")
    writer.write(message)
    reply = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return reply


@pytest.mark.parametrize(("host_reply", "verdict", "label"), [
    ("554 5.7.1 Message refused by content policy", "reject", "Rejected"),
    ("452 4.2.2 Mailbox full", "tempfail", "TempFailed")])
def test_a_message_the_internal_host_refuses_at_end_of_data_is_archived_as_refused_by_it(
        tmp_path, host_reply, verdict, label):
    # The filter let it through, the internal host did not take it: the client got the
    # host's reply, and the archive (the web UI's list, its search by verdict, a domain
    # administrator's log) must say so, as the decision log does, not "accepted".
    async def main() -> bytes:
        async with gateway(tmp_path, sink=Sink(host_reply)) as port:
            return await send_message(port, b"Subject: refused\r\n\r\nhello\r\n.\r\n")

    assert asyncio.run(main()).decode().rstrip() == host_reply
    services = Services.open(gateway_config(tmp_path))
    try:
        [entry] = services.archive.search()
        assert entry.verdict == verdict and entry.delivery == host_reply
        assert entry.reason == f"by internal host: {host_reply[4:]}"
        assert entry.kept_back
        assert [m.id for m in services.archive.search(verdict=verdict)] == [entry.id]
        logged = services.decision_log.path.read_text()
    finally:
        services.close()
    assert f"{label} by internal host: {host_reply[4:]}" in logged


def test_a_mail_host_where_the_gateway_itself_listens_is_deferred_not_looped(tmp_path):
    # [smtp] listen is 127.0.0.1:2525 (gateway_config): a domain's mail host there is the
    # gateway, which would take each recipient in again as a new session.
    async def main() -> bytes:
        async with gateway(tmp_path, hop=lambda _sink: "127.0.0.1:2525") as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(ENVELOPE)
            await answer(reader, b"250")        # EHLO
            await answer(reader, b"250")        # MAIL
            reply = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            return reply

    reply = asyncio.run(main()).decode()
    assert reply.startswith("451 4.4.6 Internal mail host 127.0.0.1:2525 is this appliance")


@pytest.mark.parametrize("size", ["²", "٣"])
def test_a_size_that_is_not_ascii_digits_is_a_syntax_error(tmp_path, size):
    # aiosmtpd took any str.isdigit() text: '²' then failed in int() (451, an internal
    # error, for a client's typo) and '٣' was taken and passed on to the next hop.
    async def main() -> bytes:
        async with gateway(tmp_path) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(f"EHLO client.test\r\nMAIL FROM:<a@remote.test> SIZE={size}\r\n"
                         .encode())
            await answer(reader, b"250")        # EHLO
            reply = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            return reply

    # The reply aiosmtpd gives any other malformed parameter (SIZE=1e3, say).
    assert asyncio.run(main()).startswith(b"501 Syntax: MAIL FROM:")


@pytest.mark.parametrize("refused", [
    b"DATA\r\n",                                        # 503: no recipient yet
    b"MAIL FROM:<a@remote.test>\r\n",                   # 503: nested MAIL (after the first)
    b"RCPT TO:<bob@example.com> NOTIFY=NEVER\r\n",      # 555: not offered
])
def test_a_client_repeating_a_refused_command_is_disconnected(tmp_path, refused):
    # Each of these resets the idle timeout and was no error the gateway counted: a
    # client repeating one held its session slot for ever.  Postfix's hard error limit
    # counts every error reply; [smtp] max_errors is 20.
    async def main() -> bytes:
        async with gateway(tmp_path) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n" + refused * 30)
            rest = await replies_until_closed(reader, 10)
            writer.close()
            return rest

    replies = [line[:3] for line in asyncio.run(main()).split(b"\r\n") if line[3:4] == b" "]
    assert replies[-1] == b"421"
    assert len([r for r in replies if r.startswith(b"5")]) == 20, replies


def send_until(sock: socket.socket, replies: BinaryIO, data: bytes, code: bytes) -> None:
    """Send ``data``; read ``replies`` up to the first line beginning with ``code``."""
    sock.sendall(data)
    while not replies.readline().startswith(code):
        pass


def test_starttls_inside_tls_is_refused(tmp_path):
    # RFC 3207: TLS once per connection (EHLO no longer offers it).  aiosmtpd said "220
    # Ready to start TLS" again and the session broke in its TLS layer, logging a
    # traceback, where Postfix says the command is out of place.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed("gw.test", cert, key)

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            plain = sock.makefile("rb")
            plain.readline()                                # the greeting
            send_until(sock, plain, b"EHLO client.test\r\nSTARTTLS\r\n", b"220 ")
            with ssl._create_unverified_context().wrap_socket(sock) as tls:
                secure = tls.makefile("rb")
                send_until(tls, secure, b"EHLO client.test\r\nSTARTTLS\r\n", b"250 ")
                refused = secure.readline()
                tls.sendall(b"NOOP\r\n")
                return refused + secure.readline()

    async def main() -> bytes:
        async with gateway(tmp_path / "state", {"tls_certificate": str(cert),
                                                "tls_key": str(key)}) as port:
            return await asyncio.to_thread(client, port)

    assert asyncio.run(main()) == b"554 5.5.1 Error: TLS already active\r\n250 OK\r\n"


def test_a_client_that_closes_its_side_after_the_message_still_hears_250(tmp_path):
    # A client may send its message, pipeline QUIT and shut down its sending side; it
    # still reads the replies.  The gateway stopped the session at its end of input,
    # while the message was being judged: delivered, but never acknowledged, it came again.
    sink = Sink()

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            replies = sock.makefile("rb")
            send_until(sock, replies, ENVELOPE + b"DATA\r\n", b"354")
            sock.sendall(b"Subject: last\r\n\r\nhello\r\n.\r\nQUIT\r\n")
            sock.shutdown(socket.SHUT_WR)
            return replies.read()

    async def main() -> bytes:
        async with gateway(tmp_path, sink=sink) as port:
            return await asyncio.to_thread(client, port)

    assert asyncio.run(main()).startswith(b"250 2.0.0 Ok: queued as ")
    assert len(sink.messages) == 1


def test_a_client_connecting_does_not_shorten_another_sessions_mail_line(tmp_path):
    # After EHLO, MAIL may be 512 bytes plus what SIZE (26) and SMTPUTF8 (10) add.
    # aiosmtpd kept those limits in one dictionary for every session and emptied it at
    # each new connection: a session's MAIL FROM of 530 bytes got 500 (a bounce for its
    # sender) when another client had connected since its EHLO.
    line = b"MAIL FROM:<%s@remote.test> SIZE=1000 BODY=8BITMIME\r\n"
    line %= b"x" * (530 - len(line % b"") + 2)

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            replies = sock.makefile("rb")
            send_until(sock, replies, b"EHLO client.test\r\n", b"250 ")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as other:
                other.makefile("rb").readline()          # its session has begun
                sock.sendall(line)
                return replies.readline()

    async def main() -> bytes:
        async with gateway(tmp_path) as port:
            return await asyncio.to_thread(client, port)

    assert len(line) == 532
    assert asyncio.run(main()).startswith(b"250 ")


def test_a_message_whose_delivery_fails_inside_the_gateway_is_archived_as_deferred(
        tmp_path, monkeypatch):
    # The message is archived before it is handed on; when handing it on fails inside
    # the gateway (a fault, not the next hop's reply), the client hears 451 and sends it
    # again, so the archive must not keep saying it was accepted.
    def broken_rewrite(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("injected fault")

    monkeypatch.setattr("portcullis.smtp.handler.rewrite", broken_rewrite)

    async def main() -> bytes:
        async with gateway(tmp_path) as port:
            return await send_message(port, b"Subject: fault\r\n\r\nhello\r\n.\r\n")

    assert asyncio.run(main()).startswith(b"451 4.3.0 ")
    services = Services.open(gateway_config(tmp_path))
    try:
        [entry] = services.archive.search()
        assert entry.verdict == "tempfail" and entry.delivery.startswith("451 4.3.0 ")
        logged = services.decision_log.path.read_text()
    finally:
        services.close()
    assert "TempFailed Internal error" in logged


@pytest.mark.parametrize(("mail", "rcpt", "refused"), [
    (b"MAIL FROM:<a@remote.test>", "RCPT TO:<bøb@example.com>", 1),
    (b"MAIL FROM:<a@remote.test>", "RCPT TO:<bob@bücher.example>", 1),
    ("MAIL FROM:<ä@remote.test>".encode(), "RCPT TO:<bob@example.com>", 0)])
def test_an_address_beyond_ascii_without_smtputf8_is_refused_by_the_gateway(
        tmp_path, mail, rcpt, refused):
    # RFC 6531: only a transaction that declared SMTPUTF8 may carry such an address.  The
    # gateway refused it only when the internal host lacked SMTPUTF8, in words blaming
    # that host, after connecting to it (an IDN domain was even passed on in A-labels).
    proxies: list[FaultProxy] = []

    def through_proxy(sink: tuple[str, int]) -> str:
        proxies.append(FaultProxy(sink))
        return proxies[0].address

    async def main() -> tuple[bytes, int]:
        async with gateway(tmp_path, hop=through_proxy) as port:
            (faults,) = proxies
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(b"EHLO client.test\r\n" + mail + b"\r\n" + rcpt.encode() + b"\r\n")
            await answer(reader, b"250")        # EHLO
            replies = [await asyncio.wait_for(reader.readline(), 10) for _ in range(2)]
            writer.close()
            connected = faults.open_connections()
            faults.close()
            return replies[refused], connected

    reply, connected = asyncio.run(main())
    assert reply == b"553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
    assert connected == 0


@pytest.mark.parametrize(("received", "reply"), [(48, b"250"), (49, b"554")])
def test_a_message_in_a_mail_loop_is_refused_at_the_hop_limit(tmp_path, received, reply):
    # Postfix's hopcount_limit (50, its own Received: counted): a message that has come
    # round that often is in a loop, and the gateway relayed it round once more each time.
    sink = Sink()
    message = b"Received: from a.test by b.test; Mon, 1 Dec 2026 00:00:00 +0000\r\n" \
        * received + b"Subject: loop\r\n\r\nhello\r\n.\r\n"

    async def main() -> bytes:
        async with gateway(tmp_path, sink=sink) as port:
            return await send_message(port, message)

    line = asyncio.run(main())
    assert line[:3] == reply, line
    assert len(sink.messages) == (reply == b"250")
    if reply == b"554":
        assert line.startswith(b"554 5.4.6 Too many hops")


def test_a_client_sending_recipients_past_the_limit_without_end_is_disconnected(tmp_path):
    # Past max_recipients each RCPT gets 452 (the client sends them again later), and
    # was counted nowhere: each reset the idle timeout, so one client could hold its
    # slot for ever.  As Postfix, the first 1000 of a transaction are no error (a long
    # list), each one after them is, towards max_errors (20).
    overshoot = 1000 + 20 + 5

    async def main() -> bytes:
        async with gateway(tmp_path, {"max_recipients": 1}) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(ENVELOPE + b"RCPT TO:<bob@example.com>\r\n" * overshoot
                         + b"QUIT\r\n")
            rest = await replies_until_closed(reader, 30)
            writer.close()
            return rest

    replies = [line[:3] for line in asyncio.run(main()).split(b"\r\n") if line[3:4] == b" "]
    assert replies[:3] == [b"250"] * 3                          # EHLO, MAIL, first RCPT
    assert replies[3:] == [b"452"] * 1020 + [b"421"], replies[-5:]


async def pregreeting_session(port: int, talk_early: bool) -> bytes:
    """A session that sends EHLO, MAIL and RCPT as soon as the greeting begins (a spambot)
    or after its last line (an MTA), then QUIT; all the gateway said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    greeting = [await asyncio.wait_for(reader.readline(), 10)]
    while not talk_early and greeting[-1][3:4] == b"-":
        greeting.append(await asyncio.wait_for(reader.readline(), 10))
    writer.write(ENVELOPE + b"QUIT\r\n")
    rest = await replies_until_closed(reader, 10)
    writer.close()
    return b"".join(greeting) + rest


def final_replies(said: bytes) -> list[bytes]:
    return [line for line in said.split(b"\r\n") if line[3:4] == b" "]


@pytest.mark.parametrize(("action", "replies"), [
    ("enforce", [b"220", b"250", b"250", b"550", b"221"]),
    ("drop", [b"521"]),
    ("ignore", [b"220", b"250", b"250", b"250", b"221"])])
def test_a_client_talking_before_the_greeting_ends_is_refused_as_postscreen_does(
        tmp_path, action, replies):
    # Spambots send their commands without waiting for the greeting; real MTAs read to
    # its last line, which the gateway sends only after pregreet_wait.
    async def main() -> bytes:
        async with gateway(tmp_path, {"pregreet_wait": 0.5, "pregreet_action": action}
                           ) as port:
            return await pregreeting_session(port, talk_early=True)

    said = asyncio.run(main())
    assert said.startswith(b"220-gw.test ")
    assert [line[:3] for line in final_replies(said)] == replies, said
    refusal = {"enforce": b"550 5.5.1 Protocol error: you talked before the greeting",
               "drop": b"521 5.5.1 Protocol error: you talked before the greeting"}
    assert action not in refusal or refusal[action] in final_replies(said)


def test_a_client_that_waited_for_the_greeting_is_not_kept_waiting_again(tmp_path):
    async def main() -> list[bytes]:
        async with gateway(tmp_path, {"pregreet_wait": 0.5}) as port:
            return [await pregreeting_session(port, talk_early=False) for _ in range(2)]

    first, second = asyncio.run(main())
    assert first.startswith(b"220-gw.test ")
    assert [line[:3] for line in final_replies(first)] == [b"220", b"250", b"250", b"250",
                                                         b"221"], first
    assert second.startswith(b"220 gw.test "), second        # passed: greeted at once
    assert [line[:3] for line in final_replies(second)] == [line[:3] for line in
                                                           final_replies(first)]


def test_a_white_listed_client_is_not_put_to_the_pregreet_test(tmp_path):
    # Its mail is taken whatever it scores (README), yet a white-listed partner's server
    # that talked early got 550 for every recipient; postscreen's access list exempts
    # such a client from its tests.
    from portcullis.directory.bwlists import add_entry

    async def main() -> bytes:
        async with gateway(tmp_path, {"pregreet_wait": 0.5}) as port:
            add_entry(open_store(tmp_path), "white", "127.0.0.1")
            return await pregreeting_session(port, talk_early=True)

    said = asyncio.run(main())
    assert said.startswith(b"220 gw.test "), said             # greeted at once
    assert [line[:3] for line in final_replies(said)] == [b"220", b"250", b"250", b"250",
                                                        b"221"], said


def test_a_domain_validated_by_an_empty_list_alone_defers_its_mail(tmp_path, caplog):
    # Every recipient was refused 550 5.1.1 User unknown, and the refusals counted
    # towards blocking the sender as an address harvester: the domain's whole mail was
    # lost to a configuration error.  Postfix answers a failed lookup table 451.
    async def session(port: int, recipients: list[str]) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await answer(reader, b"220")
        writer.write(b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n" + b"".join(
            f"RCPT TO:<{r}>\r\n".encode() for r in recipients) + b"QUIT\r\n")
        said = await replies_until_closed(reader, 10)
        writer.close()
        return final_replies(said)[2:-1]          # the RCPTs' replies

    async def main() -> tuple[list[bytes], list[bytes]]:
        async with gateway(tmp_path, defenses={"harvest_threshold": 3},
                           smtp_validation=False) as port:
            empty = await session(port, [f"user{n}@example.com" for n in range(5)])
            store = open_store(tmp_path)
            valid_addresses.import_addresses(store, "example.com", "bob@example.com")
            store.close()
            listed = await session(port, ["bob@example.com", "eve@example.com"])
            return empty, listed

    caplog.set_level(logging.WARNING, "portcullis.smtp.handler")
    empty, listed = asyncio.run(main())
    assert empty == [b"451 4.3.0 <user%d@example.com>: Temporary lookup failure" % n
                     for n in range(5)]
    assert "domain example.com validates recipients by its valid-address list alone, and" \
        " the list is empty" in caplog.text
    # Not counted as unknown users: the same client is no harvester once the list is filled.
    assert [line[:9] for line in listed] == [b"250 2.1.5", b"550 5.1.1"]
    log = (tmp_path / "portcullis.log").read_text()
    assert log.count(" - TempFailed Valid address list empty 127.0.0.1 ") == 5
