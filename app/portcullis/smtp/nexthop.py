"""Talking to the next hop (a domain's internal mail host or the outbound Postfix).

The gateway keeps no queue: recipients are passed to the next hop as the client gives them
(so its 5xx reaches the client at RCPT, as with Postfix's before-queue proxy) and the
client gets 250 for the message only after the next hop said 250.  Any failure to talk to
the next hop becomes a 4xx reply, so the client's MTA keeps the message and retries.

The client is a small asyncio protocol of our own rather than a general SMTP library: the
gateway sends the same few commands for every message, and a library's task, lock and
timeout per command cost more CPU than the rest of the proxying.  When the next hop offers
PIPELINING (RFC 2920), MAIL FROM goes out in one packet with the first RCPT TO.  A next
hop without 8BITMIME gets 8-bit messages converted to 7 bits (downgrade.py) or refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass

from portcullis.addresses import ascii_address, parse_ip
from portcullis.config import DeliveryConfig, HostPort, ipv4_notation
from portcullis.offload import offload
from portcullis.ownaddresses import is_own_address, names_this_appliance
from portcullis.smtp.downgrade import Unconvertible, to_seven_bit
from portcullis.smtp.hygiene import has_bare_newline

log = logging.getLogger(__name__)

MAX_LINE = 8192              # a longer reply line: not an SMTP server we can talk to
MAX_REPLY_LINES = 200        # lines of one multi-line reply (EHLO has a dozen)
QUIT_TIMEOUT = 5.0
# RSET only ends a transaction on a kept connection, while the client waits for its own
# reply (to MAIL, RSET, EHLO): a next hop slow at it is dropped, not waited on for
# command_timeout (Postfix's smtp_rset_timeout is 20 s).
RSET_TIMEOUT = 20.0
# What the message looks like on the wire: CRLF line ends, leading dots doubled (RFC 5321
# 4.5.2), as every SMTP client sends it.
_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
# A command argument must not smuggle a second command in.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# MAIL FROM parameters passed on when the next hop has the extension they belong to.
_PARAMETER_EXTENSIONS = {"BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8", "SIZE": "SIZE"}


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        lines = self.text.splitlines() or [""]
        return "\r\n".join(f"{self.code}-{line}" for line in lines[:-1]) + \
            ("\r\n" if len(lines) > 1 else "") + f"{self.code} {lines[-1]}"


@functools.lru_cache(maxsize=1024)
def hop_problem(hop: HostPort) -> str:
    """Why the gateway will not connect to ``hop`` ("" when it will): an IPv4 address
    written in another notation, as a mail host stored before ``config.parse_hostport``
    refused them may be.  getaddrinfo reads 0x7f000001 or 0x7f.0x1 as inet_aton does,
    as 127.0.0.1: connecting to it delivered a domain's mail to the appliance's own
    services (the outbound Postfix on 127.0.0.1:10025 relays it to the Internet), past
    every check of loopback hosts.  Any other host is connected to as before (a name is
    resolved, an address written plainly is used)."""
    try:
        ipaddress.ip_address(hop.host)
        return ""
    except ValueError:
        pass
    address = ipv4_notation(hop.host)
    if address is None:
        return ""
    return f"{hop.host!r} is the IPv4 address {address} in another notation: write {address}"


def unavailable(hop: HostPort, why: str) -> Reply:
    return Reply(451, f"4.4.1 Internal mail host {hop} unavailable ({why}), try again later")


def no_smtputf8(hop: HostPort, what: str, code: int = 553, enhanced: str = "5.6.7") -> Reply:
    """The refusal of what needs SMTPUTF8 (RFC 6531) for a next hop that does not offer
    it: sending it anyway would hand UTF-8 to a server that never said it takes it.
    RFC 6531's codes: 5.6.7 for an address, 5.6.9 for a message's header."""
    return Reply(code, f"{enhanced} {what} needs SMTPUTF8, which internal mail host {hop}"
                       " does not offer")


class NextHopError(Exception):
    """The next hop broke the protocol: a malformed or oversized reply, a reply nobody
    asked for, a refused greeting or EHLO."""


class ItselfError(NextHopError):
    """The next hop is this appliance: its name resolves to loopback or one of its own
    addresses, it is written as an interface's address (stored before
    ``parse_mail_host`` refused those, or a relay host), or it is where the gateway
    itself listens: connecting would loop mail back into the gateway or hand it to the
    appliance's own services.  ``evidence`` goes in the reply, ``explanation`` in the
    log."""

    def __init__(self, hop: HostPort, evidence: str, explanation: str) -> None:
        super().__init__(explanation)
        self.reply = Reply(451, f"4.4.6 Internal mail host {hop} is this appliance itself"
                                f" ({evidence}), try again later")


def _listened_on(hop: HostPort, listening: tuple[HostPort, ...]) -> bool:
    """Whether ``hop``, written as the appliance itself (loopback, "any", localhost), is
    where the gateway listens: every recipient for it would come back in as a new
    session, and that session's recipient too, until the session limit turned the
    innermost away (and every other client with it, meanwhile)."""
    target = parse_ip(hop.host)              # None: localhost
    for listen in listening:
        bound = parse_ip(listen.host)
        if bound is None or listen.port != hop.port:
            continue
        if bound.is_unspecified or bound == target or (
                bound.is_loopback and (target is None or target.is_unspecified)):
            return True
    return False


class Unreachable(Exception):
    """No connection to the next hop, or no greeting from it in time: trying again at
    once would only wait as long again."""


class DownHosts:
    """Next hops that did not answer in time lately (a connection or greeting timed out,
    a SYN went unanswered): while one is remembered, a new connection to it is not tried
    and its recipients are deferred at once, instead of each keeping its client waiting
    the connect timeout again.  A refused connection is not remembered: it costs no
    wait, and the next try sees the host back at once.  Bounded, and forgets by itself
    after ``seconds``, so a host that came back is tried again."""

    MAX_HOSTS = 1024                         # more next hops than any site has

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._down: dict[HostPort, tuple[float, str]] = {}   # hop -> (since, why)

    def why_down(self, hop: HostPort) -> str | None:
        """Why ``hop`` is taken to be down now, or None."""
        entry = self._down.get(hop)
        if entry is None:
            return None
        since, why = entry
        ago = time.monotonic() - since
        if ago >= self.seconds:
            del self._down[hop]
            return None
        return f"{why} {ago:.0f} s ago, not tried again for {self.seconds - ago:.0f} s"

    def mark(self, hop: HostPort, why: str) -> None:
        if self.seconds <= 0:
            return
        self._down.pop(hop, None)            # re-entered last: the dict is oldest first
        if len(self._down) >= self.MAX_HOSTS:
            del self._down[next(iter(self._down))]
        self._down[hop] = (time.monotonic(), why)


# Hops already logged as this appliance itself: a wrong host is told once per process,
# not at every recipient.
_ITSELF_LOGGED: set[HostPort] = set()


def _first_own(addresses: list[str]) -> str | None:
    return next((a for a in addresses if is_own_address(a)), None)


# What talking to a next hop can fail with (ValueError: an address that cannot be sent).
_FAILURES = (OSError, TimeoutError, NextHopError, ValueError)


class _ReplyReader(asyncio.Protocol):
    """Cuts what the next hop sends into replies, queued until they are read (pipelined
    commands are answered in one packet).  ``owed`` counts the replies still to come for
    the commands sent; anything beyond that breaks the connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies: collections.deque[Reply] = collections.deque()
        self.owed = 1                        # the greeting
        self.error: Exception | None = None
        self._partial = b""
        self._lines: list[str] = []
        self._waiter: asyncio.Future[None] | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.transport is not None \
            and not self.transport.is_closing()

    @property
    def idle(self) -> bool:
        """Usable, with every reply read: the next command's reply will be its own."""
        return self.usable and self.owed == 0 and not self.replies

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if self.error is None:
                self._line(line)
        if len(self._partial) > MAX_LINE:
            self._fail(NextHopError("reply line too long"))
        self._wake()

    def _line(self, line: bytes) -> None:
        code, separator = line[:3], line[3:4]
        if len(line) > MAX_LINE or not code.isdigit() or separator not in (b" ", b"-", b"\r", b""):
            self._fail(NextHopError(f"malformed reply {line[:80]!r}"))
            return
        self._lines.append(line[4:].strip(b" \t\r").decode("utf-8", "replace"))
        if separator == b"-":
            if len(self._lines) > MAX_REPLY_LINES:
                self._fail(NextHopError("reply too long"))
            return
        if self.owed <= 0:
            self._fail(NextHopError(f"reply to no command: {line[:80]!r}"))
            return
        self.owed -= 1
        self.replies.append(Reply(int(code), "\n".join(self._lines)))
        self._lines = []

    def eof_received(self) -> bool:
        return False                         # close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.error is None:
            self.error = exc or ConnectionResetError("connection closed by the next hop")
        self._wake()

    def _fail(self, error: Exception) -> None:
        self.error = error
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self.replies or self.error):
            waiter.set_result(None)

    def send(self, *commands: str) -> None:
        """Write commands in one packet; each owes a reply."""
        for command in commands:
            if _CONTROL.search(command):
                raise ValueError("command argument contains a control character")
        if not self.usable:
            raise self.error or ConnectionResetError("not connected")
        assert self.transport is not None
        self.owed += len(commands)
        self.transport.write("".join(f"{c}\r\n" for c in commands).encode())

    def send_message(self, payload: bytes) -> None:
        """Write a message's content (already in wire form, final dot included)."""
        if not self.usable:
            raise self.error or ConnectionResetError("not connected")
        assert self.transport is not None
        self.owed += 1
        self.transport.write(payload)

    async def reply(self, timeout: float) -> Reply:
        """The next reply; raises when the connection failed or ``timeout`` passed."""
        if self.replies:
            # Already here (a pipelined command's, come in the packet with the one
            # before): no timer to set and cancel.
            return self.replies.popleft()
        async with asyncio.timeout(timeout):
            while not self.replies:
                if self.error is not None:
                    raise self.error
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        return self.replies.popleft()


