"""The next-hop client against a scripted SMTP peer on loopback: pipelining, wire form,
and the ways a next hop can break that must end in a 4xx, never in a lost recipient."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import pytest

from portcullis.config import DeliveryConfig, HostPort
from portcullis.smtp.nexthop import NextHopPool, NextHopSession, Reply, deliver

pytestmark = pytest.mark.gateway

TIMEOUTS = DeliveryConfig(connect_timeout=2.0, command_timeout=2.0, data_timeout=2.0)
# A peer's answer to one command line: the reply bytes, or None to drop the connection.
Script = Callable[[bytes], bytes | None]


class Listener:
    """A server on a free loopback port, answering each connection with ``_serve``."""

    server: asyncio.Server | None = None

    async def __aenter__(self) -> HostPort:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return HostPort("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class Peer(Listener):
    """A next hop that answers each command by a script and records what it was sent."""

    def __init__(self, script: Script, *, extensions: tuple[str, ...] = ("PIPELINING",),
                 esmtp: bool = True):
        self.script = script
        self.extensions = extensions
        self.esmtp = esmtp                   # False: EHLO refused, as by an RFC 821 server
        self.commands: list[bytes] = []
        self.messages: list[bytes] = []
        self.packets: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer ESMTP\r\n")
        try:
            while line := await reader.readline():
                self.commands.append(line)
                if line.upper().startswith(b"EHLO") and not self.esmtp:
                    writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                    await writer.drain()
                    continue
                if line.upper().startswith(b"EHLO"):
                    lines = ["peer", *self.extensions]
                    writer.write("".join(f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n"
                                         for i, text in enumerate(lines)).encode())
                    await writer.drain()
                    continue
                answer = self.script(line)
                if answer is None:
                    writer.transport.abort()
                    return
                if answer != b"354":
                    writer.write(answer + b"\r\n")
                    await writer.drain()
                    continue
                writer.write(b"354 go ahead\r\n")
                body = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    if not chunk:
                        return
                    body += chunk
                self.messages.append(body)
                writer.write(b"250 2.0.0 queued\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the suite has no asyncio plugin)."""
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


def accept_all(line: bytes) -> bytes | None:
    if line.upper().startswith(b"DATA"):
        return b"354"
    if line.upper().startswith(b"QUIT"):
        return b"221 bye"
    return b"250 ok"


def session(hop: HostPort) -> NextHopSession:
    return NextHopSession(hop, helo_name="gw.test", timeouts=TIMEOUTS)


@in_loop
async def test_a_message_goes_through_in_wire_form_with_mail_and_rcpt_pipelined():
    peer = Peer(accept_all)
    async with peer as hop:
        hop_session = session(hop)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        assert (await hop_session.add_recipient("a@x.test", [], "c@y.test")).ok
        reply = await hop_session.data(b"Subject: s\n\n.dot line\r\nlast line without end")
        await hop_session.close()
    assert reply.code == 250 and "queued" in reply.text
    assert peer.commands[1:4] == [b"MAIL FROM:<a@x.test>\r\n", b"RCPT TO:<b@y.test>\r\n",
                                  b"RCPT TO:<c@y.test>\r\n"]
    assert peer.messages == [b"Subject: s\r\n\r\n..dot line\r\nlast line without end\r\n"]


@in_loop
async def test_without_pipelining_each_command_waits_for_its_reply():
    peer = Peer(accept_all, extensions=("8BITMIME",))
    async with peer as hop:
        hop_session = session(hop)
        assert (await hop_session.add_recipient("a@x.test", ["BODY=8BITMIME", "SMTPUTF8"],
                                                "b@y.test")).ok
        await hop_session.close()
    # SMTPUTF8 is dropped: the peer does not offer it.
    assert peer.commands[1] == b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"


