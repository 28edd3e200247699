"""SPF, DKIM and DMARC on messages and DNS data written by an attacker: bounded work,
no signature hidden by junk, no policy dodged by the shape of a From header."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress

import dkim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portcullis.mailauth import dkimverify, dmarc, orgdomain, spf
from portcullis.mailauth.dkimverify import (
    MAX_KEY_LOOKUPS,
    MAX_SELECTION_WORK,
    MAX_SIGNATURE_FIELDS,
    MAX_SIGNATURES,
    MAX_UNUSABLE_REPORTED,
)
from portcullis.policy import Flag
from portcullis.resolver import DnsAnswer, DnsStatus
from tests.support.mailauth import CountingHash, ZoneResolver, authenticate, dkim_key

pytestmark = pytest.mark.defenses


@pytest.fixture(scope="module")
def signer() -> tuple[bytes, ZoneResolver]:
    """A private key (PEM) and a zone publishing its public half at
    sel._domainkey.bank.test."""
    private, public = dkim_key()
    return private, ZoneResolver({("sel._domainkey.bank.test", "TXT"):
                                  (f"v=DKIM1; k=rsa; p={public}",)})


MESSAGE = (b"From: service@bank.test\r\nTo: a@b.test\r\nSubject: Statement\r\n"
           b"Content-Type: text/plain\r\n\r\nYour statement is ready.\r\n")


def sign(private: bytes, message: bytes = MESSAGE, **options: object) -> bytes:
    return dkim.sign(message, b"sel", b"bank.test", private,
                     include_headers=[b"from", b"to", b"subject"], **options) + message


def verify(resolver: ZoneResolver, content: bytes) -> list[dkimverify.DkimResult]:
    return asyncio.run(dkimverify.verify(resolver, content))


def test_dkim_signature_of_the_message_verifies(signer) -> None:
    private, resolver = signer
    assert [r.result for r in verify(resolver, sign(private))] == ["pass"]


def test_dkim_h_list_too_long_is_a_permerror_without_dkimpy_selecting_fields(
        signer, monkeypatch) -> None:
    """dkimpy scans every header field for each absent name in h=: a long list of absent
    names against many fields is CPU work a timeout cannot stop (a worker thread)."""
    _, resolver = signer
    work: list[int] = []
    select = dkim.select_headers

    def measured(headers, include_headers):
        work.append(len(headers) * len(include_headers))
        return select(headers, include_headers)

    monkeypatch.setattr(dkim, "select_headers", measured)
    body = b"hello\r\n"
    body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()

    def hostile(names: int, fields: int) -> bytes:
        signed = ":".join(f"x{i}" for i in range(names))
        return (f"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=bank.test; s=sel; "
                f"h=from:{signed}; bh={body_hash}; b=AAAA\r\n"
                "From: a@bank.test\r\n").encode() + b"y: z\r\n" * fields + b"\r\n" + body

    for names, fields in ((2000, 2000), (40, 5000)):
        results = verify(resolver, hostile(names, fields))
        assert [r.result for r in results] == ["permerror"], results
        assert "header fields" in results[0].detail
    assert all(w <= MAX_SELECTION_WORK for w in work)
    # A modest list on an ordinary message is verified (and fails: b= is not a signature).
    assert [r.result for r in verify(resolver, hostile(20, 10))] == ["fail"]


def test_dkim_never_runs_dkimpys_quadratic_header_parser(signer, monkeypatch) -> None:
    """dkimpy's rfc822_parse copies a folded field once per continuation line."""
    private, resolver = signer
    signed = sign(private)

    def refuse(message: bytes) -> None:
        raise AssertionError("dkimpy's own parser was used")

    monkeypatch.setattr(dkim, "rfc822_parse", refuse)
    assert [r.result for r in verify(resolver, signed)] == ["pass"]
    folded = signed.replace(b"\r\n\r\n", b"\r\nX-Fold: a\r\n" + b" b\r\n" * 100_000
                            + b"\r\n", 1)
    assert [r.result for r in verify(resolver, folded)] == ["pass"]


