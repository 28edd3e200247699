"""Sender authentication for the tests: DKIM keys, a resolver over a dict zone, and the
Authentication check run on a message with any resolver (a dict zone, or ours asking a
local dnsmasq)."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from portcullis.checks.authentication import Authentication
from portcullis.checks.base import Context
from portcullis.policy import Symbol
from portcullis.resolver import DnsAnswer, DnsStatus, askable


class ZoneResolver:
    """The ``Resolver`` interface over a dict: {(name, type): records}; NXDOMAIN else,
    a timeout for the (name, type) pairs in ``silent``, and an error for a name DNS
    cannot carry (a label over 63 octets, a name over 255, no IDNA form), as
    ``Resolver`` answers without asking."""

    def __init__(self, zone: dict[tuple[str, str], tuple[str, ...]],
                 silent: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.zone = zone
        self.silent = silent
        self.asked: list[tuple[str, str]] = []

    async def lookup(self, name: str, rdtype: str) -> DnsAnswer:
        self.asked.append((name, rdtype))
        if not askable(name):
            return DnsAnswer(DnsStatus.ERROR, detail=f"bad name {name!r}")
        key = (name.rstrip(".").lower(), rdtype)
        if key in self.silent:
            return DnsAnswer(DnsStatus.TIMEOUT, detail="no answer within 3 s")
        records = self.zone.get(key)
        return DnsAnswer(DnsStatus.OK, records) if records else DnsAnswer(DnsStatus.NXDOMAIN)

    async def txt(self, name: str) -> DnsAnswer:
        return await self.lookup(name, "TXT")

    async def addresses(self, name: str, version: int) -> DnsAnswer:
        return await self.lookup(name, "A" if version == 4 else "AAAA")


class CountingHash:
    """A real hash object that counts the bytes it is given (put in dkimpy's
    ``HASH_ALGORITHMS`` to see how often a body is hashed)."""

    def __init__(self, real: object, counted: list[int]) -> None:
        self.real, self.counted = real, counted

    def update(self, data: bytes) -> None:
        self.counted.append(len(data))
        self.real.update(data)

    def copy(self) -> CountingHash:
        return CountingHash(self.real.copy(), self.counted)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def dkim_key(bits: int = 1024) -> tuple[bytes, str]:
    """An RSA signing key: the private half (PEM, for ``dkim.sign``) and the public half
    as a DKIM key record's ``p=`` (base64 DER)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public).decode()


def authenticate(resolver: object, content: bytes, mail_from: str = "b@attacker.test",
                 client_ip: str = "203.0.113.66", domains: tuple[str, ...] = ()
                 ) -> tuple[dict[str, Symbol], str]:
    """The Authentication check's symbols (by name) and its Authentication-Results;
    ``domains`` are the protected ones."""
    services = SimpleNamespace(resolver=resolver, config=SimpleNamespace(
        dns=SimpleNamespace(timeout=3.0), smtp=SimpleNamespace(hostname="gw.example")))
    ctx = Context(client_ip=client_ip, helo="mx.attacker.test", mail_from=mail_from,
                  content=content, snapshot=SimpleNamespace(
                      settings={"sender_authentication": True},
                      domains=set(domains)))
    found = asyncio.run(Authentication(services).check(ctx))
    return {s.name: s for s in found}, ctx.headers[0]