@in_loop
async def test_a_refused_sender_is_the_answer_and_the_pipelined_rcpt_reply_is_consumed():
    def refuse_sender(line: bytes) -> bytes | None:
        if line.startswith(b"MAIL"):
            return b"550 5.7.1 sender refused"
        if line.startswith(b"RCPT"):
            return b"503 5.5.1 need MAIL first"
        return accept_all(line)

    peer = Peer(refuse_sender)
    async with peer as hop:
        pool = NextHopPool(helo_name="gw.test", timeouts=TIMEOUTS)
        hop_session = pool.acquire(hop)
        reply = await hop_session.add_recipient("bad@x.test", [], "b@y.test")
        assert reply.code == 550 and not hop_session.in_transaction
        await pool.release(hop_session)
        # Back in step: the pooled connection is reused and its next reply is its own.
        again = pool.acquire(hop)
        assert again is hop_session
        assert (await again.add_recipient("bad@x.test", [], "b@y.test")).code == 550
        await pool.close()
    assert sum(c.startswith(b"EHLO") for c in peer.commands) == 1


@in_loop
async def test_a_connection_lost_between_recipients_refuses_the_rest_of_the_transaction():
    """The recipients the next hop accepted went with the connection: a later recipient
    must not open a new transaction without them, or they would be lost."""
    rcpts = 0

    def drop_after_first_rcpt(line: bytes) -> bytes | None:
        nonlocal rcpts
        if line.startswith(b"RCPT"):
            rcpts += 1
            return b"250 ok" if rcpts == 1 else None
        return accept_all(line)

    peer = Peer(drop_after_first_rcpt)
    async with peer as hop:
        hop_session = session(hop)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        second = await hop_session.add_recipient("a@x.test", [], "c@y.test")
        third = await hop_session.add_recipient("a@x.test", [], "d@y.test")
        data = await hop_session.data(b"Subject: s\r\n\r\nbody\r\n")
        await hop_session.reset()
        assert not hop_session.in_transaction
    assert (second.code, third.code, data.code) == (451, 451, 451)
    assert sum(c.startswith(b"MAIL") for c in peer.commands) == 1
    assert peer.messages == []


@pytest.mark.parametrize("bad_reply", [
    b"hello there",              # not a reply at all
    b"25",                       # too short
    b"250-" + b"x" * 9000,       # one line longer than any server sends
])
@in_loop
async def test_a_malformed_reply_becomes_a_temporary_failure(bad_reply):
    def malformed(line: bytes) -> bytes | None:
        return bad_reply if line.startswith(b"RCPT") else accept_all(line)

    async with Peer(malformed) as hop:
        hop_session = session(hop)
        reply = await hop_session.add_recipient("a@x.test", [], "b@y.test")
    assert reply.code == 451 and reply.text.startswith("4.4.1")


@in_loop
async def test_a_silent_next_hop_times_out_into_a_temporary_failure():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()               # greets nobody, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    hop = HostPort("127.0.0.1", server.sockets[0].getsockname()[1])
    fast = DeliveryConfig(connect_timeout=0.3, command_timeout=0.3, data_timeout=0.3)
    reply = await NextHopSession(hop, helo_name="gw.test", timeouts=fast).add_recipient(
        "a@x.test", [], "b@y.test")
    server.close()
    assert reply.code == 451 and "timeout" in reply.text


@in_loop
async def test_a_command_argument_with_a_line_break_is_never_sent():
    peer = Peer(accept_all)
    async with peer as hop:
        reply = await session(hop).add_recipient("a@x.test", [],
                                                 "b@y.test>\r\nRCPT TO:<evil@z.test")
    assert reply.code == 451
    assert not any(b"evil" in c for c in peer.commands)


@in_loop
async def test_a_data_refused_before_the_content_is_reset_before_reuse():
    def refuse_data(line: bytes) -> bytes | None:
        return b"554 5.3.0 no" if line.startswith(b"DATA") else accept_all(line)

    peer = Peer(refuse_data)
    async with peer as hop:
        pool = NextHopPool(helo_name="gw.test", timeouts=TIMEOUTS)
        hop_session = pool.acquire(hop)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        assert (await hop_session.data(b"Subject: s\r\n\r\nbody\r\n")).code == 554
        await pool.release(hop_session)
        await pool.close()
    assert b"RSET\r\n" in peer.commands