_LINE = st.one_of(st.sampled_from([b"", b" folded", b"\tfolded", b"From bounce", b"X: y",
                                   b"Bad line", b"A:", b":empty name"]),
                  st.binary(max_size=12))


@given(st.lists(_LINE, max_size=12), st.sampled_from([b"\r\n", b"\n"]))
def test_dkim_message_split_is_dkimpys(lines: list[bytes], separator: bytes) -> None:
    message = separator.join(lines)
    try:
        expected = dkim.rfc822_parse(message)
    except (dkim.MessageFormatError, IndexError):
        with pytest.raises(dkim.MessageFormatError):
            dkimverify.split_message(message)
        return
    assert dkimverify.split_message(message) == expected


def test_dkim_signature_after_junk_ones_is_still_verified(signer) -> None:
    private, resolver = signer
    junk = b"".join(f"DKIM-Signature: v=1; d=junk{i}.test; s=s; h=from; b=x\r\n".encode()
                    for i in range(MAX_SIGNATURES + 3))
    results = verify(resolver, junk + sign(private))
    assert [r.result for r in results if r.domain == "bank.test"] == ["pass"]
    assert len(results) <= 2 * MAX_SIGNATURES
    # Unusable signatures cost no key lookups.
    assert not [name for name, _ in resolver.asked if "junk" in name]


