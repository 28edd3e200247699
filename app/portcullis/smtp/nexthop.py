"""Talking to the next hop (a domain's internal mail host or the outbound Postfix).

The gateway keeps no queue: recipients are passed to the next hop as the client gives them
(so its 5xx reaches the client at RCPT, as with Postfix's before-queue proxy) and the
client gets 250 for the message only after the next hop said 250.  Any failure to talk to
the next hop becomes a 4xx reply, so the client's MTA keeps the message and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiosmtplib

from portcullis.config import DeliveryConfig, HostPort

log = logging.getLogger(__name__)


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


def unavailable(hop: HostPort, why: str) -> Reply:
    return Reply(451, f"4.4.1 Internal mail host {hop} unavailable ({why}), try again later")


class NextHopSession:
    """One SMTP connection to a next hop, used by one client transaction at a time and
    returned to a ``NextHopPool`` between transactions."""

    def __init__(self, hop: HostPort, *, helo_name: str, timeouts: DeliveryConfig) -> None:
        self.hop = hop
        self.helo_name = helo_name
        self.timeouts = timeouts
        self._smtp: aiosmtplib.SMTP | None = None
        self.in_transaction = False
        self.idle_since = 0.0

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def _connect(self) -> None:
        smtp = aiosmtplib.SMTP(hostname=self.hop.host, port=self.hop.port,
                               local_hostname=self.helo_name, use_tls=False,
                               start_tls=False, timeout=self.timeouts.command_timeout)
        await smtp.connect(timeout=self.timeouts.connect_timeout)
        await smtp.ehlo()
        self._smtp = smtp

    async def begin(self, sender: str, options: list[str]) -> Reply:
        """Open (or reuse) the connection and send MAIL FROM."""
        for attempt in (1, 2):
            try:
                if not self.connected:
                    await self._connect()
                assert self._smtp is not None
                params = [o for o in options if self._supported(o)]
                response = await self._smtp.execute_command(
                    b"MAIL", f"FROM:<{sender}>".encode(), *[p.encode() for p in params])
                reply = Reply(response.code, response.message)
                self.in_transaction = reply.ok
                return reply
            except (TimeoutError, aiosmtplib.SMTPException, OSError, ValueError) as exc:
                # A connection kept from an earlier transaction may have been dropped by
                # the next hop's idle timeout: reconnect once before giving up.
                await self.close()
                if attempt == 2:
                    return unavailable(self.hop, _describe(exc))
        raise AssertionError("unreachable")

    def _supported(self, option: str) -> bool:
        assert self._smtp is not None
        keyword = option.split("=", 1)[0].upper()
        extension = {"BODY": "8bitmime", "SMTPUTF8": "smtputf8", "SIZE": "size"}.get(keyword)
        return extension is not None and self._smtp.supports_extension(extension)

    async def recipient(self, address: str) -> Reply:
        assert self._smtp is not None
        try:
            response = await self._smtp.execute_command(b"RCPT", f"TO:<{address}>".encode())
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ValueError) as exc:
            await self.close()
            return unavailable(self.hop, _describe(exc))
        return Reply(response.code, response.message)

    async def data(self, content: bytes) -> Reply:
        assert self._smtp is not None
        try:
            response = await self._smtp.data(content, timeout=self.timeouts.data_timeout)
            reply = Reply(response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            reply = Reply(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ValueError) as exc:
            # The next hop may or may not have the message now; the client retries, and a
            # duplicate is better than a loss.
            await self.close()
            return unavailable(self.hop, _describe(exc))
        self.in_transaction = False
        return reply

    async def reset(self) -> None:
        if self.connected and self.in_transaction:
            assert self._smtp is not None
            try:
                await self._smtp.rset()
            except (TimeoutError, aiosmtplib.SMTPException, OSError, ValueError):
                await self.close()
        self.in_transaction = False

    def discard(self) -> None:
        """Drop the connection without a QUIT (it sat idle too long to be worth one)."""
        smtp, self._smtp = self._smtp, None
        self.in_transaction = False
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        self.in_transaction = False
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smtp.quit(), 5)
            smtp.close()


class NextHopPool:
    """Idle connections to next hops, kept for the next transaction (as Postfix's scache
    does): a message then costs MAIL, RCPT and DATA instead of a connection, EHLO and QUIT
    as well.  A connection the next hop has dropped meanwhile is reopened by ``begin``."""

    def __init__(self, *, helo_name: str, timeouts: DeliveryConfig, max_idle: int = 32,
                 idle_seconds: float = 15.0) -> None:
        self.helo_name = helo_name
        self.timeouts = timeouts
        self.max_idle = max_idle               # per next hop
        self.idle_seconds = idle_seconds       # well below Postfix's smtpd_timeout (300 s)
        self._idle: dict[HostPort, list[NextHopSession]] = {}

    def acquire(self, hop: HostPort) -> NextHopSession:
        """A connection to ``hop``: the most recently used idle one, else a new one
        (connected by its first ``begin``)."""
        idle = self._idle.get(hop, [])
        now = time.monotonic()
        while idle:
            session = idle.pop()
            if session.connected and now - session.idle_since < self.idle_seconds:
                return session
            session.discard()
        return NextHopSession(hop, helo_name=self.helo_name, timeouts=self.timeouts)

    async def release(self, session: NextHopSession) -> None:
        """Take a connection back after its transaction (reset first if it was left in
        one); close it when it is unusable or the pool for its hop is full."""
        await session.reset()
        idle = self._idle.setdefault(session.hop, [])
        if session.connected and len(idle) < self.max_idle:
            session.idle_since = time.monotonic()
            idle.append(session)
        else:
            await session.close()

    async def close(self) -> None:
        sessions = [s for idle in self._idle.values() for s in idle]
        self._idle.clear()
        await asyncio.gather(*(s.close() for s in sessions))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timeout"
    if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


async def deliver(hop: HostPort, *, helo_name: str, timeouts: DeliveryConfig, sender: str,
                  recipients: list[str], content: bytes) -> tuple[Reply, list[str]]:
    """One-shot delivery (used by Release): returns the outcome and the accepted recipients."""
    session = NextHopSession(hop, helo_name=helo_name, timeouts=timeouts)
    try:
        reply = await session.begin(sender, [])
        if not reply.ok:
            return reply, []
        accepted, last = [], reply
        for address in recipients:
            last = await session.recipient(address)
            if last.ok:
                accepted.append(address)
        if not accepted:
            return last, []
        return await session.data(content), accepted
    finally:
        await session.close()