@in_loop
async def test_a_421_closes_the_next_hop_connection_and_is_never_passed_on_as_421():
    """421 says the sender of it closes the connection (RFC 5321 3.8): the client's
    connection to the gateway stays open, so it must not hear 421.  A kept connection
    that says 421 to MAIL (its idle timeout) is replaced by a new one at once."""
    mails = rcpts = 0

    def closing(line: bytes) -> bytes | None:
        nonlocal mails, rcpts
        if line.startswith(b"MAIL"):
            mails += 1
            return b"421 4.4.2 peer Error: timeout exceeded" if mails == 1 else b"250 ok"
        if line.startswith(b"RCPT"):
            rcpts += 1
            return b"421 4.3.2 Service shutting down" if rcpts == 2 else b"250 ok"
        return accept_all(line)

    peer = Peer(closing, extensions=())
    async with peer as hop:
        hop_session = session(hop)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        closed = await hop_session.add_recipient("a@x.test", [], "c@y.test")
        data = await hop_session.data(b"Subject: s\r\n\r\nbody\r\n")
    assert sum(c.startswith(b"EHLO") for c in peer.commands) == 2
    assert (closed.code, closed.text[:5]) == (451, "4.4.1") and "4.3.2" in closed.text
    assert data.code == 451 and peer.messages == []


class Silent(Listener):
    """A next hop that takes connections and never says a word (a hung MTA)."""

    def __init__(self) -> None:
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read()                  # until the gateway gives up and closes
        writer.close()


QUICK = DeliveryConfig(connect_timeout=0.3, command_timeout=2.0, data_timeout=2.0)


@in_loop
async def test_a_next_hop_that_never_greets_is_waited_for_once_per_recipient():
    # The retry on a second connection is for a kept one the next hop dropped; a new
    # one that got no greeting in time would only wait the connect timeout again.
    silent = Silent()
    async with silent as hop:
        hop_session = NextHopSession(hop, helo_name="gw.test", timeouts=QUICK)
        reply = await hop_session.add_recipient("a@x.test", [], "b@y.test")
    assert (reply.code, reply.text[:5]) == (451, "4.4.1") and "timeout" in reply.text
    assert silent.connections == 1


def test_a_next_hop_that_did_not_answer_defers_its_next_recipients_at_once_for_a_while():
    # Each further recipient would otherwise keep its client waiting the connect
    # timeout again.  Never more than a 4xx, and forgotten by itself: the host is tried
    # again once the memory has passed.
    silent = Silent()
    timeouts = replace(QUICK, host_down_seconds=1.0)
    replies: list[Reply] = []

    @in_loop
    async def attempt() -> None:
        async with silent as hop:
            pool = NextHopPool(helo_name="gw.test", timeouts=timeouts)
            for pause in (0.0, 0.0, 1.2):
                await asyncio.sleep(pause)
                hop_session = pool.acquire(hop)
                replies.append(await hop_session.add_recipient("a@x.test", [], "b@y.test"))
                await pool.release(hop_session)
                if len(replies) == 2:
                    assert silent.connections == 1      # the second was not dialled
                    # Release is an administrator's: it tries at once.
                    released, _ = await deliver(hop, helo_name="gw.test", timeouts=timeouts,
                                                sender="a@x.test", recipients=["b@y.test"],
                                                content=b"x\r\n")
                    assert released.code == 451 and silent.connections == 2
            await pool.close()

    attempt()
    assert [(r.code, r.text[:5]) for r in replies] == [(451, "4.4.1")] * 3
    assert "timeout" in replies[0].text and "not tried again for" in replies[1].text
    assert silent.connections == 3


def test_a_refused_connection_is_not_remembered_as_a_host_down():
    # It cost no wait, and the next recipient finds the host back at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        hop = HostPort("127.0.0.1", closed.getsockname()[1])    # bound, not listening
        replies: list[Reply] = []

        @in_loop
        async def attempt() -> None:
            pool = NextHopPool(helo_name="gw.test", timeouts=QUICK)
            for _ in range(2):
                hop_session = pool.acquire(hop)
                replies.append(await hop_session.add_recipient("a@x.test", [], "b@y.test"))
                await pool.release(hop_session)

        attempt()
    assert [r.code for r in replies] == [451, 451]
    assert all("connection refused" in r.text for r in replies)