class NextHopSession:
    """One SMTP connection to a next hop, used by one client transaction at a time and
    returned to a ``NextHopPool`` between transactions.

    ``in_transaction`` stays set when the connection fails in the middle of a transaction:
    the recipients the next hop had accepted are gone with it, so everything else in that
    client transaction fails (4xx) until ``reset`` ends it; the client then retries."""

    def __init__(self, hop: HostPort, *, helo_name: str, timeouts: DeliveryConfig,
                 down: DownHosts | None = None, listening: tuple[HostPort, ...] = ()
                 ) -> None:
        self.hop = hop
        self.helo_name = helo_name
        self.timeouts = timeouts
        self.down = down                     # the pool's memory of hops down, if any
        self.listening = listening           # where the gateway itself listens
        self._reader: _ReplyReader | None = None
        self._extensions: frozenset[str] = frozenset()
        self._smtputf8 = False               # the transaction's client asked for SMTPUTF8
        self.in_transaction = False
        self.idle_since = 0.0

    @property
    def connected(self) -> bool:
        return self._reader is not None and self._reader.usable

    @property
    def reusable(self) -> bool:
        """Connected, outside a transaction, with no reply outstanding."""
        return self._reader is not None and self._reader.idle and not self.in_transaction

    async def _connect(self) -> _ReplyReader:
        why = self.down.why_down(self.hop) if self.down is not None else None
        if why is not None:
            raise Unreachable(why)
        loop = asyncio.get_running_loop()
        reader = _ReplyReader()
        self._reader = reader
        try:
            async with asyncio.timeout(self.timeouts.connect_timeout):
                failure: OSError | None = None
                for address in await self._addresses():
                    try:
                        await loop.create_connection(lambda: reader, address, self.hop.port)
                        break
                    except OSError as exc:
                        failure = exc
                else:
                    assert failure is not None
                    raise failure
                greeting = await reader.reply(self.timeouts.connect_timeout)
        except (OSError, TimeoutError) as exc:
            if self.down is not None and not isinstance(exc, ConnectionError):
                self.down.mark(self.hop, _describe(exc))
            raise Unreachable(_describe(exc)) from exc
        if greeting.code != 220:
            raise NextHopError(f"greeting {greeting.code} {greeting.text}")
        self._extensions = await self._hello(reader)
        return reader

    async def _addresses(self) -> list[str]:
        """Where to connect: the host as written when it is an address, else what its name
        resolves to; checked not to be this appliance (ItselfError) and then connected to
        as checked (a second lookup could answer otherwise).  Loopback or localhost
        written out is a deliberate set-up (tests, ``make run``, a local relay), an
        interface's address written out is not: the gateway's own port 25."""
        host = self.hop.host
        loop = asyncio.get_running_loop()
        if names_this_appliance(host):
            if _listened_on(self.hop, self.listening):
                raise ItselfError(self.hop, "where the gateway listens",
                                  f"{self.hop} is where this gateway listens: its mail"
                                  " would loop through the gateway")
            return [host]
        if parse_ip(host) is not None:
            addresses = [host]
        else:
            found = await loop.getaddrinfo(host, self.hop.port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        # In a thread: the interface addresses are read from /proc.
        own = await loop.run_in_executor(None, _first_own, addresses)
        if own is not None:
            how = "is" if own == host else f"resolves to {own},"
            raise ItselfError(self.hop, own, f"{host} {how} an address of this appliance"
                                             " itself")
        return addresses

    async def _hello(self, reader: _ReplyReader) -> frozenset[str]:
        """EHLO, and the extensions it lists.  A server refusing EHLO other than with 421
        speaks only RFC 821: it is greeted with HELO and offers none, as Postfix's
        client falls back (else every message for it would be deferred for ever)."""
        timeout = self.timeouts.command_timeout
        reader.send(f"EHLO {self.helo_name}")
        reply = await reader.reply(timeout)
        if reply.ok:
            return frozenset(line.split(" ", 1)[0].upper()
                             for line in reply.text.splitlines()[1:] if line)
        if reply.code != 421:
            reader.send(f"HELO {self.helo_name}")
            reply = await reader.reply(timeout)
            if reply.ok:
                return frozenset()
        raise NextHopError(f"EHLO/HELO refused: {reply.code} {reply.text}")

    def _supported(self, option: str) -> bool:
        keyword = option.split("=", 1)[0].upper()
        return _PARAMETER_EXTENSIONS.get(keyword) in self._extensions

    def _path(self, address: str) -> str | None:
        """``address`` as this next hop is sent it: its domain in A-labels, the same
        domain (RFC 5890) in the form internal hosts are configured with (Postfix refuses
        bücher.example as a relay attempt when its tables say xn--bcher-kva.example);
        None when what remains is not ASCII (a UTF-8 local part) and the next hop does
        not offer SMTPUTF8, which alone can carry it."""
        address = ascii_address(address)
        return address if address.isascii() or "SMTPUTF8" in self._extensions else None

    async def add_recipient(self, sender: str, options: list[str], address: str) -> Reply:
        """Give the next hop one recipient of the client's transaction; its reply.

        The first recipient opens the transaction (MAIL FROM, on a pooled connection or
        a new one); when MAIL FROM is refused, its reply is the answer.  The whole
        exchange takes at most ``recipient_deadline``: each wait alone is bounded, but
        connection, greeting, EHLO, MAIL, RCPT and a reconnect added up to longer than
        the client waits for its RCPT reply (RFC 5321 4.5.3.2).
        """
        problem = hop_problem(self.hop)
        if problem:
            # Deferred, so the sender keeps the message until the host is corrected.
            log.warning("not delivering to <%s>: its mail host %r is no host name or"
                        " address the gateway connects to (%s); correct it in the domain's"
                        " settings", address, str(self.hop), problem)
            return unavailable(self.hop, "not a valid host name or address")
        try:
            async with asyncio.timeout(self.timeouts.recipient_deadline):
                return await self._add_recipient(sender, options, address)
        except TimeoutError:
            # Cut off waiting for some reply: the connection is out of step.
            self.discard()
            return unavailable(self.hop, "timeout")

    async def _add_recipient(self, sender: str, options: list[str], address: str) -> Reply:
        if self.in_transaction:
            path = self._path(address)
            if path is None:
                return no_smtputf8(self.hop, "Recipient address")
            try:
                return await self._command(f"RCPT TO:<{path}>",
                                           self.timeouts.command_timeout)
            except _FAILURES as exc:
                self.discard()
                return unavailable(self.hop, _describe(exc))
        for attempt in (1, 2):
            try:
                return await self._open(sender, options, address)
            except ItselfError as exc:
                # Deferred, so the sender keeps the message until the host is corrected.
                self.discard()
                if self.hop not in _ITSELF_LOGGED:
                    _ITSELF_LOGGED.add(self.hop)
                    log.error("not delivering to internal mail host %s: %s; correct the"
                              " domain's mail host (or the relay host)", self.hop, exc)
                return exc.reply
            except Unreachable as exc:
                self.discard()
                return unavailable(self.hop, str(exc))
            except _FAILURES as exc:
                # A connection kept from an earlier transaction may have been dropped by
                # the next hop's idle timeout: reconnect once before giving up.
                self.discard()
                if attempt == 2:
                    return unavailable(self.hop, _describe(exc))
        raise AssertionError("unreachable")

    async def _open(self, sender: str, options: list[str], address: str) -> Reply:
        reader = self._reader if self.connected else None
        if reader is None or not reader.idle:
            self.discard()
            reader = await self._connect()
        sender_path, path = self._path(sender), self._path(address)
        if sender_path is None or path is None:
            return no_smtputf8(self.hop, "Sender address" if sender_path is None
                               else "Recipient address")
        params = "".join(f" {o}" for o in options if self._supported(o))
        mail, rcpt = f"MAIL FROM:<{sender_path}>{params}", f"RCPT TO:<{path}>"
        timeout = self.timeouts.command_timeout
        pipelining = "PIPELINING" in self._extensions
        if pipelining:
            reader.send(mail, rcpt)          # one packet; the replies come in order
            mail_reply = await self._reply(reader, timeout)
        else:
            mail_reply = await self._command(mail, timeout)
        if not mail_reply.ok:
            if pipelining and reader.usable:
                # The RCPT that went along is answered too (503, out of sequence): read
                # it, so the next command gets its own reply.
                with contextlib.suppress(*_FAILURES):
                    await reader.reply(timeout)
            return mail_reply
        if pipelining:
            rcpt_reply = await self._reply(reader, timeout)
        else:
            rcpt_reply = await self._command(rcpt, timeout)
        self.in_transaction = True
        self._smtputf8 = any(o.upper() == "SMTPUTF8" for o in options)
        return rcpt_reply

    async def _command(self, command: str, timeout: float) -> Reply:
        if self._reader is None:
            raise ConnectionResetError("not connected")
        reader = self._reader
        reader.send(command)
        return await self._reply(reader, timeout)

    async def _reply(self, reader: _ReplyReader, timeout: float) -> Reply:
        reply = await reader.reply(timeout)
        if reply.code == 421:
            # The next hop is closing the connection (RFC 5321 3.8): do not wait for it.
            # A failure of this connection, not a reply for the client, whose connection
            # stays open (a 421 to it would say otherwise): a kept connection's MAIL is
            # tried again on a new one, anything else becomes a 4xx.
            self.discard()
            raise NextHopError(f"closing: {reply.code} {reply.text.splitlines()[0]}")
        return reply

    async def data(self, content: bytes, *, utf8_header: bool = False,
                   deadline: float | None = None) -> Reply:
        """Send the message (DATA); the next hop's reply to it.  ``utf8_header``: the
        sender's header section holds UTF-8, which under SMTPUTF8 (RFC 6532) only a next
        hop offering SMTPUTF8 may be given (without it, it is legacy 8-bit and passed on).
        ``deadline`` (the event loop's time): when the client stops waiting for its
        reply, less a margin; the exchange is given up (4xx) by then, whatever the
        per-command timeouts would still allow."""
        if utf8_header and self._smtputf8 and "SMTPUTF8" not in self._extensions:
            return no_smtputf8(self.hop, "Message with UTF-8 header fields", 554, "5.6.9")
        if "8BITMIME" not in self._extensions and not content.isascii():
            # RFC 6152 3: never 8-bit data to a host that did not offer it.  Looked at only
            # for such a host (every current MTA offers it): no cost for the others.
            try:
                content = await offload(len(content), to_seven_bit, content)
            except Unconvertible as exc:
                return Reply(554, f"5.6.3 Message has 8-bit content ({exc}) that cannot be"
                                  f" converted, and internal mail host {self.hop} does not"
                                  " offer 8BITMIME")
        try:
            async with asyncio.timeout_at(deadline):
                # 354 is a command's reply (Postfix's smtp_data_init_timeout is 120 s):
                # only the reply to the final dot may take data_timeout, the next hop's
                # own checks.
                start = await self._command("DATA", self.timeouts.command_timeout)
                if start.code != 354:
                    return start             # refused before the content: reset() aborts
                assert self._reader is not None
                reader = self._reader
                reader.send_message(wire_form(content))
                reply = await self._reply(reader, self.timeouts.data_timeout)
        except _FAILURES as exc:
            # The next hop may or may not have the message now; the client retries, and a
            # duplicate is better than a loss.
            self.discard()
            return unavailable(self.hop, _describe(exc))
        self.in_transaction = False
        return reply

    async def reset(self) -> None:
        """End the transaction in progress, if any (RSET), keeping the connection when
        it is still in step with the next hop."""
        if self.in_transaction and self._reader is not None and self._reader.idle:
            try:
                timeout = min(self.timeouts.command_timeout, RSET_TIMEOUT)
                if not (await self._command("RSET", timeout)).ok:
                    self.discard()
            except _FAILURES:
                self.discard()
        elif self._reader is not None and not self._reader.idle:
            self.discard()                   # e.g. left waiting for a reply: out of step
        self.in_transaction = False

    def discard(self) -> None:
        """Drop the connection without a QUIT (broken, out of step, or idle too long)."""
        reader, self._reader = self._reader, None
        if reader is not None and reader.transport is not None:
            reader.transport.abort()

    async def close(self) -> None:
        """QUIT and close."""
        reader, self._reader = self._reader, None
        self.in_transaction = False
        if reader is None:
            return
        try:
            if reader.idle:
                with contextlib.suppress(*_FAILURES):
                    reader.send("QUIT")
                    await reader.reply(QUIT_TIMEOUT)
        finally:
            # Also when cancelled waiting for the reply to QUIT: nobody holds it now.
            if reader.transport is not None:
                reader.transport.close()


class NextHopPool:
    """Idle connections to next hops, kept for the next transaction (as Postfix's scache
    does): a message then costs MAIL, RCPT and DATA instead of a connection, EHLO and QUIT
    as well.  A connection the next hop has dropped meanwhile is reopened by
    ``add_recipient``.  The pool also remembers next hops that did not answer
    (``DownHosts``); Release's one-shot ``deliver`` does not: an administrator asked."""

    def __init__(self, *, helo_name: str, timeouts: DeliveryConfig, max_idle: int = 32,
                 idle_seconds: float = 15.0, listening: tuple[HostPort, ...] = ()) -> None:
        self.helo_name = helo_name
        self.timeouts = timeouts
        self.listening = listening             # the gateway's own [smtp] listen
        self.max_idle = max_idle               # per next hop
        self.idle_seconds = idle_seconds       # well below Postfix's smtpd_timeout (300 s)
        self._idle: dict[HostPort, list[NextHopSession]] = {}
        self.down = DownHosts(timeouts.host_down_seconds)

    def acquire(self, hop: HostPort) -> NextHopSession:
        """A connection to ``hop``: the most recently used idle one, else a new one
        (connected by its first ``add_recipient``)."""
        idle = self._idle.get(hop, [])
        now = time.monotonic()
        while idle:
            session = idle.pop()
            if session.reusable and now - session.idle_since < self.idle_seconds:
                return session
            session.discard()
        return NextHopSession(hop, helo_name=self.helo_name, timeouts=self.timeouts,
                              down=self.down, listening=self.listening)

    async def release(self, session: NextHopSession) -> None:
        """Take a connection back after its transaction (reset first if it was left in
        one); close it when it is unusable or the pool for its hop is full."""
        try:
            await session.reset()
        except BaseException:
            # Cancelled waiting for the next hop's reply to RSET (the client went away
            # and aiosmtpd cancelled its command): the connection is out of step, and the
            # caller has already let go of it, so nobody else would ever close it.
            session.discard()
            raise
        idle = self._idle.setdefault(session.hop, [])
        if session.reusable and len(idle) < self.max_idle:
            session.idle_since = time.monotonic()
            idle.append(session)
        else:
            await session.close()

    async def close(self) -> None:
        sessions = [s for idle in self._idle.values() for s in idle]
        self._idle.clear()
        await asyncio.gather(*(s.close() for s in sessions))


def wire_form(content: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, final dot."""
    # The gateway's own content is CRLF already (hygiene.py) and rarely has a line
    # starting with a dot: look before running a substitution over the whole message.
    if has_bare_newline(content):
        content = _LINE_ENDS.sub(b"\r\n", content)
    if content.startswith(b".") or b"\n." in content:
        content = _LEADING_DOT.sub(b"..", content)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


async def deliver(hop: HostPort, *, helo_name: str, timeouts: DeliveryConfig, sender: str,
                  recipients: list[str], content: bytes, options: list[str] | None = None,
                  utf8_header: bool = False) -> tuple[Reply, list[str]]:
    """One-shot delivery (used by Release): returns the outcome and the accepted recipients.
    ``options`` and ``utf8_header`` as for a client's transaction (``add_recipient``,
    ``data``)."""
    session = NextHopSession(hop, helo_name=helo_name, timeouts=timeouts)
    try:
        accepted: list[str] = []
        last = Reply(554, "5.5.1 No recipients")
        for address in recipients:
            last = await session.add_recipient(sender, options or [], address)
            if not session.in_transaction:
                return last, []              # MAIL FROM refused, or no next hop
            if last.ok:
                accepted.append(address)
        if not accepted:
            return last, []
        return await session.data(content, utf8_header=utf8_header), accepted
    finally:
        await session.close()
