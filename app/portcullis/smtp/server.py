"""Listeners, admission control and worker processes for the SMTP gateway.

Admission is decided before aiosmtpd sees a connection: beyond ``max_sessions`` (or
``max_sessions_per_ip`` from one address) the client gets ``421`` and is closed at once,
so a spike of ten times the capacity costs almost nothing and legitimate MTAs retry later.
With ``workers > 1`` each worker process serves its own socket on the same port
(SO_REUSEPORT, bound by the supervisor, supervisor.py) and the kernel spreads connections;
limits are divided between workers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import signal
import socket
import ssl
import sys
import time
import typing
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from aiosmtpd.smtp import MISSING, SMTP, syntax

from portcullis import gatewaystatus, housekeeping
from portcullis.addresses import parse_ip, source_of
from portcullis.config import Config, DeliveryConfig, HostPort, SmtpConfig
from portcullis.directory.snapshot import Snapshot
from portcullis.mailauth import orgdomain
from portcullis.services import Services
from portcullis.smtp.dataphase import MessageCollector
from portcullis.smtp.handler import (
    TOO_MANY_RECIPIENTS,
    GatewayHandler,
    GatewaySession,
    Transaction,
    aiosmtpd_names,
)

log = logging.getLogger(__name__)

BUSY = b"421 4.3.2 Too many connections, try again later\r\n"
BUSY_IP = b"421 4.7.0 Too many connections from your address, try again later\r\n"
LINE_TOO_LONG = b"500 5.5.2 Line too long, closing connection\r\n"
TIMEOUT_EXCEEDED = "421 4.4.2 {} Error: timeout exceeded\r\n"   # Postfix's words
SHUTTING_DOWN = "421 4.3.2 Service shutting down"
# Seconds of a message's start that [smtp] min_data_rate does not judge: a connection's
# first round trips and TCP slow start, and a sender reading a large message off its
# disk, are slow for honest clients too.  Postfix lets a DATA begin on a whole
# smtpd_timeout of credit; half a minute finds a trickler within the first minute.
DATA_RATE_GRACE = 30.0
# aiosmtpd keeps every fragment of an unterminated DATA line until its end arrives, past
# any size limit: one client could grow a worker without bound.  A line this long is
# refused anyway (commands beyond 512, data lines beyond max_line_length), so the
# connection is closed once an unterminated run of bytes passes this.
UNTERMINATED_LIMIT = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A stop waits for messages past their final dot: [delivery] reply_deadline bounds the
# wait for their reply, and this is left for writing it and recording the message
# (archive, log, learners: session_ended).  The gateway unit's TimeoutStopSec is
# REPLY_DEADLINE_LIMIT plus this and a little for closing the store.
SHUTDOWN_MARGIN = 30.0
LISTEN_BACKLOG = 4096
# What the supervisor passes on to its workers.  They are blocked while it forks, so
# none arrives between a fork and the supervisor's note of the new worker (a stop then
# would pass the worker by, and the supervisor wait for it for ever), and stay blocked in
# a new worker until its event loop handles them: with the supervisor's handler, a signal
# in that window would have the worker close the sockets and signal its siblings.
SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
FLUSH_INTERVAL = 5.0
# StreamReader.read(n) returns at most what is buffered: this takes all of it.
READ_ALL = 1 << 30
CHECKPOINT_INTERVAL = 1.0      # the store's log, folded back by a thread (see run_worker)
# How long a client that waited for the greeting is not tested again (postscreen's
# postscreen_greet_ttl), and how many such clients a worker remembers.
PREGREET_PASS_TTL = 86400.0
PREGREET_PASS_MAX = 100_000
PREGREET_DROP = "521 5.5.1 Protocol error: you talked before the greeting"


# A path as nearly all mail gives it: <dot-atom@hostname>, nothing the email package's
# parser would read differently (no quoting, comments, source route or address literal).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"[ \t]*<(?P<path>(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>")


class SessionLimits:
    def __init__(self, max_sessions: int, max_per_ip: int) -> None:
        self.max_sessions = max_sessions
        self.max_per_ip = max_per_ip
        self.active = 0
        self.per_ip: Counter[str] = Counter()
        self.refused = 0

    def admit(self, ip: str) -> bytes | None:
        """None when the client may proceed, else the reply that turns it away.  The
        per-client limit counts an IPv6 /64 as one client."""
        if self.active >= self.max_sessions:
            self.refused += 1
            return BUSY
        source = source_of(ip)
        if self.per_ip[source] >= self.max_per_ip:
            self.refused += 1
            return BUSY_IP
        self.active += 1
        self.per_ip[source] += 1
        return None

    def release(self, ip: str) -> None:
        source = source_of(ip)
        self.active -= 1
        self.per_ip[source] -= 1
        if self.per_ip[source] <= 0:
            del self.per_ip[source]


class OpenSessions:
    """A worker's admitted connections, until their end is recorded (``session_ended``
    waits for a message being delivered when its client left): what a stop tells to
    close, and waits for."""

    def __init__(self) -> None:
        self._open: set[GatewaySMTP] = set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, smtp: GatewaySMTP) -> None:
        self._open.add(smtp)
        if self.stopping:
            smtp.shut_down()          # accepted just before the listeners closed

    def ended(self, smtp: GatewaySMTP) -> None:
        self._open.discard(smtp)

    def shut_down(self) -> None:
        """Tell every connection the worker is stopping (``GatewaySMTP.shut_down``)."""
        self.stopping = True
        for smtp in list(self._open):
            smtp.shut_down()

    async def wait(self, timeout: float) -> int:
        """Until every connection has ended, or ``timeout`` seconds; how many are left."""
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return len(self._open)


def stop_timeout(delivery: DeliveryConfig) -> float:
    """Seconds a stopping worker waits for its sessions: a message past its final dot is
    answered within ``reply_deadline``, then recorded."""
    return delivery.reply_deadline + SHUTDOWN_MARGIN


class PregreetTest:
    """Postscreen's pregreet test, one per worker: which clients are tested, and the
    clients that waited for the greeting lately (tested again after PREGREET_PASS_TTL)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.wait = config.pregreet_wait
        self.action = config.pregreet_action
        self._passed: dict[str, float] = {}      # client -> when it passed, oldest first

    def due(self, session: GatewaySession, snapshot: Snapshot) -> bool:
        """Whether this session's client is to be tested: not a relay, not on the white
        list (its mail is taken whatever it scores: postscreen's access list exempts such
        a client from the tests too), not passed."""
        if not self.wait or session.is_relay \
                or snapshot.white.match_ip(parse_ip(session.client_ip)):
            return False
        passed = self._passed.get(session.client_ip)
        if passed is not None and time.monotonic() - passed < PREGREET_PASS_TTL:
            return False
        self._passed.pop(session.client_ip, None)
        return True

    def passed(self, client_ip: str) -> None:
        if len(self._passed) >= PREGREET_PASS_MAX:
            del self._passed[next(iter(self._passed))]
        self._passed[client_ip] = time.monotonic()