@in_loop
async def test_a_next_hop_refusing_ehlo_is_greeted_with_helo_and_takes_the_mail():
    """A server that refuses EHLO (5xx: it knows only RFC 821) is greeted with HELO, as
    Postfix's client does, and sent no extension's parameters: it is no reason to defer
    every message for it for ever."""
    peer = Peer(accept_all, esmtp=False)
    async with peer as hop:
        hop_session = session(hop)
        assert (await hop_session.add_recipient("a@x.test", ["BODY=8BITMIME", "SIZE=99"],
                                                "b@y.test")).ok
        assert (await hop_session.data(b"Subject: s\r\n\r\nbody\r\n")).ok
        await hop_session.close()
    assert [c.split(b" ")[0].strip() for c in peer.commands] == \
        [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]
    assert peer.commands[1:3] == [b"HELO gw.test\r\n", b"MAIL FROM:<a@x.test>\r\n"]
    assert peer.messages == [b"Subject: s\r\n\r\nbody\r\n"]


EIGHT_BIT = (b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\nK\xc3\xb6ln\r\n")


@in_loop
async def test_8bit_content_goes_unchanged_to_a_peer_offering_8bitmime():
    peer = Peer(accept_all, extensions=("PIPELINING", "8BITMIME"))
    async with peer as hop:
        hop_session = session(hop)
        await hop_session.add_recipient("a@x.test", ["BODY=8BITMIME"], "b@y.test")
        assert (await hop_session.data(EIGHT_BIT)).ok
        await hop_session.close()
    assert peer.commands[1] == b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
    assert peer.messages == [EIGHT_BIT]


@in_loop
async def test_8bit_content_is_converted_for_a_peer_without_8bitmime():
    peer = Peer(accept_all)
    async with peer as hop:
        hop_session = session(hop)
        await hop_session.add_recipient("a@x.test", ["BODY=8BITMIME"], "b@y.test")
        assert (await hop_session.data(EIGHT_BIT)).ok
        await hop_session.close()
    assert peer.commands[1] == b"MAIL FROM:<a@x.test>\r\n"
    assert peer.messages == [b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Transfer-Encoding: quoted-printable\r\n"
                             b"MIME-Version: 1.0\r\n\r\nK=C3=B6ln\r\n"]


@in_loop
async def test_unconvertible_8bit_content_is_refused_before_data_and_the_hop_reset():
    peer = Peer(accept_all)
    async with peer as hop:
        hop_session = session(hop)
        await hop_session.add_recipient("a@x.test", [], "b@y.test")
        reply = await hop_session.data(b"Subject: K\xc3\xb6ln\r\n\r\nbody\r\n")
        await hop_session.reset()
        await hop_session.close()
    assert reply.code == 554 and reply.text.startswith("5.6.3") and "8BITMIME" in reply.text
    assert not peer.messages
    assert [c.split(b" ")[0].strip() for c in peer.commands[3:]] == [b"RSET", b"QUIT"]


@pytest.mark.parametrize("notation", ["0x7f000001", "0x7f.0x1", "2130706433", "0177.0.0.1"])
def test_a_stored_host_in_an_address_notation_of_inet_aton_is_deferred_not_dialled(
        caplog, notation):
    # Stored by a release before config.parse_hostport refused it; getaddrinfo reads it
    # as 127.0.0.1, so the gateway delivered the domain's mail to the appliance itself.
    peer = Peer(accept_all)

    @in_loop
    async def attempt() -> None:
        async with peer as hop:
            stored = HostPort(notation, hop.port)
            reply = await session(stored).add_recipient("a@x.test", [], "b@y.test")
            assert reply.code == 451 and "not a valid host name or address" in reply.text
            released, accepted = await deliver(stored, helo_name="gw.test",
                                               timeouts=TIMEOUTS, sender="a@x.test",
                                               recipients=["b@y.test"], content=b"x\r\n")
            assert released.code == 451 and accepted == []

    with caplog.at_level("WARNING", logger="portcullis.smtp.nexthop"):
        attempt()
    assert peer.commands == []
    assert f"its mail host '{notation}:" in caplog.text
    assert "is the IPv4 address 127.0.0.1 in another notation: write 127.0.0.1" in caplog.text
    assert "correct it in the domain's settings" in caplog.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "exchange01", "mail_host.lan"])
