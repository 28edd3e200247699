"""SPF, DKIM and DMARC evaluation and the shared resolver, against a real local zone
(dnsmasq) and a resolver that never answers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
from collections.abc import Iterator

import dkim
import pytest

from portcullis.config import DnsConfig
from portcullis.mailauth import dmarc, spf
from portcullis.mailauth.dkimverify import (
    MAX_KEY_LOOKUPS,
    MAX_SIGNATURE_FIELDS,
    MAX_SIGNATURES,
    DkimResult,
)
from portcullis.mailauth.dmarc import DmarcResult
from portcullis.mailauth.spf import SpfOutcome, SpfResult
from portcullis.resolver import FAIL_FAST_AFTER, DnsStatus, Resolver
from tests.support.dirs import daemon_dir
from tests.support.dns import Dnsmasq, silent_resolver
from tests.support.mailauth import CountingHash, authenticate, dkim_key

pytestmark = [pytest.mark.defenses, pytest.mark.usefixtures("root_required")]


# DKIM signers the zone publishes keys of: the From domain's own and a mailing list's.
SIGNERS = {"auth.test": "sel", "other.test": "list"}
Keys = dict[str, tuple[bytes, str]]     # by signer: (private PEM, public base64)


@pytest.fixture(scope="module")
def dkim_keys() -> Keys:
    return {domain: dkim_key() for domain in SIGNERS}


@pytest.fixture(scope="module")
def zone(dkim_keys: Keys) -> Iterator[Dnsmasq]:
    server = Dnsmasq(daemon_dir("dns-auth"), ["auth.test", "other.test"])
    for domain, selector in SIGNERS.items():
        server.txt(f"{selector}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={dkim_keys[domain][1]}")
    includes = [f"include:i{n}.auth.test" for n in range(11)]
    (server
     .txt("plain.auth.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")
     .txt("a.auth.test", "v=spf1 a a:host.other.test/30 -all")
     .address("a.auth.test", "198.51.100.7")
     .address("host.other.test", "203.0.113.4")
     .txt("redirect.auth.test", "v=spf1 redirect=plain.auth.test")
     .txt("redirect-none.auth.test", "v=spf1 redirect=nothing.auth.test")
     .txt("two.auth.test", "v=spf1 -all")
     .txt("two.auth.test", "v=spf1 +all")
     .txt("syntax.auth.test", "v=spf1 ip4:192.0.2.1 bogus:thing -all")
     .txt("soft.auth.test", "v=spf1 ?ip4:192.0.2.1 ~all")
     .txt("many.auth.test", "v=spf1 " + " ".join(includes) + " -all")
     .txt("void.auth.test", "v=spf1 a:v1.auth.test a:v2.auth.test a:v3.auth.test ~all")
     .txt("macro.auth.test", "v=spf1 exists:%{ir}.%{l1r-}.allow.auth.test -all")
     .address("1.2.0.192.user.allow.auth.test", "127.0.0.2")
     .txt("_dmarc.auth.test", "v=DMARC1; p=quarantine; sp=reject; adkim=s")
     .txt("_dmarc.plain.auth.test", "v=DMARC1; p=none")
     .txt("_dmarc.other.test", "v=DMARC1; rua=mailto:x@other.test"))
    for n in range(11):
        server.txt(f"i{n}.auth.test", "v=spf1 ?all")
    server.start()
    yield server
    server.stop()


def resolver_for(port: int, timeout: float = 2.0) -> Resolver:
    return Resolver(DnsConfig(nameservers=("127.0.0.1",), port=port, timeout=timeout))


def check(zone: Dnsmasq, ip: str, domain: str, sender: str = "") -> SpfOutcome:
    resolver = resolver_for(zone.port)
    return asyncio.run(spf.check_host(resolver, ipaddress.ip_address(ip), domain,
                                      sender or f"user@{domain}", "helo.example"))


@pytest.mark.parametrize(("ip", "domain", "expected"), [
    ("192.0.2.1", "plain.auth.test", SpfResult.PASS),
    ("2001:db8::25", "plain.auth.test", SpfResult.PASS),
    ("198.51.100.1", "plain.auth.test", SpfResult.FAIL),
    ("198.51.100.7", "a.auth.test", SpfResult.PASS),          # a
    ("203.0.113.6", "a.auth.test", SpfResult.PASS),           # a:host/30
    ("203.0.113.9", "a.auth.test", SpfResult.FAIL),
    ("192.0.2.9", "redirect.auth.test", SpfResult.PASS),      # redirect=
    ("192.0.2.1", "soft.auth.test", SpfResult.NEUTRAL),       # ?ip4
    ("192.0.2.2", "soft.auth.test", SpfResult.SOFTFAIL),
    ("192.0.2.1", "nothing.auth.test", SpfResult.NONE),
    ("192.0.2.1", "two.auth.test", SpfResult.PERMERROR),      # two records
    ("192.0.2.1", "syntax.auth.test", SpfResult.PERMERROR),   # unknown mechanism
    ("192.0.2.1", "redirect-none.auth.test", SpfResult.PERMERROR),
    ("192.0.2.1", "many.auth.test", SpfResult.PERMERROR),     # 11 includes > 10 lookups
    ("192.0.2.1", "void.auth.test", SpfResult.PERMERROR),     # 3 void lookups > 2
])
def test_spf_evaluation(zone: Dnsmasq, ip: str, domain: str, expected: SpfResult) -> None:
    outcome = check(zone, ip, domain)
    assert outcome.result is expected, outcome


def test_spf_macros_expand_reversed_address_and_local_part(zone: Dnsmasq) -> None:
    # exists:%{ir}.%{l1r-}.allow... → 1.2.0.192.user.allow.auth.test for user-x@...
    # (RFC 7208 8.4: %{l1r-} of strong-bad is strong)
    assert check(zone, "192.0.2.1", "macro.auth.test", "user-x@macro.auth.test").result \
        is SpfResult.PASS
    assert check(zone, "192.0.2.1", "macro.auth.test", "other-x@macro.auth.test").result \
        is SpfResult.FAIL


def test_spf_with_a_silent_resolver_is_a_temperror() -> None:
    with silent_resolver() as port:
        outcome = asyncio.run(spf.check_host(resolver_for(port, 0.5),
                                             ipaddress.ip_address("192.0.2.1"),
                                             "plain.auth.test", "u@plain.auth.test"))
    assert outcome.result is SpfResult.TEMPERROR


def evaluate(zone: Dnsmasq, from_domain: str, spf_outcome: SpfOutcome | None,
             dkim: list[DkimResult]) -> dmarc.DmarcOutcome:
    return asyncio.run(dmarc.evaluate(resolver_for(zone.port), from_domain, spf_outcome,
                                      dkim))


def test_dmarc_passes_on_aligned_spf_and_fails_without_alignment(zone: Dnsmasq) -> None:
    aligned = SpfOutcome(SpfResult.PASS, "mail.auth.test")
    assert evaluate(zone, "auth.test", aligned, []).result is DmarcResult.PASS
    elsewhere = SpfOutcome(SpfResult.PASS, "mailer.other.test")
    failed = evaluate(zone, "auth.test", elsewhere, [])
    assert (failed.result, failed.policy) == (DmarcResult.FAIL, "quarantine")


def test_dmarc_strict_dkim_alignment_and_subdomain_policy(zone: Dnsmasq) -> None:
    parent_signature = [DkimResult("auth.test", "s", "pass")]
    # adkim=s: a signature of auth.test does not align with sub.auth.test ...
    outcome = evaluate(zone, "sub.auth.test", None, parent_signature)
    # ... and the policy for a subdomain without a record of its own is sp=reject.
    assert (outcome.result, outcome.policy) == (DmarcResult.FAIL, "reject")
    assert evaluate(zone, "auth.test", None, parent_signature).result is DmarcResult.PASS


def test_dmarc_record_of_the_domain_itself_wins_and_bad_policy_means_none(zone: Dnsmasq
                                                                          ) -> None:
    assert evaluate(zone, "plain.auth.test", None, []).policy == "none"
    assert evaluate(zone, "other.test", None, []).policy == "none"     # rua without p=
    assert evaluate(zone, "nothing.other.test", None, []).result is DmarcResult.FAIL


def test_resolver_answers_kinds_of_failure_distinctly(zone: Dnsmasq) -> None:
    resolver = resolver_for(zone.port)

    async def lookups() -> list[DnsStatus]:
        return [(await resolver.txt("plain.auth.test")).status,
                (await resolver.txt("missing.auth.test")).status,
                (await resolver.lookup("a.auth.test", "MX")).status,
                (await resolver.txt("outside.example")).status]      # REFUSED by dnsmasq

    assert asyncio.run(lookups()) == [DnsStatus.OK, DnsStatus.NXDOMAIN, DnsStatus.NODATA,
                                      DnsStatus.ERROR]


def test_silent_resolver_is_rested_after_repeated_timeouts() -> None:
    with silent_resolver() as port:
        resolver = resolver_for(port, 0.3)

        async def lookups() -> list[DnsStatus]:
            statuses = [(await resolver.txt(f"n{n}.auth.test")).status
                        for n in range(FAIL_FAST_AFTER)]
            return [*statuses, (await resolver.txt("next.auth.test")).status]

        statuses = asyncio.run(lookups())
    assert statuses == [DnsStatus.TIMEOUT] * FAIL_FAST_AFTER + [DnsStatus.UNAVAILABLE]


@pytest.mark.parametrize("ttl", [0, 300])
def test_resolver_caches_what_an_authoritative_zone_lets_it_cache(ttl: int) -> None:
    """With a SOA in negative answers (RFC 2308) "no such name" and "no such record" are
    cached like records are; a zone serving TTL 0 without a SOA is asked every time."""
    server = Dnsmasq(daemon_dir(f"dns-ttl{ttl}"), ["cache.test"], ttl=ttl)
    server.txt("cache.test", "v=spf1 -all").start()
    try:
        resolver = resolver_for(server.port)

        async def lookups() -> list[DnsStatus]:
            return [(await resolver.lookup(name, kind)).status
                    for _ in range(3)
                    for name, kind in (("cache.test", "TXT"), ("missing.cache.test", "TXT"),
                                       ("cache.test", "MX"))]

        statuses = asyncio.run(lookups())
        asked = [name for name in server.queries() if not name.startswith("probe.")]
    finally:
        server.stop()
    assert statuses == [DnsStatus.OK, DnsStatus.NXDOMAIN, DnsStatus.NODATA] * 3
    expected = ["cache.test", "missing.cache.test", "cache.test"]
    assert asked == (expected if ttl else expected * 3)


# -- DKIM: which signatures get verified -------------------------------------------------

DKIM_MESSAGE = (b"From: service@auth.test\r\nTo: a@example.net\r\nSubject: Statement\r\n"
                b"\r\nYour statement is ready.\r\n")
OTHER_BODY = DKIM_MESSAGE.replace(b"ready", b"overdue")
AUTH_SIGNATURE = "dkim=pass header.d=auth.test header.s=sel"


def signature(keys: Keys, domain: str, selector: str, signer: str = "",
              message: bytes = DKIM_MESSAGE) -> bytes:
    """A DKIM-Signature field for ``message`` claiming ``domain``/``selector``, made
    with the key of ``signer`` (``domain`` itself by default)."""
    return dkim.sign(message, selector.encode(), domain.encode(), keys[signer or domain][0],
                     include_headers=[b"from", b"to", b"subject"])


def authenticate_in(zone: Dnsmasq, content: bytes) -> tuple[dict, str]:
    return authenticate(resolver_for(zone.port), content, mail_from="bounce@lists.other.test")


def test_dkim_real_signature_after_five_with_bad_body_hashes_is_verified_and_passes_dmarc(
        zone: Dnsmasq, dkim_keys: Keys) -> None:
    """Signatures of another message (a replayed one of auth.test's own too) before the
    real one: each fails on its body hash, without RSA (its key is asked only for t=y,
    besides MAX_KEY_LOOKUPS, for at most MAX_UNUSABLE_REPORTED of them), and the real
    one is verified."""
    junk = [signature(dkim_keys, "auth.test", "sel", message=OTHER_BODY),
            signature(dkim_keys, "other.test", "old", message=OTHER_BODY),
            *(signature(dkim_keys, f"x{i}.other.test", "none", "other.test", OTHER_BODY)
              for i in range(3))]
    asked = len(zone.queries())
    symbols, header = authenticate_in(
        zone, b"".join(junk) + signature(dkim_keys, "auth.test", "sel") + DKIM_MESSAGE)
    assert "DMARC_PASS" in symbols and "DKIM_VALID" in symbols, symbols
    assert AUTH_SIGNATURE in header
    assert header.count('dkim=fail reason="body hash did not verify"') == 5, header
    keys_asked = [n for n in zone.queries()[asked:] if "._domainkey." in n]
    assert set(keys_asked) == {"sel._domainkey.auth.test", "old._domainkey.other.test",
                               *(f"none._domainkey.x{i}.other.test" for i in range(3))}


def test_dkim_aligned_signature_is_verified_before_valid_ones_of_other_domains(
        zone: Dnsmasq, dkim_keys: Keys) -> None:
    """A mailing list's valid signatures (body hash and all) placed before the From
    domain's own: DMARC needs the latter, so it is among those verified."""
    listed = signature(dkim_keys, "other.test", "list") * (MAX_SIGNATURES + 1)
    symbols, header = authenticate_in(
        zone, listed + signature(dkim_keys, "auth.test", "sel") + DKIM_MESSAGE)
    assert "DMARC_PASS" in symbols, symbols
    assert AUTH_SIGNATURE in header
    assert header.count("dkim=pass header.d=other.test") == MAX_SIGNATURES - 1


def test_dkim_signatures_with_selectors_publishing_no_key_leave_the_real_one_verified(
        zone: Dnsmasq, dkim_keys: Keys) -> None:
    """Signatures of the message by auth.test's own key, under selectors that publish no
    key, before the real one: the failed lookups free their places, the real signature
    passes DMARC, and the key lookups asked stay within MAX_KEY_LOOKUPS."""
    made_up = b"".join(signature(dkim_keys, "auth.test", f"made-up{i}")
                       for i in range(MAX_SIGNATURES))
    asked = len(zone.queries())
    symbols, header = authenticate_in(
        zone, made_up + signature(dkim_keys, "auth.test", "sel") + DKIM_MESSAGE)
    assert "DMARC_PASS" in symbols and "DKIM_VALID" in symbols, symbols
    assert AUTH_SIGNATURE in header
    assert header.count('reason="no key published at made-up') == MAX_SIGNATURES, header
    keys_asked = [n for n in zone.queries()[asked:] if "._domainkey." in n]
    assert len(set(keys_asked)) == MAX_SIGNATURES + 1 <= MAX_KEY_LOOKUPS


def test_dkim_body_hashing_is_bounded_whatever_the_number_of_l_values(
        zone: Dnsmasq, dkim_keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """As many signatures as are read, each with its own l= spread over the body, before
    the real one: checking their body hashes costs one pass over the body, not one per
    l=, and the real one is verified."""
    body = b"Your statement is ready.\r\n" * 4000
    message = DKIM_MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body
    junk = []
    for n in range(MAX_SIGNATURE_FIELDS - 1):
        length = len(body) * (n + 1) // MAX_SIGNATURE_FIELDS
        # Every other one claims the right hash of its part of the body.
        digest = hashlib.sha256(body[:length] if n % 2 else b"other").digest()
        junk.append(f"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=other.test; "
                    f"s=list; h=from; l={length}; bh={base64.b64encode(digest).decode()}; "
                    f"b=AAAA\r\n".encode())
    content = (b"".join(junk) + signature(dkim_keys, "auth.test", "sel", message=message)
               + message)
    counted: list[int] = []
    monkeypatch.setitem(dkim.HASH_ALGORITHMS, b"rsa-sha256",
                        lambda: CountingHash(hashlib.sha256(), counted))
    symbols, header = authenticate_in(zone, content)
    assert "DMARC_PASS" in symbols, symbols
    assert AUTH_SIGNATURE in header
    # One pass to check the body hashes (dkimpy is not let check them again), and the
    # header fields: not the 9.5 bodies that hashing each l= apart would cost, nor one
    # more for each signature verified.
    assert sum(counted) < 2 * len(body), sum(counted)
