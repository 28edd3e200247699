"""The userspace tarpit for scanners (``portcullis tarpit``).

The kernel here has no TARPIT target, so the ruleset redirects scanners' new connections to
closed ports to this server.  It accepts them with a tiny receive window, never reads (the
window closes to zero and the client's writes stall), and trickles one byte now and then so
the client keeps waiting.  It holds little per connection (a socket in a dict, one timer
for all), caps connections per source and in all, and closes anything over a cap at once
(with a reset), so it cannot be turned into a way to exhaust the appliance.  Nor its
journal: what it took and refused is summed up in one line a minute, not a line a client.
``SO_ORIGINAL_DST`` recovers the port the client asked for (for the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from portcullis.addresses import source_of

log = logging.getLogger("portcullis.tarpit")

SO_ORIGINAL_DST = 80            # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is the same
TCP_INFO_STATE_ESTABLISHED = 1
RECEIVE_BUFFER = 1              # the kernel rounds up to its minimum: the smallest window
WINDOW_CLAMP = 1                # likewise rounded up; keeps the window from ever growing
# What the tarpit trickles: an endless, harmless text banner, one byte at a time.
TRICKLE = b"220-Please hold the line; your connection is important to us.\r\n"
# How often the tarpit sums up what it did.  A line per connection let a scanner with many
# addresses (an IPv6 /48 is 65,536 sources) write hundreds a second to the journal, which
# then rotated the appliance's other messages away.
REPORT_SECONDS = 60.0


@dataclass
class Held:
    sock: socket.socket
    source: str
    asked_port: int | None
    since: float
    sent: int = 0


@dataclass
class TarpitStats:
    accepted: int = 0
    refused_per_source: int = 0
    refused_total: int = 0
    by_port: Counter[int] = field(default_factory=Counter)


def original_port(sock: socket.socket) -> int | None:
    """The destination port the client asked for before nftables redirected it."""
    try:
        if sock.family == socket.AF_INET:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            return struct.unpack_from(">H", raw, 2)[0]
        raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        return struct.unpack_from(">H", raw, 2)[0]
    except OSError:
        return None      # not redirected (a direct connection, e.g. from loopback)


def _listener(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Accepted sockets inherit these: the window offered in the SYN-ACK stays tiny.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP, WINDOW_CLAMP)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Tarpit:
    """Holds redirected connections; ``serve()`` runs until ``stop()``."""

    def __init__(self, port: int, *, per_source: int = 4, max_connections: int = 2048,
                 trickle_seconds: float = 10.0, hold_seconds: float = 3600.0,
                 hosts: tuple[str, ...] = ("0.0.0.0", "::"),  # noqa: S104
                 report_seconds: float = REPORT_SECONDS) -> None:
        if per_source < 1 or max_connections < 1:
            raise ValueError("the tarpit caps must be at least 1")
        self.port = port
        self.per_source = per_source
        self.max_connections = max_connections
        self.trickle_seconds = max(0.05, trickle_seconds)
        self.hold_seconds = hold_seconds
        self.hosts = hosts
        self.report_seconds = report_seconds
        self.held: dict[int, Held] = {}
        self.per_source_count: Counter[str] = Counter()
        self.stats = TarpitStats()
        self._reported = (0, 0, 0)          # the stats' counts at the last report
        self._reported_at = time.monotonic()
        self.listeners: list[socket.socket] = []
        self._stopping: asyncio.Event | None = None

    def open(self) -> None:
        """Bind the listening sockets (IPv6 is skipped where the host has none)."""
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                self.listeners.append(_listener(family, host, self.port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT,
                                                               errno.EADDRNOTAVAIL):
                    log.warning("no IPv6 here; tarpit listens on IPv4 only")
                    continue
                raise
        if not self.listeners:
            raise OSError(f"tarpit: could not listen on port {self.port}")

    async def serve(self) -> None:
        if not self.listeners:
            self.open()
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sock in self.listeners:
            loop.add_reader(sock.fileno(), self._accept, sock)
        log.info("tarpit listening on port %d (per source %d, total %d)", self.port,
                 self.per_source, self.max_connections)
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.trickle_seconds)
                self._trickle()
                self._report()
        finally:
            for sock in self.listeners:
                loop.remove_reader(sock.fileno())
            self.close()

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors (or similar): stop listening for a moment rather than
                # spin on a backlog that cannot be accepted; the kernel keeps it meanwhile.
                log.warning("tarpit accept failed: %s; pausing accepts for a second", exc)
                loop = asyncio.get_running_loop()
                loop.remove_reader(listener.fileno())
                loop.call_later(1.0, loop.add_reader, listener.fileno(), self._accept,
                                listener)
                return
            try:
                self._admit(sock, peer[0])
            except Exception:   # one odd connection must not stop the tarpit
                log.exception("tarpit: dropping a connection from %s", peer[0])
                _reset(sock)

    def _admit(self, sock: socket.socket, peer: str) -> None:
        source = source_of(peer)
        if self.per_source_count[source] >= self.per_source:
            self.stats.refused_per_source += 1
            _reset(sock)
            return
        if len(self.held) >= self.max_connections:
            self.stats.refused_total += 1
            _reset(sock)
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        asked = original_port(sock)
        self.held[sock.fileno()] = Held(sock, source, asked, time.monotonic())
        self.per_source_count[source] += 1
        self.stats.accepted += 1
        if asked is not None:
            self.stats.by_port[asked] += 1
        log.debug("holding %s (asked for port %s), %d held", source,
                  asked if asked is not None else "?", len(self.held))

    def _trickle(self) -> None:
        now = time.monotonic()
        for fd, held in list(self.held.items()):
            if now - held.since > self.hold_seconds or not _established(held.sock):
                self._release(fd)
                continue
            byte = TRICKLE[held.sent % len(TRICKLE):held.sent % len(TRICKLE) + 1]
            try:
                held.sent += held.sock.send(byte, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            except BlockingIOError:
                continue          # the client does not read either: fine, it waits
            except OSError:
                self._release(fd)

    def _report(self) -> None:
        """Sum up, once a report period has passed, what changed since the last report."""
        now = time.monotonic()
        if now - self._reported_at < self.report_seconds:
            return
        counts = (self.stats.accepted, self.stats.refused_per_source,
                  self.stats.refused_total)
        self._reported_at = now
        if counts == self._reported:
            return
        taken, per_source, full = (new - old for new, old in zip(counts, self._reported,
                                                                  strict=True))
        self._reported = counts
        log.info("holding %d connections from %d sources; since the last report %d taken, "
                 "%d refused over the per-source cap, %d over the total cap", len(self.held),
                 len(self.per_source_count), taken, per_source, full)

    def _release(self, fd: int) -> None:
        held = self.held.pop(fd, None)
        if held is None:
            return
        self.per_source_count[held.source] -= 1
        if self.per_source_count[held.source] <= 0:
            del self.per_source_count[held.source]
        _reset(held.sock)

    def close(self) -> None:
        for fd in list(self.held):
            self._release(fd)
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()


def _established(sock: socket.socket) -> bool:
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[0] == TCP_INFO_STATE_ESTABLISHED


def _reset(sock: socket.socket) -> None:
    """Close with a RST: no FIN_WAIT/TIME_WAIT state is kept for a scanner."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def run(tarpit: Tarpit) -> int:
    """Serve until SIGTERM or SIGINT; the command's entry point."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, tarpit.stop)
        await tarpit.serve()

    tarpit.open()
    # Tell a supervisor that may wait for it (tests, or a Type=notify unit later).
    print(f"tarpit ready on port {tarpit.port} pid {os.getpid()}", flush=True)
    asyncio.run(main())
    return 0