def test_hosts_written_plainly_or_as_names_are_still_dialled(host):
    # Only inet_aton's other notations are held back: a name an older release took (an
    # underscore, a single label) is resolved as before, and mail to it not deferred.
    from portcullis.smtp.nexthop import hop_problem
    assert hop_problem(HostPort(host, 25)) == ""


def resolving(monkeypatch, names: dict[str, str]) -> None:
    """The event loop's getaddrinfo answers ``names`` (name: address) as DNS would."""
    async def getaddrinfo(self, host: str, port: int, **_: Any) -> list:
        if host not in names:
            raise OSError(f"unexpected lookup of {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


async def refused_itself(hop: HostPort) -> list[Reply]:
    """Two recipients for ``hop`` and a Release to it, each refused as this appliance
    itself (451 4.4.6), none delivered."""
    replies = [await session(hop).add_recipient("a@x.test", [], "b@y.test")
               for _ in range(2)]
    released, accepted = await deliver(hop, helo_name="gw.test", timeouts=TIMEOUTS,
                                       sender="a@x.test", recipients=["b@y.test"],
                                       content=b"x\r\n")
    assert accepted == []
    for reply in [*replies, released]:
        assert reply.code == 451 and reply.text.startswith("4.4.6")
        assert "is this appliance itself" in reply.text
    return [*replies, released]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "192.0.2.77"])
def test_a_mail_host_name_resolving_to_this_appliance_is_deferred_and_logged_once(
        monkeypatch, caplog, address):
    # 192.0.2.77 stands for a LAN address of the appliance's.
    monkeypatch.setattr("portcullis.ownaddresses.own_addresses",
                        lambda: frozenset({ipaddress.ip_address("192.0.2.77")}))
    resolving(monkeypatch, {"mail.example.com": address})
    peer = Peer(accept_all)
    replies: list[Reply] = []

    @in_loop
    async def attempt() -> None:
        async with peer as hop:
            replies.extend(await refused_itself(HostPort("mail.example.com", hop.port)))

    with caplog.at_level("ERROR", logger="portcullis.smtp.nexthop"):
        attempt()
    assert len(replies) == 3 and all(address in reply.text for reply in replies)
    assert peer.commands == []
    assert caplog.text.count("this appliance itself") == 1


@pytest.mark.parametrize("address", ["192.0.2.77", "2001:db8::77", "::ffff:192.0.2.77"])
def test_a_stored_mail_host_at_an_address_of_this_appliance_is_deferred_not_dialled(
        monkeypatch, caplog, address):
    # Stored before parse_mail_host refused this appliance's own addresses (or a relay
    # host written so): its port 25 is the gateway itself, the mail would loop.  The
    # stand-in addresses are not on this machine: dialling them would be no 4.4.6.
    monkeypatch.setattr("portcullis.ownaddresses.own_addresses", lambda: frozenset(
        {ipaddress.ip_address("192.0.2.77"), ipaddress.ip_address("2001:db8::77")}))
    @in_loop
    async def attempt() -> None:
        await refused_itself(HostPort(address, 25))

    with caplog.at_level("ERROR", logger="portcullis.smtp.nexthop"):
        attempt()
    assert f"{address} is an address of this appliance itself" in caplog.text
    assert caplog.text.count("this appliance itself") == 1


def test_a_mail_host_name_resolving_elsewhere_is_dialled_at_the_address_checked(
        monkeypatch):
    # Loopback stands in for an internal host here: only the check is told otherwise.
    monkeypatch.setattr("portcullis.smtp.nexthop.is_own_address", lambda address: False)
    resolving(monkeypatch, {"exchange01.lan": "127.0.0.1"})
    peer = Peer(accept_all)

    @in_loop
    async def attempt() -> None:
        async with peer as hop:
            hop_session = session(HostPort("exchange01.lan", hop.port))
            assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
            await hop_session.close()

    attempt()
    assert peer.commands[1] == b"MAIL FROM:<a@x.test>\r\n"


