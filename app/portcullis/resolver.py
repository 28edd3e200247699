"""The one DNS resolver every check uses: ``[dns]`` nameservers, port and timeout.

Lookups are async over long-lived sockets of our own (answers parsed by dnspython) and
never raise: a ``DnsAnswer`` says what happened, so each check decides for itself how to
fail (DNSBLs and SPF fail open).  A resolver that
stops answering costs each lookup at most ``[dns] timeout``; after several timeouts in a
row, if it has answered nothing else for as long and does not answer a probe of the root
either, it is not asked again for ``FAIL_FAST_SECONDS`` (lookups answer ``UNAVAILABLE`` at
once), so a silent resolver under load cannot hold every session for the full timeout.
Names that time out are chosen by senders (a DKIM selector, an SPF include): their
timeouts alone never rest the resolver, or one message could switch off every DNS check.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import logging
import random
import secrets
import socket
import struct
import time
import typing
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from portcullis.addresses import IPAddress
from portcullis.config import DnsConfig

log = logging.getLogger(__name__)

FAIL_FAST_AFTER = 5          # consecutive timeouts before the resolver is probed
FAIL_FAST_SECONDS = 30.0     # how long lookups answer UNAVAILABLE without asking
CACHE_ENTRIES = 20_000       # answers kept (by their TTL) in this process
CACHE_BYTES = 16 << 20       # ... and the size of their names and records together
CACHE_LARGEST = 4096         # bytes of one answer kept; bigger ones are asked again
ENTRY_OVERHEAD = 200         # bytes of bookkeeping counted for each kept answer
POSITIVE_TTL_CAP = 86400.0   # records are believed for at most a day
NEGATIVE_TTL_CAP = 3600.0    # "no such name" is believed for at most an hour
MAX_CNAME_CHAIN = 8
EDNS_PAYLOAD = 1232          # the DNS flag day 2020 size: no IP fragmentation
RECEIVE_BUFFER = 1 << 20


class DnsStatus(enum.StrEnum):
    OK = "ok"                     # records found
    NXDOMAIN = "nxdomain"         # the name does not exist
    NODATA = "nodata"             # the name exists, without records of that type
    TIMEOUT = "timeout"           # no answer within [dns] timeout
    UNAVAILABLE = "unavailable"   # not asked: the resolver timed out repeatedly just now
    ERROR = "error"               # SERVFAIL, REFUSED, malformed answer, bad name

    @property
    def failed(self) -> bool:
        """True when the answer says nothing about the name (a temporary error)."""
        return self in (DnsStatus.TIMEOUT, DnsStatus.UNAVAILABLE, DnsStatus.ERROR)


@dataclass(frozen=True)
class DnsAnswer:
    """``records``: A/AAAA addresses, TXT strings (each record's strings joined), MX
    exchanges in preference order, PTR targets; names without the trailing dot."""

    status: DnsStatus
    records: tuple[str, ...] = ()
    detail: str = ""

    @property
    def found(self) -> bool:
        return self.status is DnsStatus.OK


# What dnspython raises for a name no DNS name can spell.
_BAD_NAME = (dns.exception.DNSException, UnicodeError, ValueError)


def askable(name: str) -> bool:
    """Whether ``Resolver.lookup`` asks for ``name`` at all: one no DNS name can spell (a
    label over 63 octets, a name over 255, characters without an IDNA form) is answered
    ERROR unasked.  That is no temporary failure of the name (asking again never helps),
    so a caller whose names come from a sender tests them first."""
    try:
        dns.name.from_text(name)
    except _BAD_NAME:
        return False
    return True


class Resolver:
    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.timeout = config.timeout
        nameservers = list(config.nameservers) or _system_nameservers()
        self.nameservers = [(ns, config.port) for ns in nameservers]
        self._transport = _StubTransport(self.nameservers, config.timeout)
        self._cache = _AnswerCache(CACHE_ENTRIES, CACHE_BYTES)
        self._timeouts_in_row = 0
        self._resting_until = 0.0
        self._last_answer = -float("inf")       # when the server last answered anything
        self._probe: asyncio.Task[bool] | None = None

    @property
    def resting(self) -> bool:
        return time.monotonic() < self._resting_until

    async def lookup(self, name: str, rdtype: str) -> DnsAnswer:
        """Look ``name`` up; never raises."""
        # Answers are kept under the name and type exactly as asked: parsing the name
        # into dnspython's form cost more than the rest of a cached lookup.  Spellings
        # that differ (case, a trailing dot) are only kept twice.
        key = (name, rdtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            qname = dns.name.from_text(name)
            kind = dns.rdatatype.from_text(rdtype)
        except _BAD_NAME as exc:
            return DnsAnswer(DnsStatus.ERROR, detail=f"bad name {name!r}: {exc}")
        if self.resting:
            return DnsAnswer(DnsStatus.UNAVAILABLE, detail="resolver did not answer recently")
        try:
            response = await self._transport.query(qname, kind)
        except TimeoutError:
            await self._timed_out()
            return DnsAnswer(DnsStatus.TIMEOUT,
                             detail=f"no answer within {self.timeout:g} s")
        except (OSError, dns.exception.DNSException) as exc:
            return DnsAnswer(DnsStatus.ERROR, detail=_first_line(exc))
        self._answered()
        answer, ttl = _interpret(response, qname, kind)
        if ttl > 0:
            self._cache.put(key, answer, ttl)
        return answer

    async def lookup_all(self, queries: list[tuple[str, str]]) -> list[DnsAnswer]:
        """``lookup`` of each (name, type) at once, answers in the same order.  Cached
        answers are taken as they are: a task apiece (what gathering costs) was most of
        the CPU of a lookup the cache answers, and only the others need to wait."""
        answers = [self._cache.get(query) for query in queries]
        missing = [i for i, answer in enumerate(answers) if answer is None]
        if missing:
            found = await asyncio.gather(*(self.lookup(*queries[i]) for i in missing))
            for i, answer in zip(missing, found, strict=True):
                answers[i] = answer
        return typing.cast(list[DnsAnswer], answers)

    async def txt(self, name: str) -> DnsAnswer:
        return await self.lookup(name, "TXT")

    async def addresses(self, name: str, version: int) -> DnsAnswer:
        return await self.lookup(name, "A" if version == 4 else "AAAA")

    def _answered(self) -> None:
        self._timeouts_in_row = 0
        self._last_answer = time.monotonic()

    async def _timed_out(self) -> None:
        self._timeouts_in_row += 1
        if self._timeouts_in_row < FAIL_FAST_AFTER or self.resting:
            return
        if time.monotonic() - self._last_answer < self.timeout:
            return          # it answers other lookups: those names are slow, not the resolver
        loop = asyncio.get_running_loop()
        if self._probe is None or self._probe.done() or self._probe.get_loop() is not loop:
            self._probe = loop.create_task(self._probe_root())
        if await asyncio.shield(self._probe) or self.resting:
            return
        log.warning("DNS resolver %s did not answer %d lookups in a row nor a probe; not "
                    "asking it for %g s", ",".join(ns for ns, _ in self.nameservers),
                    self._timeouts_in_row, FAIL_FAST_SECONDS)
        self._resting_until = time.monotonic() + FAIL_FAST_SECONDS

    async def _probe_root(self) -> bool:
        """Whether the server answers at all: the root's NS, which every recursive
        resolver has at hand; any reply, even a refusal, means it is there."""
        try:
            await self._transport.query(dns.name.root, dns.rdatatype.NS)
        except (TimeoutError, OSError, dns.exception.DNSException):
            return False
        self._answered()
        return True


def _system_nameservers() -> list[str]:
    try:
        return list(dns.resolver.Resolver().nameservers) or ["127.0.0.1"]
    except dns.resolver.NoResolverConfiguration:
        log.warning("no nameserver in /etc/resolv.conf; using 127.0.0.1")
        return ["127.0.0.1"]


def _interpret(response: dns.message.Message, qname: dns.name.Name,
               kind: dns.rdatatype.RdataType) -> tuple[DnsAnswer, float]:
    """The answer for ``qname``/``kind`` in a response, and how long it may be cached."""
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return DnsAnswer(DnsStatus.NXDOMAIN), _negative_ttl(response)
    if rcode != dns.rcode.NOERROR:
        return DnsAnswer(DnsStatus.ERROR, detail=f"server answered {dns.rcode.to_text(rcode)}"), 0
    name = qname
    for _ in range(MAX_CNAME_CHAIN):         # follow a CNAME chain the resolver sent along
        rrset = _find(response, name, kind)
        if rrset is not None:
            return DnsAnswer(DnsStatus.OK, _records(rrset, dns.rdatatype.to_text(kind))), \
                float(min(rrset.ttl, POSITIVE_TTL_CAP))
        alias = _find(response, name, dns.rdatatype.CNAME)
        if alias is None:
            break
        name = alias[0].target
    return DnsAnswer(DnsStatus.NODATA), _negative_ttl(response)


def _find(response: dns.message.Message, name: dns.name.Name,
          kind: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.rdtype == kind and rrset.name == name:
            return rrset
    return None


def _negative_ttl(response: dns.message.Message) -> float:
    """RFC 2308: the SOA's minimum (capped by its TTL); not cached without a SOA."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return float(min(rrset.ttl, rrset[0].minimum, NEGATIVE_TTL_CAP))
    return 0.0


class _AnswerCache:
    """Answers by (name, type) until their TTL runs out; least recently used go first.

    Bounded by entries and by bytes: a sender's zone can serve big answers (wildcard TXT
    of 60 KB over TCP) under as many names as it likes, so answers over ``CACHE_LARGEST``
    bytes are not kept at all and the rest share ``size_bytes``.
    """

    def __init__(self, size: int, size_bytes: int) -> None:
        self.size = size
        self.size_bytes = size_bytes
        self.used_bytes = 0
        self._entries: collections.OrderedDict[tuple, tuple[float, DnsAnswer, int]] = \
            collections.OrderedDict()

    def get(self, key: tuple) -> DnsAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer, _ = entry
        if expires < time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: tuple, answer: DnsAnswer, ttl: float) -> None:
        size = sum(len(record) for record in answer.records) + len(answer.detail)
        self._remove(key)
        if size > CACHE_LARGEST:
            return
        cost = size + sum(len(str(part)) for part in key) + ENTRY_OVERHEAD
        self._entries[key] = (time.monotonic() + ttl, answer, cost)
        self.used_bytes += cost
        while len(self._entries) > self.size or self.used_bytes > self.size_bytes:
            _, (_, _, freed) = self._entries.popitem(last=False)
            self.used_bytes -= freed

    def _remove(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.used_bytes -= entry[2]


class _StubTransport:
    """Queries to the configured resolver over one long-lived UDP socket per nameserver
    on loopback, and a fresh socket (source port) per query to any other.

    dnspython's resolver opens, registers and closes a socket for every query, which cost
    more CPU than the rest of a message's DNS work; here answers are matched to queries
    by ID and question.  Truncated answers are asked again over TCP.  The appliance's
    resolver is its own unbound on loopback, where nobody off the host can forge an
    answer.  A nameserver elsewhere (``[dns] nameservers``) is reached over the network:
    there a fixed source port would leave only the 16-bit ID for an off-path attacker to
    guess (Kaminsky), and a forged answer could white-wash a blocklisted client or pass
    a forged sender's SPF, so each query gets its own port as RFC 5452 asks.
    """

    def __init__(self, nameservers: list[tuple[str, int]], timeout: float) -> None:
        self.nameservers = nameservers
        self.timeout = timeout
        # One retransmission within the timeout covers a lost UDP datagram.
        self.retransmit = max(timeout / 2, 0.2)
        self._endpoints: dict[tuple[str, int], _Endpoint] = {}
        self._shared = {server for server in nameservers if _on_loopback(server[0])}
        self._ids = random.Random(secrets.randbits(64))  # noqa: S311 - see the docstring

    async def query(self, qname: dns.name.Name,
                    kind: dns.rdatatype.RdataType) -> dns.message.Message:
        question = qname.to_wire() + struct.pack("!HH", kind, dns.rdataclass.IN)
        async with asyncio.timeout(self.timeout):
            attempt = 0
            while True:
                server = self.nameservers[attempt % len(self.nameservers)]
                endpoint = await self._endpoint(server)
                query_id = endpoint.free_id(self._ids)
                try:
                    response = await endpoint.ask(query_id, question, self.retransmit)
                except TimeoutError:
                    attempt += 1
                    continue
                finally:
                    if server not in self._shared:
                        endpoint.close()
                if response.flags & dns.flags.TC:
                    request = dns.message.make_query(qname, kind, use_edns=0,
                                                     payload=EDNS_PAYLOAD)
                    return await dns.asyncquery.tcp(request, server[0], port=server[1])
                return response

    async def _endpoint(self, server: tuple[str, int]) -> _Endpoint:
        loop = asyncio.get_running_loop()
        endpoint = self._endpoints.get(server)
        if endpoint is None or endpoint.loop is not loop or endpoint.closed:
            endpoint = _Endpoint(loop)
            await loop.create_datagram_endpoint(lambda: endpoint, remote_addr=server)
            if server in self._shared:
                self._endpoints[server] = endpoint
        return endpoint


def _on_loopback(nameserver: str) -> bool:
    try:
        return ipaddress.ip_address(nameserver).is_loopback
    except ValueError:
        return False


# Header of a recursive query with one question and one additional record (EDNS0 OPT),
# and that OPT record: root name, type OPT, UDP payload size, no extended flags.
_QUERY_FLAGS = struct.pack("!HHHHH", dns.flags.RD, 1, 0, 0, 1)
_OPT = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = False
        self._waiting: dict[int, tuple[bytes, asyncio.Future]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Answers to a burst of queries must not be dropped by a small buffer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for _, future in self._waiting.values():
            if not future.done():
                future.set_exception(exc or OSError("resolver socket closed"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: nobody answers there; let retries decide.
        log.debug("DNS socket error: %s", exc)

    def free_id(self, ids: random.Random) -> int:
        while True:
            candidate = ids.getrandbits(16)
            if candidate not in self._waiting:
                return candidate

    async def ask(self, query_id: int, question: bytes, wait: float) -> dns.message.Message:
        assert self.transport is not None
        future: asyncio.Future[dns.message.Message] = self.loop.create_future()
        self._waiting[query_id] = (question, future)
        try:
            self.transport.sendto(struct.pack("!H", query_id) + _QUERY_FLAGS + question + _OPT)
            async with asyncio.timeout(wait):
                return await future
        finally:
            self._waiting.pop(query_id, None)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        waiting = self._waiting.get(int.from_bytes(data[:2], "big"))
        if waiting is None:
            return                              # late or forged: nobody asked
        question, future = waiting
        # An answer repeats the question right after the 12-byte header (names compared
        # case-blind, RFC 4343); anything else is not the answer to this query.
        if data[12:12 + len(question)].lower() != question.lower() or future.done():
            return
        if not data[2] & 0x80:                  # QR bit: a response
            return
        try:
            future.set_result(dns.message.from_wire(data))
        except dns.exception.DNSException as exc:
            future.set_exception(exc)


def _records(rrset: dns.rrset.RRset, rdtype: str) -> tuple[str, ...]:
    kind = dns.rdatatype.from_text(rdtype)
    if kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return tuple(r.address for r in rrset)
    if kind == dns.rdatatype.TXT:
        return tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
    if kind == dns.rdatatype.MX:
        ordered = sorted(rrset, key=lambda r: r.preference)
        return tuple(r.exchange.to_text(omit_final_dot=True) for r in ordered)
    if kind == dns.rdatatype.PTR:
        return tuple(r.target.to_text(omit_final_dot=True) for r in rrset)
    return tuple(r.to_text() for r in rrset)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def reversed_ip(ip: IPAddress) -> str:
    """The DNSBL query label for an address: ``4.3.2.1`` for 1.2.3.4, nibbles for IPv6."""
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))