def test_dkim_signatures_with_made_up_selectors_do_not_take_the_real_ones_place(
        signer) -> None:
    """Signatures claiming the From domain with the right bh= and selectors that publish
    no key, before the real one: each failed key lookup frees its place, so the real
    signature is verified and DMARC passes; the lookups stay bounded."""
    private, published = signer

    def made_up(count: int) -> bytes:
        return b"".join(dkim.sign(MESSAGE, f"fake{i}".encode(), b"bank.test", private,
                                  include_headers=[b"from", b"to", b"subject"])
                        for i in range(count))

    zone = {**published.zone, ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    resolver = ZoneResolver(zone)
    symbols, header = authenticate(resolver, made_up(MAX_SIGNATURES) + sign(private))
    assert "DMARC_PASS" in symbols and "DKIM_VALID" in symbols, symbols
    assert "dkim=pass header.d=bank.test header.s=sel" in header
    assert header.count("dkim=permerror") == MAX_SIGNATURES, header
    # However many there are, at most MAX_KEY_LOOKUPS keys are asked for.
    resolver = ZoneResolver(zone)
    results = verify(resolver, made_up(MAX_KEY_LOOKUPS + 5) + sign(private))
    assert len([n for n, kind in resolver.asked if "._domainkey." in n]) == MAX_KEY_LOOKUPS
    assert "pass" not in [r.result for r in results]


def test_dkim_signatures_of_another_body_cost_a_bounded_number_of_key_lookups(
        signer) -> None:
    """A signature whose body hash fails gets no RSA; its key is asked only to see whether
    the signer is testing (t=y), for at most MAX_UNUSABLE_REPORTED of them, and those
    lookups do not take the real signature's place."""
    private, published = signer
    other = MESSAGE.replace(b"is ready.", b"is elsewhere.")
    replayed = b"".join(dkim.sign(other, f"s{i}".encode(), f"d{i}.test".encode(), private,
                                  include_headers=[b"from"])
                        for i in range(MAX_KEY_LOOKUPS + 5))
    resolver = ZoneResolver(published.zone)
    results = verify(resolver, replayed + sign(private))
    assert [r.result for r in results if r.domain == "bank.test"] == ["pass"]
    asked = [name for name, _ in resolver.asked if name != "sel._domainkey.bank.test"]
    assert asked == [f"s{i}._domainkey.d{i}.test" for i in range(MAX_UNUSABLE_REPORTED)]


@pytest.mark.parametrize("selector", ["a" * 64, ".".join([c * 60 for c in "stuv"]),
                                      "\u2603", "a..b"])
def test_dkim_signature_whose_key_name_dns_cannot_carry_does_not_dodge_dmarc(
        selector: str) -> None:
    """Anyone can add a signature claiming the From domain, with the right bh=: one whose
    key name is no DNS name (a label over 63 octets, a name over 253, no IDNA form) was
    a key lookup that failed for now, and DMARC a temperror instead of the domain's
    p=reject.  No key can be there: a permerror."""
    body = b"Pay now.\r\n"
    body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    forged = (f"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=bank.test; "
              f"s={selector}; h=from; bh={body_hash}; b=AAAA\r\n").encode()
    content = forged + b"From: ceo@bank.test\r\nSubject: Invoice\r\n\r\n" + body
    zone = {("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    symbols, header = authenticate(ZoneResolver(zone), content)
    assert "DMARC_FAIL_REJECT" in symbols and "DKIM_TEMPERROR" not in symbols, symbols
    assert "dkim=permerror" in header


def test_from_domain_too_long_for_its_dmarc_name_gets_its_organisations_policy() -> None:
    """_dmarc.<From domain> is longer than DNS allows for a From domain of 247 to 253
    characters: no record can be there, so the organisation's is the policy (it was a
    lookup that failed for now: a temperror, and p=reject dodged)."""
    labels = [c * 60 for c in "wxyz"]
    domain = ".".join(labels)[:253 - len(".bank.test")].rstrip(".") + ".bank.test"
    assert 246 < len(domain) <= 253
    content = f"From: ceo@{domain}\r\nSubject: Invoice\r\n\r\nPay now.\r\n".encode()
    zone = {("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    symbols, _ = authenticate(ZoneResolver(zone), content)
    assert "DMARC_FAIL_REJECT" in symbols and "DMARC_TEMPERROR" not in symbols, symbols


def test_envelope_domain_dns_cannot_carry_does_not_dodge_dmarc() -> None:
    """MAIL FROM at a subdomain of the From domain's organisation with a character that
    has no IDNA form (SMTPUTF8): the resolver refuses the name, and SPF was a temperror
    of an aligned domain, DMARC a temperror instead of the domain's p=reject.  Such a
    name is no domain (RFC 7208 4.3: none)."""
    content = b"From: ceo@bank.test\r\nSubject: Invoice\r\n\r\nPay now.\r\n"
    zone = {("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",),
            ("bank.test", "TXT"): ("v=spf1 exists:%{l}.users.bank.test -all",)}
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="x@\u2603.bank.test")
    assert "SPF_NONE" in symbols and "DMARC_FAIL_REJECT" in symbols, symbols
    # A local part the domain's own record puts in a name: no temporary error either.
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="\u2603@bank.test")
    assert "SPF_TEMPERROR" not in symbols and "DMARC_FAIL_REJECT" in symbols, symbols


def test_dkim_verifying_several_signatures_hashes_the_body_once(signer, monkeypatch) -> None:
    """Each signature dkimpy verified canonicalised and hashed the whole body again: a
    big message with MAX_SIGNATURES valid signatures (anyone's, with keys of their own)
    cost six passes over the body, enough to run DKIM out of time, a temperror that
    DMARC must take for a signature that may pass.  Body hashes are checked once."""
    private, resolver = signer
    body = b"Your statement is ready.\r\n" * 4000
    message = MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body
    signed = message
    for _ in range(MAX_SIGNATURES):
        signed = sign(private, signed)[:-len(signed)] + signed
    counted: list[int] = []
    monkeypatch.setitem(dkim.HASH_ALGORITHMS, b"rsa-sha256",
                        lambda: CountingHash(hashlib.sha256(), counted))
    assert [r.result for r in verify(resolver, signed)] == ["pass"] * MAX_SIGNATURES
    assert sum(counted) < 2 * len(body), sum(counted) / len(body)


def test_dkim_key_lookup_that_failed_for_now_is_reported_behind_any_junk(signer) -> None:
    """A temperror must reach DMARC and the score (DKIM_TEMPERROR, no penalty) however
    many unusable signatures come before it in the message."""
    private, _ = signer

    class Silent(ZoneResolver):
        async def txt(self, name: str) -> DnsAnswer:
            return DnsAnswer(DnsStatus.TIMEOUT)

    junk = b"".join(f"DKIM-Signature: v=1; d=junk{i}.test; s=s; h=from; b=x\r\n".encode()
                    for i in range(MAX_SIGNATURES + 3))
    symbols, header = authenticate(Silent({}), junk + sign(private))
    assert "DKIM_TEMPERROR" in symbols and "DKIM_INVALID" not in symbols, symbols
    assert "dkim=temperror" in header


def test_dkim_reads_a_bounded_number_of_signature_fields_and_says_so(
        signer, monkeypatch) -> None:
    """Each DKIM-Signature field costs its parsing; their number was bounded only by the
    message size limit."""
    private, resolver = signer
    read: list[int] = []
    usable = dkimverify._usable

    def counted(index, value, fields):
        read.append(index)
        return usable(index, value, fields)

    monkeypatch.setattr(dkimverify, "_usable", counted)
    junk = b"".join(f"DKIM-Signature: v=1; d=junk{i}.test; s=s; h=from; b=x\r\n".encode()
                    for i in range(MAX_SIGNATURE_FIELDS * 50))
    signed = sign(private)
    headers, body = signed.split(b"\r\n\r\n", 1)
    results = verify(resolver, headers + b"\r\n" + junk + b"\r\n" + body)
    assert len(read) == MAX_SIGNATURE_FIELDS
    assert results[0].result == "permerror"
    assert results[0].detail == (f"{MAX_SIGNATURE_FIELDS * 50 + 1} DKIM-Signature fields: only "
                                 f"the first {MAX_SIGNATURE_FIELDS} are read")
    assert [r.result for r in results if r.domain == "bank.test"] == ["pass"]
    # Nothing passing: the note is the reason given.
    symbols, _ = authenticate(resolver, junk + MESSAGE)
    assert "only the first" in symbols["DKIM_INVALID"].reason


def test_orgdomain_cache_keeps_only_domain_names() -> None:
    before = orgdomain._organisational.cache_info().currsize
    for i in range(3):
        long_name = f"{i}" + "a" * 100_000 + ".com"
        assert orgdomain.organisational_domain(long_name) == long_name
        assert orgdomain.organisational_domain(f"{'b' * 64}.{i}.example.com") \
            == f"{'b' * 64}.{i}.example.com"
    assert orgdomain._organisational.cache_info().currsize == before
    assert orgdomain.organisational_domain("Mail.Example.co.uk.") == "example.co.uk"


@pytest.mark.parametrize("domain", ["a" * 300 + ".com", "x" * 64 + ".example.com",
                                    "bad!name.test", "a..b.test"])
def test_dmarc_from_domain_that_is_no_domain_name_is_a_permerror_kept_out_of_headers(
        domain: str) -> None:
    resolver = ZoneResolver({})
    content = f"From: ceo@{domain}\r\nSubject: s\r\n\r\nhi\r\n".encode()
    symbols, header = authenticate(resolver, content)
    assert symbols["DMARC_PERMERROR"].score > 0
    assert "dmarc=permerror" in header and "header.from" not in header
    assert domain not in header and domain[:40] not in header
    assert not [name for name, _ in resolver.asked if "_dmarc" in name]


DMARC_ZONE = {("paypal.test", "TXT"): ("v=spf1 ip4:192.0.2.1 -all",),
              ("_dmarc.paypal.test", "TXT"): ("v=DMARC1; p=reject",),
              ("_dmarc.lenient.test", "TXT"): ("v=DMARC1; p=quarantine",),
              ("attacker.test", "TXT"): ("v=spf1 ip4:203.0.113.66 -all",),
              ("_dmarc.attacker.test", "TXT"): ("v=DMARC1; p=none",)}


@pytest.mark.parametrize("from_lines", [
    "From: ceo@paypal.test, x@attacker.test",
    "From: x@attacker.test, ceo@paypal.test, y@lenient.test",
    "From: x@attacker.test\r\nFrom: ceo@paypal.test",
    "From: " + ", ".join(f"x@d{i}.attacker.test" for i in range(4)) + ", ceo@paypal.test",
])
def test_dmarc_every_from_domain_is_judged_and_the_strictest_failure_stands(
        from_lines: str) -> None:
    content = f"{from_lines}\r\nSubject: pay\r\n\r\nhi\r\n".encode()
    symbols, header = authenticate(ZoneResolver(DMARC_ZONE), content)
    assert "DMARC_FAIL_REJECT" in symbols and "DMARC_PASS" not in symbols
    assert "dmarc=fail (p=reject)" in header and "header.from=paypal.test" in header


def test_dmarc_passes_with_several_from_domains_only_when_all_pass() -> None:
    content = b"From: x@attacker.test, y@mail.attacker.test\r\nSubject: s\r\n\r\nhi\r\n"
    symbols, _ = authenticate(ZoneResolver(DMARC_ZONE), content)
    assert "DMARC_PASS" in symbols


@pytest.mark.parametrize("junk", [5, 8])
def test_dmarc_more_from_domains_than_are_judged_fails_as_under_p_reject(junk: int) -> None:
    """Junk domains in front of ceo@paypal.test used to push it past the five judged, and
    the message got a 0.5 permerror instead of paypal's p=reject."""
    content = ("From: " + ", ".join(f"x@d{i}.attacker.test" for i in range(junk))
               + ", ceo@paypal.test\r\nSubject: s\r\n\r\nhi\r\n").encode()
    resolver = ZoneResolver(DMARC_ZONE)
    symbols, header = authenticate(resolver, content)
    assert symbols["DMARC_FAIL_REJECT"].flag is Flag.FORGED and "DMARC_PASS" not in symbols
    assert symbols["DMARC_FAIL_REJECT"].reason == \
        "DMARC fail: more than 5 From domains, not all of them judged"
    assert "dmarc=fail" in header and "more than 5 From domains" in header
    assert len([name for name, _ in resolver.asked if name.startswith("_dmarc.")]) <= 10


IDN_ZONE = {("xn--bcher-kva.test", "TXT"): ("v=spf1 ip4:192.0.2.1 -all",),
            ("_dmarc.xn--bcher-kva.test", "TXT"): ("v=DMARC1; p=reject",)}


def test_dmarc_raw_utf8_from_domain_is_looked_up_as_its_a_label() -> None:
    """RFC 6532: a From domain in raw UTF-8 is the A-label domain's From."""
    content = "From: Bücher <ceo@bücher.test>\r\nSubject: s\r\n\r\nhi\r\n".encode()
    resolver = ZoneResolver(IDN_ZONE)
    symbols, header = authenticate(resolver, content)
    assert "DMARC_FAIL_REJECT" in symbols
    assert "header.from=xn--bcher-kva.test" in header
    assert ("_dmarc.xn--bcher-kva.test", "TXT") in resolver.asked


def test_dmarc_from_domain_in_bytes_that_are_not_utf8_is_a_permerror() -> None:
    content = b"From: ceo@b\xfccher.test\r\nSubject: s\r\n\r\nhi\r\n"
    symbols, header = authenticate(ZoneResolver(IDN_ZONE), content)
    assert "DMARC_PERMERROR" in symbols and "DMARC_TEMPERROR" not in symbols
    assert "header.from" not in header


def test_dkim_body_beyond_the_signed_length_gets_no_pass_nor_dmarc_credit(signer) -> None:
    """l=: anything appended after the signed length would verify."""
    private, resolver = signer
    signed = sign(private, length=True)
    assert [r.result for r in verify(resolver, signed)] == ["pass"]
    appended = signed + b"\r\nURGENT: verify your account at http://evil.example/\r\n"
    results = verify(resolver, appended)
    assert [(r.domain, r.result) for r in results] == [("bank.test", "policy")]
    assert "not covered" in results[0].detail
    zone = ZoneResolver({**resolver.zone, ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)})
    symbols, header = authenticate(zone, appended, mail_from="bounce@elsewhere.test")
    assert "DKIM_VALID" not in symbols and "DMARC_FAIL_REJECT" in symbols
    assert "dkim=policy" in header
    # No credit, but no forgery either (a mailing list's footer looks the same): neutral.
    assert symbols["DKIM_POLICY"].score == 0 and "DKIM_INVALID" not in symbols


@pytest.mark.parametrize(("record", "policy"), [
    ("v=DMARC1; p=reject; pct=0", "quarantine"),
    ("v=DMARC1; p=reject; pct=99", "quarantine"),
    ("v=DMARC1; p=quarantine; pct=50", "none"),
    ("v=DMARC1; p=reject; pct=050", "quarantine"),    # 1*3DIGIT: leading zeros allowed
    ("v=DMARC1; p=none; pct=10", "none"),
    ("v=DMARC1; p=reject; pct=100", "reject"),
    ("v=DMARC1; p=reject", "reject"),
    ("v=DMARC1; p=reject; pct=²", "reject"),          # bad values: the default, 100
    ("v=DMARC1; p=reject; pct=101", "reject"),
    ("v=DMARC1; p=reject; pct=-1", "reject"),
])
def test_dmarc_pct_below_100_applies_the_next_lower_policy(record: str, policy: str) -> None:
    outcome = asyncio.run(dmarc.evaluate(
        ZoneResolver({("_dmarc.rollout.test", "TXT"): (record,)}), "rollout.test", None, []))
    assert (outcome.result, outcome.policy) == (dmarc.DmarcResult.FAIL, policy)


def spf_result(record: str) -> spf.SpfOutcome:
    resolver = ZoneResolver({("a.test", "TXT"): (record,)})
    return asyncio.run(spf.check_host(resolver, ipaddress.ip_address("192.0.2.1"), "a.test",
                                      "user@a.test", "helo.test"))


@pytest.mark.parametrize("term", [
    "include:%{x}.a.test",          # no such macro letter
    "exists:%{c}.a.test",           # c, r, t: explanation text only
    "exists:%{d0}",                 # a zero transformer
    "ip6:2001:db8:://64",           # ip6 takes one /len
    "ip4:192.0.2.0//24",
    "a/033",                        # no leading zeros
    "a:b.test/",                    # not a domain-spec
    "include:localhost",            # a domain-spec ends in "." toplabel or a macro
    "include:a%b.test",
    "foo=%{z",                      # unknown modifiers must still be well formed
])
def test_spf_syntax_errors_anywhere_in_the_record_are_a_permerror(term: str) -> None:
    """RFC 7208 4.6: the whole record is parsed before evaluation; a syntax error after
    the mechanism that matches still makes it a permerror."""
    outcome = spf_result(f"v=spf1 +all {term}")
    assert outcome.result is spf.SpfResult.PERMERROR, outcome


@pytest.mark.parametrize("term", [
    "include:_spf.google.com", "exists:%{i}._spf.mta.salesforce.com",
    "include:%{ir}.%{v}.%{d}.spf.has.pphosted.com", "exists:%{l}.%{d}.", "exp=explain.%{d}",
    "mx:example.com/24", "a:mail.example.com//64", "a/24//64", "ip6:2a00:1450:4000::/36",
    "ip4:0.0.0.0/0", "exists:%{ir}.%{l1r+-}._spf.%{d}", "ptr:example.com", "moo=%{c}x",
    "include:a.b.test.",
])
def test_spf_published_forms_still_parse(term: str) -> None:
    assert spf_result(f"v=spf1 +all {term}").result is spf.SpfResult.PASS


def test_spf_records_of_more_terms_than_are_evaluated_are_a_permerror() -> None:
    """A sender's own DNS may publish records of 64 KB (TCP), ten of them through
    includes: 45,000 ip4 terms took 1.6 s of the event loop's time for one message (no
    timeout can stop it).  At most MAX_TERMS terms are read in one evaluation."""
    many = " ".join(f"ip4:10.0.{i // 256}.{i % 256}" for i in range(spf.MAX_TERMS))
    zone = {("big.test", "TXT"): (f"v=spf1 {many} -all",),
            ("fits.test", "TXT"): (f"v=spf1 {many[:many.rindex(' ')]} -all",),
            ("chain.test", "TXT"): ("v=spf1 include:fits.test include:fits.test -all",)}
    for domain, expected in (("big.test", spf.SpfResult.PERMERROR),
                             ("fits.test", spf.SpfResult.FAIL),
                             ("chain.test", spf.SpfResult.PERMERROR)):
        outcome = asyncio.run(spf.check_host(ZoneResolver(zone),
                                             ipaddress.ip_address("192.0.2.1"), domain,
                                             f"user@{domain}", "helo.test"))
        assert outcome.result is expected, (domain, outcome)
    assert "terms" in asyncio.run(spf.check_host(
        ZoneResolver(zone), ipaddress.ip_address("192.0.2.1"), "big.test", "u@big.test",
        "helo.test")).detail


def test_spf_domain_spec_of_more_macros_than_are_expanded_is_a_permerror() -> None:
    """Each macro of a term costs the length of the sender's local part: 15,000 %{l} in
    one term (a 60 KB record) took 0.4 s to expand.  Real domain-specs hold a few."""
    outcome = spf_result("v=spf1 exists:" + "%{l}" * (spf.MAX_MACROS + 1) + ".a.test -all")
    assert outcome.result is spf.SpfResult.PERMERROR and "macros" in outcome.detail, outcome
    outcome = spf_result("v=spf1 exists:" + "%{l}" * spf.MAX_MACROS + ".a.test -all")
    assert outcome.result is spf.SpfResult.FAIL, outcome


@pytest.mark.parametrize("labels", [1, 60, 5000])
def test_spf_name_expanded_beyond_253_characters_keeps_its_rightmost_labels(
        labels: int) -> None:
    """RFC 7208 7.3: leftmost labels are removed until the name fits (in one pass: label
    by label it was quadratic in the name's length)."""
    local = ".".join(["abc"] * labels)
    resolver = ZoneResolver({("a.test", "TXT"): ("v=spf1 exists:%{l}%{l}.a.test -all",)})
    asyncio.run(spf.check_host(resolver, ipaddress.ip_address("192.0.2.1"), "a.test",
                               f"{local}@a.test", "helo.test"))
    asked = [name for name, kind in resolver.asked if kind == "A"]
    whole = f"{local}{local}.a.test"
    assert asked == [whole if len(whole) <= 253 else whole[whole.index(".", len(whole) - 254) + 1:]]
    assert len(asked[0]) <= 253 and asked[0].endswith(".a.test")


@pytest.mark.parametrize("term", [
    "a:x." + "a" * 60_000 + "!",           # read for a toplabel at every split of the run
    "exists:" + "a." * 2_000 + "test",     # a name of 4 KB, cut down label by label
], ids=["letter-run", "long-name"])
def test_spf_domain_spec_longer_than_any_name_is_a_permerror_unread(term: str) -> None:
    """A sender's record may hold one term of 60 KB: reading whether it ended in a
    toplabel backtracked over every split of a letter run (over a minute of the event
    loop).  No domain-spec needs more than MAX_DOMAIN_SPEC characters (a name is at
    most 253, and MAX_MACROS macros add a few each): a longer one is refused unread."""
    resolver = ZoneResolver({("a.test", "TXT"): (f"v=spf1 {term} -all",)})
    outcome = asyncio.run(spf.check_host(resolver, ipaddress.ip_address("192.0.2.1"),
                                         "a.test", "user@a.test", "helo.test"))
    assert outcome.result is spf.SpfResult.PERMERROR, outcome
    assert f"longer than {spf.MAX_DOMAIN_SPEC}" in outcome.detail, outcome
    assert resolver.asked == [("a.test", "TXT")]


@pytest.mark.parametrize(("spec", "found"), [
    ("x.com", True), ("x.xn--zckzah", True), ("x.a-b", True), ("x.1a", True),
    ("x.a1", True), ("x.com.", True), ("x.%{d}", True), ("x.%{d}.", True),
    ("x.123", False), ("x.-com", False), ("x.com-", False), ("com", False),
    ("x.a" * 100 + "!", False), ("x." + "1" * 400 + "-", False),
])
def test_spf_domain_spec_ends_in_a_toplabel_or_a_macro(spec: str, found: bool) -> None:
    """RFC 7208 7.1: toplabel = ( *alphanum ALPHA *alphanum ) /
    ( 1*alphanum "-" *( alphanum / "-" ) alphanum ), read unambiguously."""
    assert bool(spf._DOMAIN_END.search(spec)) is found


HELO_POLICY = {
    ("bank.test", "TXT"): ("v=spf1 -include:_helo.bank.test ip4:192.0.2.0/24 -all",),
    ("_helo.bank.test", "TXT"): ("v=spf1 -a:%{h} +all",),
    ("user.bank.test", "TXT"): ("v=spf1 exists:%{l}._users.bank.test -all",),
    ("mail.bank.test", "A"): ("192.0.2.1",),
}


@pytest.mark.parametrize(("domain", "sender", "helo"), [
    ("bank.test", "x@bank.test", "OEMCOMPUTER"),        # one label: no domain name
    ("bank.test", "x@bank.test", "JUMPIN' JUPITER"),
    ("user.bank.test", "a..b@user.bank.test", "mail.bank.test"),   # an empty label
    ("user.bank.test", f"{'a' * 64}@user.bank.test", "mail.bank.test"),
])
def test_spf_term_whose_macros_name_nothing_matches_nothing(
        domain: str, sender: str, helo: str) -> None:
    """A forger chooses the HELO and the local part: one that makes a term's name no
    domain name matches nothing, as a name that does not exist (the RFC 7208 test
    suite's require-valid-helo and invalid-hello-macro), rather than turning the
    domain's fail into a permerror (no FORGED flag, a sixth of the score)."""
    resolver = ZoneResolver(HELO_POLICY)
    outcome = asyncio.run(spf.check_host(resolver, ipaddress.ip_address("192.0.2.1"),
                                         domain, sender, helo))
    assert outcome.result is spf.SpfResult.FAIL, outcome
    # The same mechanism with a name that exists still matches: a HELO naming the
    # client passes the policy.
    outcome = asyncio.run(spf.check_host(resolver, ipaddress.ip_address("192.0.2.1"),
                                         "bank.test", "x@bank.test", "mail.bank.test"))
    assert outcome.result is spf.SpfResult.PASS, outcome
    # An include or redirect naming nothing is still a permerror (RFC 7208 5.2, 6.1).
    for record in ("v=spf1 include:%{h}.", "v=spf1 redirect=%{h}."):
        outcome = asyncio.run(spf.check_host(ZoneResolver({("a.test", "TXT"): (record,)}),
                                             ipaddress.ip_address("192.0.2.1"), "a.test",
                                             "user@a.test", "OEMCOMPUTER"))
        assert outcome.result is spf.SpfResult.PERMERROR, outcome


def test_dmarc_alignment_compares_u_labels_and_a_labels_as_the_same_name() -> None:
    resolver = ZoneResolver(IDN_ZONE)
    spf_passed = spf.SpfOutcome(spf.SpfResult.PASS, "bücher.test")
    outcome = asyncio.run(dmarc.evaluate(resolver, "xn--bcher-kva.test", spf_passed, []))
    assert outcome.result is dmarc.DmarcResult.PASS
    signed = [dkimverify.DkimResult("mail.xn--bcher-kva.test", "s", "pass")]
    assert asyncio.run(dmarc.evaluate(resolver, "Bücher.test", None, signed)).result \
        is dmarc.DmarcResult.PASS


@pytest.mark.parametrize("mail_from", ["ceo@corp.test.", "ceo@CORP.Test.", "ceo@bücher.test",
                                       "ceo@xn--bcher-kva.test."])
def test_envelope_spelling_of_our_own_domain_does_not_dodge_forged_own_domain(
        mail_from: str) -> None:
    """A trailing dot, capitals or the Unicode form of a protected domain in MAIL FROM
    name the same domain; they must not make a forged own-domain sender a stranger."""
    content = b"From: someone@elsewhere.test\r\nSubject: Invoice\r\n\r\nPay now.\r\n"
    symbols, _ = authenticate(ZoneResolver({}), content, mail_from=mail_from,
                              domains=("corp.test", "xn--bcher-kva.test"))
    assert "FORGED_OWN_DOMAIN" in symbols, symbols