@pytest.mark.parametrize(("host", "listen"), [
    ("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("127.0.0.1", "0.0.0.0"),
    ("0.0.0.0", "127.0.0.1"), ("::1", "::")])
def test_a_loopback_mail_host_where_the_gateway_listens_is_deferred_not_looped(
        caplog, host, listen):
    # Every recipient would come back into the gateway as a new session, and so on
    # until the session limit turned the innermost (and every other client) away.
    peer = Peer(accept_all)
    replies: list[Reply] = []

    @in_loop
    async def attempt() -> None:
        async with peer as hop:
            pool = NextHopPool(helo_name="gw.test", timeouts=TIMEOUTS,
                               listening=(HostPort("192.0.2.1", 25), HostPort(listen, hop.port)))
            looping = pool.acquire(HostPort(host, hop.port))
            replies.append(await looping.add_recipient("a@x.test", [], "b@y.test"))
            await pool.release(looping)
            elsewhere = NextHopPool(helo_name="gw.test", timeouts=TIMEOUTS,
                                    listening=(HostPort(listen, hop.port + 1),))
            other = elsewhere.acquire(HostPort("127.0.0.1", hop.port))
            replies.append(await other.add_recipient("a@x.test", [], "b@y.test"))
            await elsewhere.release(other)
            await elsewhere.close()

    with caplog.at_level("ERROR", logger="portcullis.smtp.nexthop"):
        attempt()
    looped, dialled = replies
    assert looped.code == 451 and looped.text.startswith("4.4.6")
    assert "where the gateway listens" in looped.text
    assert "is where this gateway listens" in caplog.text
    assert dialled.ok and peer.commands[1] == b"MAIL FROM:<a@x.test>\r\n"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_loopback_written_explicitly_is_still_dialled(host):
    peer = Peer(accept_all)

    @in_loop
    async def attempt() -> None:
        async with peer as hop:
            hop_session = session(HostPort(host, hop.port))
            assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
            await hop_session.close()

    attempt()
    assert peer.commands[1] == b"MAIL FROM:<a@x.test>\r\n"


class SilentAt(Listener):
    """A next hop that answers every command with 250 until ``command``, which it never
    answers (a hung MTA)."""

    def __init__(self, command: bytes) -> None:
        self.command = command

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(self.command):
                await reader.read()          # until the gateway gives up and closes
                break
            writer.write(b"250 ok\r\n")
        writer.close()


# A reply to the final dot may take long; a command's reply may not.
SLOW_DOT = DeliveryConfig(connect_timeout=2.0, command_timeout=0.3, data_timeout=60.0)


@in_loop
async def test_a_next_hop_silent_after_data_is_given_up_after_the_command_timeout():
    # Waiting data_timeout (10 min by default) for a 354 kept the client waiting far
    # past its own DATA timeout (RFC 5321 4.5.3.2: 2 min), as Postfix's 120 s would not.
    async with SilentAt(b"DATA") as hop:
        hop_session = NextHopSession(hop, helo_name="gw.test", timeouts=SLOW_DOT)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        async with asyncio.timeout(20):      # well short of data_timeout
            reply = await hop_session.data(b"Subject: s\r\n\r\nbody\r\n")
    assert (reply.code, reply.text[:5]) == (451, "4.4.1") and "timeout" in reply.text


@in_loop
async def test_a_next_hop_silent_at_rset_is_dropped_after_the_rset_timeout(monkeypatch):
    # The client waits for its own reply meanwhile: Postfix gives RSET 20 s.
    monkeypatch.setattr("portcullis.smtp.nexthop.RSET_TIMEOUT", 0.3)
    slow = replace(SLOW_DOT, command_timeout=60.0)
    async with SilentAt(b"RSET") as hop:
        pool = NextHopPool(helo_name="gw.test", timeouts=slow)
        hop_session = pool.acquire(hop)
        assert (await hop_session.add_recipient("a@x.test", [], "b@y.test")).ok
        async with asyncio.timeout(20):      # well short of command_timeout
            await pool.release(hop_session)
        assert not hop_session.connected
        await pool.close()
