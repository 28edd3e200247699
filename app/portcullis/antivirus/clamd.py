"""An asyncio client for clamd: INSTREAM scanning, PING, VERSION, RELOAD, STATS.

clamd's protocol (``man clamd``): a command prefixed ``z`` and terminated by NUL gets a reply
terminated by NUL.  INSTREAM then takes chunks, each prefixed by its length as a 4-byte
big-endian integer, and a zero length to finish; the reply is ``stream: OK``,
``stream: <signature> FOUND`` or ``<message> ERROR``.  One connection per command keeps it
simple and robust (a clamd restart never leaves a client holding a dead session).

Every operation is bounded: connecting by ``connect_timeout``, the whole exchange by
``timeout``.  Anything that keeps clamd from giving a verdict raises ``ClamdError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from dataclasses import dataclass

from portcullis.config import parse_hostport

MAX_REPLY = 64 * 1024


class ClamdError(Exception):
    """clamd gave no verdict: unreachable, too slow, or it refused the request."""


class ClamdUnavailable(ClamdError):
    """clamd could not be reached (not running, socket missing, connection refused)."""


@dataclass(frozen=True)
class ScanResult:
    signature: str | None          # None: clean

    @property
    def infected(self) -> bool:
        return self.signature is not None


_FOUND = re.compile(r"^(?:\d+: )?(?:stream|\S+): (.+?)(?:\([0-9a-f]{32,64}:\d+\))? FOUND$")


def parse_scan_reply(reply: str) -> ScanResult:
    """Turn clamd's INSTREAM reply into a result; raise ClamdError for its errors."""
    if reply.endswith(": OK"):
        return ScanResult(None)
    match = _FOUND.match(reply)
    if match:
        return ScanResult(match.group(1).strip())
    raise ClamdError(f"clamd: {reply or 'empty reply'}")


class ClamdClient:
    """Talks to one clamd, at a local socket path or ``host:port``."""

    def __init__(self, address: str, *, connect_timeout: float = 2.0, timeout: float = 120.0,
                 chunk_size: int = 64 * 1024, max_concurrent: int = 8) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._slots = asyncio.Semaphore(max_concurrent)
        if address.startswith("/") or address.startswith("unix:"):
            self._path: str | None = address.removeprefix("unix:")
            self._tcp = None
        else:
            self._path = None
            self._tcp = parse_hostport(address.removeprefix("tcp:"), 3310)

    # -- commands -------------------------------------------------------------------------

    async def ping(self) -> None:
        reply = await self._command(b"PING")
        if reply != "PONG":
            raise ClamdError(f"clamd: unexpected PING reply {reply!r}")

    async def version(self) -> str:
        """``ClamAV 1.4.3/27458/Thu Nov 14 08:26:36 2024`` (engine/signatures/their date)."""
        return await self._command(b"VERSION")

    async def reload(self) -> str:
        """Ask clamd to reload its databases (it keeps scanning with the old ones meanwhile)."""
        return await self._command(b"RELOAD")

    async def stats(self) -> str:
        return await self._command(b"STATS")

    async def scan(self, data: bytes) -> ScanResult:
        """Scan ``data`` (a whole message, or one file) and return clamd's verdict."""
        # Waiting for a slot counts against the timeout too: a caller is promised an
        # answer within ``timeout``, busy clamd or not.
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    reply = await self._exchange(b"INSTREAM", data)
        except TimeoutError:
            raise ClamdError(f"clamd gave no verdict within {self.timeout:g}s") from None
        return parse_scan_reply(reply)

    # -- plumbing -------------------------------------------------------------------------

    async def _command(self, command: bytes) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(command, None)
        except TimeoutError:
            raise ClamdError(f"clamd did not answer {command.decode()} within "
                             f"{self.timeout:g}s") from None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self._path is not None:
                    return await asyncio.open_unix_connection(self._path)
                assert self._tcp is not None
                return await asyncio.open_connection(self._tcp.host, self._tcp.port)
        except TimeoutError:
            raise ClamdUnavailable(f"clamd at {self.address}: no connection within "
                                   f"{self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ClamdUnavailable(f"clamd at {self.address}: {exc.strerror or exc}") from None

    async def _exchange(self, command: bytes, stream: bytes | None) -> str:
        reader, writer = await self._connect()
        # Read while writing: clamd answers early and closes when it refuses a stream
        # (size limit), and that answer says why.
        answer = asyncio.ensure_future(reader.readuntil(b"\0"))
        try:
            try:
                writer.write(b"z" + command + b"\0")
                if stream is not None:
                    view = memoryview(stream)
                    for start in range(0, len(view), self.chunk_size):
                        if answer.done():
                            break
                        chunk = view[start:start + self.chunk_size]
                        writer.write(struct.pack(">I", len(chunk)))
                        writer.write(chunk)
                        await writer.drain()
                    else:
                        writer.write(struct.pack(">I", 0))
                await writer.drain()
            except ConnectionError:
                pass   # the answer (if any) tells what happened
            try:
                raw = await answer
            except asyncio.IncompleteReadError as exc:
                raw = exc.partial
            except asyncio.LimitOverrunError:
                raw = await reader.read(MAX_REPLY)
            except ConnectionError as exc:
                raise ClamdError(f"clamd at {self.address}: connection lost ({exc})") from None
            reply = raw.rstrip(b"\0").decode("utf-8", "replace").strip()
            if not reply:
                raise ClamdError(f"clamd at {self.address} closed the connection without "
                                 "a reply")
            return reply
        finally:
            answer.cancel()
            if answer.done() and not answer.cancelled():
                answer.exception()   # retrieved: no "exception never retrieved" noise
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