class TurnAway(asyncio.Protocol):
    """What a client beyond the global limit talks to: one line, then goodbye."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY)
        transport.close()


class GatewaySMTP(SMTP):
    def __dir__(self) -> list[str]:
        return aiosmtpd_names(self, ("smtp_", "auth_"))

    def __init__(self, handler: GatewayHandler, limits: SessionLimits, config: SmtpConfig,
                 tls: ssl.SSLContext | None = None,
                 pregreet: PregreetTest | None = None,
                 sessions: OpenSessions | None = None) -> None:
        # aiosmtpd sizes its line buffer from this attribute while constructing.
        self.line_length_limit = config.max_line_length
        # aiosmtpd keeps the command limits EHLO raises (MAIL's, for SIZE and SMTPUTF8)
        # in one dictionary of its class, emptied by every new session: a session's own.
        self.command_size_limits = defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, data_size_limit=config.max_message_size,
                         enable_SMTPUTF8=True, decode_data=False, hostname=config.hostname,
                         ident="Portcullis ESMTP", timeout=config.timeout,
                         tls_context=tls, require_starttls=False,
                         # aiosmtpd would look for the loop under a warnings filter.
                         loop=asyncio.get_running_loop())
        self.gateway = handler
        self.limits = limits
        # The worker's; without one, every connection is tested (nothing remembered).
        self.pregreet = pregreet or PregreetTest(config)
        self.sessions = sessions if sessions is not None else OpenSessions()
        self.min_data_rate = config.min_data_rate
        self._client_ip: str | None = None
        self._unterminated = 0
        self._unterminated_limit = max(UNTERMINATED_LIMIT, 2 * config.max_line_length)
        self.max_junk_commands = config.max_junk_commands
        self.max_errors = config.max_errors
        self.max_deferrals = config.max_deferrals
        self.closing = False
        self._in_message = False         # from 354 until the message's reply (eof_received)
        self._answering = False          # from the final dot until the message's reply
        self.stopping = False            # the worker is stopping (shut_down)
        self._ended: asyncio.Task[None] | None = None

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its timer and schedules a new one at every command (nine a
        # message).  One timer a connection does the same: it follows the latest
        # deadline, re-armed only when that comes sooner, and when it fires early it
        # waits for what is left.
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        timer = self._timeout_handle
        if timer is None or timer.cancelled() or timer.when() > self._deadline:
            if timer is not None:
                timer.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_timer)

    def _idle_timer(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_timer)
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        # aiosmtpd closes without a word; Postfix says why first, so the client's log
        # shows a timeout rather than a lost connection (and it retries as for any 421).
        self._say_now(TIMEOUT_EXCEEDED.format(self.hostname).encode("ascii", "replace"))
        self.closing = True
        super()._timeout_cb()

    def _say_now(self, reply: bytes) -> None:
        """Write ``reply`` at once, outside the command loop (a timer, a stop), unless the
        connection is closing."""
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.closing:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(reply)

    def shut_down(self) -> None:
        """The worker is stopping.  A message past its final dot is being judged or handed
        to the internal host, which may have it already: its reply comes first (421
        after it, ``smtp_DATA``), or the client would send it again, a duplicate.
        Any other session, idle, between transactions, in a command, or sending a
        message, was promised nothing: 421 now (said at once, so that no command or
        final dot still in the input is acted on meanwhile)."""
        self.stopping = True
        if not self._answering:
            self._say_now(f"{SHUTTING_DOWN}\r\n".encode("ascii"))
            self._close()

    def _create_session(self) -> GatewaySession:
        return GatewaySession(self.loop)

    def _create_envelope(self) -> Transaction:
        return Transaction()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:
            # STARTTLS finished: aiosmtpd starts a fresh session (RFC 3207); the client,
            # its admission and what was learnt at connect carry over.
            previous = self.session
            super().connection_made(transport)
            assert isinstance(self.session, GatewaySession)
            if isinstance(previous, GatewaySession):
                self.session.carry_over(previous)
            return
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else "unknown"
        refusal = self.limits.admit(ip)
        if refusal is not None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal)
            transport.close()
            return
        self._client_ip = ip
        super().connection_made(transport)
        assert isinstance(self.session, GatewaySession)
        self.session.client_ip = ip[7:] if ip.startswith("::ffff:") else ip
        self.gateway.session_started(self.session)
        self.sessions.opened(self)

    async def _handle_client(self) -> None:
        # aiosmtpd's greeting and command loop, after the pregreet test.
        if await self._pregreet_test():
            await super()._handle_client()

    async def _pregreet_test(self) -> bool:
        """The greeting's first line, and a wait for a client that does not wait for its
        last (postscreen's pregreet test, with its multi-line banner): such a client is
        logged and, by ``pregreet_action``, refused at each RCPT (the handler) or dropped
        now (False).  True: the session goes on to the greeting's last line."""
        session = self.session
        assert isinstance(session, GatewaySession)
        if not self.pregreet.due(session, self.gateway.services.snapshots.get()):
            return True
        await self.push(f"220-{self.hostname} {self.__ident__}")
        await asyncio.sleep(self.pregreet.wait)
        if self.transport is None or self.closing:
            return False                          # gone, or timed out meanwhile
        early = bytes(self._reader._buffer[:80])  # type: ignore[attr-defined]
        if not early and not self._reader.at_eof():
            self.pregreet.passed(session.client_ip)
            return True
        log.info("PREGREET from %s before the greeting's last line: %r (%s)",
                 session.client_ip, early, self.pregreet.action)
        session.pregreeted = True
        if self.pregreet.action == "drop":
            await self.close_with(PREGREET_DROP)
            return False
        return True

    async def close_with(self, reply: str) -> None:
        """Say ``reply`` (a 421) and close the connection.  What the client sent after the
        command, a pipelined group's rest (RFC 2920) with a message it did not wait for
        354 to send, say, is dropped unread: the client was told the connection is
        closing, so no later command may be answered or acted on (a message delivered
        after it would come again as a duplicate, and a limit would not end anything)."""
        await self.push(reply)
        self._close()

    def _close(self) -> None:
        """Read and answer nothing more (see close_with) and close the connection."""
        self.closing = True
        self._reader._buffer.clear()  # type: ignore[attr-defined]  # as for STARTTLS
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: typing.AnyStr) -> None:
        if self.closing:
            return                            # after close_with: nothing more is said
        # aiosmtpd echoes unknown commands into its reply ('500 Error: command "..." not
        # recognized'), bare CRs and control bytes included: a client could make the reply
        # malformed.  Every reply line is made printable; CRLF between lines is kept.
        # Bytes that were not UTF-8 (kept as surrogates) or, without SMTPUTF8, anything
        # beyond ASCII cannot be sent as they are either: '?' stands in for them.
        if isinstance(status, str) and status.isascii() and status.isprintable():
            self._count_error(status)
            await super().push(status)        # nearly every reply: nothing to mend
            return
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        text = "\r\n".join(_CONTROL.sub("?", line) for line in text.split("\r\n"))
        self._count_error(text)
        await super().push(text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace"))

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # Nearly every path is a plain <local@domain>: matched here, it is what the email
        # package's parser would return, without its cost (aiosmtpd also defines a class
        # on every call), which was a tenth of a proxied message's CPU time.
        simple = _SIMPLE_PATH.match(arg)
        if simple is not None:
            # The parser also takes the blanks (and comments) after the path.
            rest = arg[simple.end():].lstrip(" \t")
            if not rest.startswith("(") and (
                    not self.local_part_limit
                    or len(simple.group("local")) <= self.local_part_limit):
                return simple.group("path"), rest
        # The email parser aiosmtpd uses breaks on some hostile paths (IndexError on a
        # lone "<", UnboundLocalError on "a@[ ", AttributeError on "a@["): a path it
        # cannot read is a malformed address (553), not an internal error (451, retried
        # for ever).
        try:
            return super()._getaddr(arg)
        except Exception:  # noqa: BLE001 - any parser failure means an unreadable path
            return None, None

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        # aiosmtpd takes a SIZE= of any str.isdigit() text: "²" then fails in int() (451,
        # an internal error, retried for ever) and "٣" is taken, and passed on to the
        # next hop.  RFC 1870 allows ASCII digits only; anything else is a syntax error.
        result = super()._getparams(params)
        size = None if result is None else result.get("SIZE")
        if isinstance(size, str) and not (size.isascii() and size.isdigit()):
            return None
        return result

    def data_received(self, data: bytes) -> None:
        newline = data.rfind(b"\n")
        self._unterminated = len(data) - newline - 1 if newline >= 0 else \
            self._unterminated + len(data)
        if self.closing:
            return                            # see close_with
        if self._unterminated > self._unterminated_limit:
            if self.transport is not None and not self.transport.is_closing():
                assert isinstance(self.transport, asyncio.WriteTransport)
                self.transport.write(LINE_TOO_LONG)
                self.transport.close()
            return
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if not self._in_message or self.session is None or self.session.ssl is not None:
            return super().eof_received()       # aiosmtpd's: the session ends at once
        # The client sent its message and shut its sending side (after a pipelined QUIT,
        # say): it still reads, and Postfix answers it.  aiosmtpd stopped the session
        # even while the message was being judged: delivered without the client hearing
        # 250, it came again.  The session ends when the input runs dry (handle_exception).
        return asyncio.StreamReaderProtocol.eof_received(self)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, asyncio.IncompleteReadError) and self._reader.at_eof():
            # The message the client sent before its end of input has been answered.
            transport, self.transport = self.transport, None   # ends aiosmtpd's loop
            self.closing = True
            if transport is not None:
                transport.close()
            return ""
        return await super().handle_exception(error)

    def connection_lost(self, error: Exception | None) -> None:
        if self._client_ip is None:
            return
        self.limits.release(self._client_ip)
        self._client_ip = None
        session = self.session
        super().connection_lost(error)
        self._ended = self.loop.create_task(self._end(session))

    async def _end(self, session: object) -> None:
        try:
            if isinstance(session, GatewaySession):
                await self.gateway.session_ended(session)
        finally:
            self.sessions.ended(self)

    def _count_error(self, reply: str) -> None:
        # Postfix counts every error reply towards smtpd_hard_error_limit: refused
        # recipients (a dictionary attack, a relay prober) as much as commands refused
        # for their syntax or order, which a client could otherwise repeat for ever.
        # A 4xx is counted apart, at a higher limit: a greylisted legitimate transaction
        # gets one per recipient.  A 421 ends the session anyway, and RCPTs past
        # max_recipients are counted by the handler (RECIPIENT_OVERSHOOT_LIMIT).
        session = self.session
        if not isinstance(session, GatewaySession):
            return
        if reply.startswith("5"):
            session.errors += 1
        elif reply.startswith("4") and not reply.startswith(("421", TOO_MANY_RECIPIENTS)):
            session.deferrals += 1

    async def over_error_limit(self) -> bool:
        """Past ``max_errors`` 5xx replies or ``max_deferrals`` 4xx replies since the last
        delivered message, say 421 and close (True) instead of taking the next command
        of a transaction."""
        session = self.session
        assert isinstance(session, GatewaySession)
        if session.errors >= self.max_errors:
            await self.close_with("421 4.7.0 Too many errors; closing the connection")
            return True
        if session.deferrals >= self.max_deferrals:
            await self.close_with("421 4.7.0 Too many temporary failures; closing the"
                                  " connection, try again later")
            return True
        return False

    async def over_junk_limit(self) -> bool:
        """Count a command that carries no mail; past ``max_junk_commands`` since the last
        delivered message, say 421 and close (True)."""
        session = self.session
        assert isinstance(session, GatewaySession)
        session.junk += 1
        if session.junk <= self.max_junk_commands:
            return False
        await self.close_with("421 4.7.0 Too many commands without mail; closing the"
                              " connection")
        return True

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        # An MX takes no logins: aiosmtpd would offer AUTH after STARTTLS and answer every
        # try with 535, an endless password-guessing target.  Postfix's words without SASL.
        if not await self.over_junk_limit():
            await self.push("503 5.5.1 Error: authentication not enabled")

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # RFC 3207 4.2: TLS once per connection.  aiosmtpd said 220 again and started TLS
        # inside TLS, which broke in asyncio's TLS layer (a traceback, the session gone).
        if self._tls_protocol is not None:
            await self.push("554 5.5.1 Error: TLS already active")    # Postfix's words
            return
        await super().smtp_STARTTLS(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message gathered from whole blocks of input
        (smtp/dataphase.py) into one buffer.  aiosmtpd awaits each line and keeps it as an
        object of its own until the end, some 90 bytes a line on top of the text: 25 MB
        of short lines took over 700 MB.  Its rules are kept: the end only at
        <CRLF>.<CRLF>, leading dots unstuffed (RFC 5321 4.5.2), and a message over the
        size limit (552) or with a line over the line limit (500) read to its end and
        then refused.  The client gets 421 4.4.2 and is closed when it is idle for the
        idle timeout between reads, or falls behind ``min_data_rate`` (``_read_credit``)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._in_message = True
        try:
            await self._receive_message()
        finally:
            self._in_message = self._answering = False
        if self.stopping and self.transport is not None:
            await self.close_with(SHUTTING_DOWN)    # after the message's reply: shut_down

    async def _receive_message(self) -> None:
        """DATA after its 354: the message read, judged and answered."""
        assert self.envelope is not None
        collector = MessageCollector(self.data_size_limit, self.line_length_limit)
        reader = self._reader
        rest = None
        credit = self._read_credit(None, 0, 0.0)
        last_read = self.loop.time()
        while rest is None and self.transport is not None:
            # The timer says 421 and closes when the next read does not come within the
            # idle timeout, or the credit runs out first.
            self._reset_timeout(min(credit, self._timeout_duration))
            try:
                # Whatever the connection has buffered (flow control bounds it).
                chunk = await reader.read(READ_ALL)
            except asyncio.CancelledError:          # the connection went (connection_lost)
                self._writer.close()
                raise
            if not chunk:
                return                              # end of input: the client went
            now = self.loop.time()
            credit = self._read_credit(credit, len(chunk), now - last_read)
            last_read = now
            if credit <= 0:
                self._timeout_cb()                  # fell behind within this one read
                return
            rest = collector.feed(chunk)
        if rest is None:
            return
        self._answering = True                      # see shut_down
        self._reset_timeout()                       # the next command has the idle timeout
        if rest and not reader.at_eof():
            # Commands pipelined after the message (RFC 2920) go back to aiosmtpd's
            # reader, which the whole buffer was just taken from, so their order holds.
            reader.feed_data(rest)
        if collector.refusal is not None:
            await self.push(collector.refusal)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = collector.message()
        del collector
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _read_credit(self, credit: float | None, received: int, waited: float) -> float:
        """Seconds of reading a message the client has left before it falls behind
        ``min_data_rate`` (Postfix's deadline): DATA_RATE_GRACE to begin with (``credit``
        None), then each read costs the time waited for it and earns its bytes at the
        floor rate, never more than the idle timeout or the grace (so a fast start buys
        no long trickle afterwards).  Without a floor, no limit beyond the idle timeout."""
        if not self.min_data_rate:
            return math.inf
        if credit is None:
            return DATA_RATE_GRACE
        return min(credit - waited + received / self.min_data_rate,
                   max(self._timeout_duration, DATA_RATE_GRACE))


class ListenError(Exception):
    """A listen address that cannot be bound; the message names it."""


def _within_limit(method: Callable[[SMTP, str], typing.Awaitable[None]],
                  over_limit: Callable[[GatewaySMTP], typing.Awaitable[bool]]
                  ) -> Callable[[GatewaySMTP, str], typing.Awaitable[None]]:
    """``method``, run only when ``over_limit`` has not closed the connection."""
    @functools.wraps(method)      # keeps aiosmtpd's syntax line for HELP
    async def limited(self: GatewaySMTP, arg: str) -> None:
        if not await over_limit(self):
            await method(self, arg)
    return limited


for _command in ("NOOP", "RSET", "VRFY", "EXPN", "HELP", "HELO", "EHLO"):
    setattr(GatewaySMTP, f"smtp_{_command}",
            _within_limit(getattr(SMTP, f"smtp_{_command}"), GatewaySMTP.over_junk_limit))
for _command in ("MAIL", "RCPT", "DATA"):
    setattr(GatewaySMTP, f"smtp_{_command}",
            _within_limit(getattr(GatewaySMTP, f"smtp_{_command}"),
                          GatewaySMTP.over_error_limit))


def tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    """The server side of STARTTLS, or None when no certificate is configured."""
    if config.tls_certificate is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_certificate, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(f"cannot use TLS certificate {config.tls_certificate}"
                          f" with key {config.tls_key}: {exc}") from None
    return context


def bind(address: HostPort, reuse_port: bool) -> socket.socket:
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def run_worker(config: Config, index: int, workers: int,
                     listeners: list[socket.socket], lifeline: int | None = None) -> None:
    """One worker: serves ``listeners`` (its sockets, one per listen address, bound by
    ``serve``) until SIGTERM, or until ``lifeline`` (a pipe only the supervisor writes
    to) reads end of file: the supervisor is gone."""
    smtp = config.smtp
    limits = SessionLimits(math.ceil(smtp.max_sessions / workers),
                           math.ceil(smtp.max_sessions_per_ip / workers))
    tls = tls_context(smtp)
    services = Services.open(config)
    orgdomain.preload()
    # Commits on the event loop only append to the store's log; a thread folds it back
    # into the database (with the fsyncs), so no session waits for the disk.
    services.store.checkpoint_elsewhere()
    handler = GatewayHandler(services)
    pregreet = PregreetTest(smtp)
    sessions = OpenSessions()
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        if limits.active >= limits.max_sessions:
            limits.refused += 1
            return TurnAway()
        return GatewaySMTP(handler, limits, smtp, tls, pregreet, sessions)

    servers = []
    for address, sock in zip(smtp.listen, listeners, strict=True):
        # create_server listens again with its own backlog (100 by default): beyond that, a
        # spike's connections would wait in SYN-ACK retransmits instead of getting 421.
        servers.append(await loop.create_server(factory, sock=sock, backlog=LISTEN_BACKLOG))
        if index == 0:
            print(f"portcullis: SMTP gateway listening on {address}", file=sys.stderr,
                  flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, services.decision_log.reopen)
    if lifeline is not None:
        def orphaned() -> None:
            loop.remove_reader(lifeline)
            log.error("worker %d: the supervisor is gone; stopping", index)
            stop.set()
        loop.add_reader(lifeline, orphaned)
    # Blocked by the supervisor since the fork; what came meanwhile is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)

    def flush_and_publish() -> None:
        # Open sessions for the web UI's dashboard (a separate process); never raises.
        gatewaystatus.publish(config.store.dir, index, active=limits.active,
                              refused=limits.refused, per_ip=limits.per_ip,
                              max_sessions=limits.max_sessions)
        services.traffic.flush()

    flush_and_publish()
    tasks = [asyncio.ensure_future(_every(FLUSH_INTERVAL, flush_and_publish)),
             asyncio.ensure_future(_every(CHECKPOINT_INTERVAL, services.store.checkpoint,
                                          in_thread=True))]
    if index == 0:
        # Slow (archive purge): in a thread, with that thread's own store connection.
        tasks.append(asyncio.ensure_future(_every(
            housekeeping.INTERVAL, lambda: housekeeping.run(services), in_thread=True,
            delay=60)))
    try:
        await stop.wait()
    finally:
        await _stop_serving(index, servers, sessions, stop_timeout(config.delivery))
        for task in tasks:
            task.cancel()
        gatewaystatus.withdraw(config.store.dir, index)
        services.close()


async def _stop_serving(index: int, servers: list[asyncio.Server], sessions: OpenSessions,
                        timeout: float) -> None:
    """A worker's stop, as Postfix's smtpd under 'postfix reload' rather than a
    before-queue proxy under 'postfix stop': the listening sockets close at once (the
    kernel refuses new clients, or another worker or the restarted gateway takes them),
    sessions that were promised nothing get 421, and messages past their final dot are
    answered first, for up to ``timeout`` seconds (``stop_timeout``)."""
    for server in servers:
        server.close()
    sessions.shut_down()
    if sessions:
        log.info("worker %d stopping: waiting up to %.0f s for %d session(s) to end",
                 index, timeout, len(sessions))
    left = await sessions.wait(timeout)
    if left:
        log.error("worker %d: %d session(s) still open after %.0f s; stopping anyway",
                  index, left, timeout)


async def _every(interval: float, job: Callable[[], object], *, in_thread: bool = False,
                 delay: float | None = None) -> None:
    await asyncio.sleep(interval if delay is None else delay)
    while True:
        try:
            if in_thread:
                await asyncio.to_thread(job)
            else:
                job()
        except Exception:
            log.exception("periodic job failed")
        await asyncio.sleep(interval)
