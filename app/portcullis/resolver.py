"""The one DNS resolver every check uses: ``[dns]`` nameservers, port and timeout.

Lookups are async (dnspython) and never raise: a ``DnsAnswer`` says what happened, so
each check decides for itself how to fail (DNSBLs and SPF fail open).  A resolver that
stops answering costs each lookup at most ``[dns] timeout``; after several timeouts in a
row it is not asked again for ``FAIL_FAST_SECONDS`` (lookups answer ``UNAVAILABLE`` at
once), so a silent resolver under load cannot hold every session for the full timeout.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from portcullis.addresses import IPAddress
from portcullis.config import DnsConfig

log = logging.getLogger(__name__)

FAIL_FAST_AFTER = 5          # consecutive timeouts before the resolver is given a rest
FAIL_FAST_SECONDS = 30.0     # how long lookups answer UNAVAILABLE without asking
CACHE_ENTRIES = 20_000       # answers kept (by their TTL) in this process


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


class Resolver:
    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.timeout = config.timeout
        if config.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(config.nameservers)
        else:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                log.warning("no nameserver in /etc/resolv.conf; using 127.0.0.1")
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
        resolver.port = config.port
        resolver.lifetime = config.timeout
        # One retransmission within the lifetime covers a lost UDP datagram.
        resolver.timeout = max(config.timeout / 2, 0.2)
        resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
        self._resolver = resolver
        self._timeouts_in_row = 0
        self._resting_until = 0.0

    @property
    def resting(self) -> bool:
        return time.monotonic() < self._resting_until

    async def lookup(self, name: str, rdtype: str) -> DnsAnswer:
        """Look ``name`` up; never raises."""
        if self.resting:
            return DnsAnswer(DnsStatus.UNAVAILABLE, detail="resolver did not answer recently")
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            return DnsAnswer(DnsStatus.ERROR, detail=f"bad name {name!r}: {exc}")
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            self._answered()
            return DnsAnswer(DnsStatus.NXDOMAIN)
        except dns.exception.Timeout:
            self._timed_out()
            return DnsAnswer(DnsStatus.TIMEOUT,
                             detail=f"no answer within {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            self._answered()
            return DnsAnswer(DnsStatus.ERROR, detail=_first_line(exc))
        except dns.exception.DNSException as exc:
            return DnsAnswer(DnsStatus.ERROR, detail=_first_line(exc))
        self._answered()
        if answer.rrset is None:
            return DnsAnswer(DnsStatus.NODATA)
        return DnsAnswer(DnsStatus.OK, _records(answer.rrset, rdtype))

    async def txt(self, name: str) -> DnsAnswer:
        return await self.lookup(name, "TXT")

    async def addresses(self, name: str, version: int) -> DnsAnswer:
        return await self.lookup(name, "A" if version == 4 else "AAAA")

    def _answered(self) -> None:
        self._timeouts_in_row = 0

    def _timed_out(self) -> None:
        self._timeouts_in_row += 1
        if self._timeouts_in_row >= FAIL_FAST_AFTER and not self.resting:
            log.warning("DNS resolver %s did not answer %d lookups in a row; not asking it "
                        "for %g s", ",".join(self._resolver.nameservers),
                        self._timeouts_in_row, FAIL_FAST_SECONDS)
            self._resting_until = time.monotonic() + FAIL_FAST_SECONDS


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
