"""SPF, DKIM and DMARC as the RFCs and the mail servers administrators know (Postfix's
policy daemons, rspamd, OpenDMARC) read them: legitimate mail must not be scored as
forged for what a sender's DNS or a temporary failure did."""

from __future__ import annotations

import dkim
import pytest

from portcullis.mailauth import dmarc
from tests.support.mailauth import ZoneResolver, authenticate, dkim_key

pytestmark = pytest.mark.defenses

MESSAGE = (b"From: service@bank.test\r\nTo: a@b.test\r\nSubject: Statement\r\n"
           b"Content-Type: text/plain\r\n\r\nYour statement is ready.\r\n")
KEY_NAME = ("sel._domainkey.bank.test", "TXT")


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    return dkim_key()


def sign(private: bytes, message: bytes = MESSAGE) -> bytes:
    return dkim.sign(message, b"sel", b"bank.test", private,
                     include_headers=[b"from", b"to", b"subject"]) + message


def test_dmarc_is_a_temperror_not_a_failure_when_the_aligned_dkim_key_lookup_failed(
        key) -> None:
    """A forwarded message (SPF cannot pass) from a p=reject domain, whose signature could
    not be checked for now, may well pass: RFC 7489 has no fail without the evidence,
    and rspamd says DMARC_DNSFAIL."""
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k=rsa; p={public}",),
            ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    content = sign(private)
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="fwd@forwarder.test")
    assert "DMARC_PASS" in symbols
    symbols, header = authenticate(ZoneResolver(zone, silent=frozenset({KEY_NAME})), content,
                                   mail_from="fwd@forwarder.test")
    assert "DMARC_TEMPERROR" in symbols and "DMARC_FAIL_REJECT" not in symbols, symbols
    assert "dmarc=temperror" in header


def test_dmarc_is_a_temperror_when_spf_of_the_aligned_envelope_domain_failed_for_now(
        ) -> None:
    zone = {("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    content = MESSAGE
    silent = frozenset({("bounce.bank.test", "TXT")})
    symbols, _ = authenticate(ZoneResolver(zone, silent=silent), content,
                              mail_from="x@bounce.bank.test")
    assert "SPF_TEMPERROR" in symbols
    assert "DMARC_TEMPERROR" in symbols and "DMARC_FAIL_REJECT" not in symbols, symbols
    # An unaligned identity that failed for now changes nothing: nothing aligned passed.
    symbols, _ = authenticate(ZoneResolver(zone, silent=frozenset({("elsewhere.test", "TXT")})),
                              content, mail_from="x@elsewhere.test")
    assert "DMARC_FAIL_REJECT" in symbols


def test_own_domain_sent_through_a_service_with_an_aligned_bounce_domain_is_not_forged(
        ) -> None:
    """Our newsletter through a mailing service: envelope bounce@news.corp.test, whose SPF
    passes for the service's address, From corp.test, signed by the service's own domain.
    DMARC passes on relaxed SPF alignment; FORGED_OWN_DOMAIN must agree with it."""
    zone = {("news.corp.test", "TXT"): ("v=spf1 ip4:203.0.113.66 -all",),
            ("_dmarc.corp.test", "TXT"): ("v=DMARC1; p=reject",)}
    content = b"From: news@corp.test\r\nSubject: News\r\n\r\nhi\r\n"
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="b@news.corp.test",
                              domains=("corp.test",))
    assert "SPF_PASS" in symbols and "DMARC_PASS" in symbols
    assert "FORGED_OWN_DOMAIN" not in symbols, symbols
    # Without SPF for the bounce domain it is forged as before.
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="b@news.corp.test",
                              client_ip="198.51.100.9", domains=("corp.test",))
    assert "FORGED_OWN_DOMAIN" in symbols


def test_dkim_failure_under_a_key_in_testing_mode_is_no_invalid_signature(key) -> None:
    """RFC 6376 3.6.1, t=y: verifiers MUST NOT treat messages from signers in testing mode
    differently from unsigned mail, even should the signature fail to verify."""
    private, public = key
    altered = sign(private).replace(b"Subject: Statement", b"Subject: Statement (copy)")
    for flags in ("y", "y:s"):
        zone = {KEY_NAME: (f"v=DKIM1; t={flags}; k=rsa; p={public}",)}
        symbols, header = authenticate(ZoneResolver(zone), altered)
        assert "DKIM_INVALID" not in symbols, symbols
        assert "dkim=neutral" in header and "testing" in header
    # The same failure under a key in production is what it was.
    symbols, header = authenticate(ZoneResolver({KEY_NAME: (f"v=DKIM1; k=rsa; p={public}",)}),
                                   altered)
    assert "DKIM_INVALID" in symbols and "dkim=fail" in header


@pytest.mark.parametrize("from_address", ["news@bücher.test", "news@xn--bcher-kva.test"])
def test_own_international_domain_with_spf_passing_for_its_utf8_spelling_is_not_forged(
        from_address: str) -> None:
    """An SMTPUTF8 sender writes our IDN as bücher.test in MAIL FROM; SPF passes for that
    name (the resolver asks for its A-labels), which proves xn--bcher-kva.test, the form
    the domain is protected under."""
    zone = {("bücher.test", "TXT"): ("v=spf1 ip4:203.0.113.66 -all",)}
    content = f"From: {from_address}\r\nSubject: News\r\n\r\nhi\r\n".encode()
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="ceo@bücher.test",
                              domains=("xn--bcher-kva.test",))
    assert "SPF_PASS" in symbols and "FORGED_OWN_DOMAIN" not in symbols, symbols
    # From elsewhere than its SPF allows, it is forged as any other.
    symbols, _ = authenticate(ZoneResolver(zone), content, mail_from="ceo@bücher.test",
                              client_ip="198.51.100.9", domains=("xn--bcher-kva.test",))
    assert "FORGED_OWN_DOMAIN" in symbols


@pytest.mark.parametrize("records", [
    ("v=DMARC1; p=none", "v=DMARC1; p=none; rua=mailto:d@news.bank.test"),
    ("v=DMARC1; p=monitor",),
])
def test_dmarc_records_of_the_from_domain_itself_end_discovery_even_when_unusable(
        records: tuple[str, ...]) -> None:
    """RFC 7489 6.6.3: the organisational domain is asked only when the From domain has no
    v=DMARC1 record; several of them, or one without a valid p= nor rua=, mean no DMARC
    for the message, not the parent's policy."""
    zone = {("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",),
            ("_dmarc.news.bank.test", "TXT"): records}
    content = b"From: letters@news.bank.test\r\nSubject: News\r\n\r\nhi\r\n"
    resolver = ZoneResolver(zone)
    symbols, _ = authenticate(resolver, content)
    assert not [name for name in symbols if name.startswith("DMARC")], symbols
    assert ("_dmarc.bank.test", "TXT") not in resolver.asked
    # Other TXT records at the name are no DMARC record: the parent's policy applies.
    zone[("_dmarc.news.bank.test", "TXT")] = ("google-site-verification=abc",)
    symbols, _ = authenticate(ZoneResolver(zone), content)
    assert "DMARC_FAIL_REJECT" in symbols


@pytest.mark.parametrize(("record", "expected"), [
    ("v=DMARC1; p=reject; sp=quarantin", None),
    ("v=DMARC1; p=reject; sp=quarantin; rua=mailto:d@bank.test", ("none", "none")),
    ("v=DMARC1; p=reject; sp=quarantine", ("reject", "quarantine")),
    ("v=DMARC1; p=reject", ("reject", "reject")),
])
def test_dmarc_record_with_an_invalid_sp_is_taken_as_one_with_an_invalid_p(
        record: str, expected: tuple[str, str] | None) -> None:
    """RFC 7489 6.6.3: a record with an sp= that is not valid counts as p=none when it has
    a report address, else as no record (OpenDMARC refuses it) - not as the stricter p."""
    parsed = dmarc.parse_record(record)
    found = None if parsed is None else (parsed.policy, parsed.subdomain_policy)
    assert found == expected


@pytest.mark.parametrize("services", ["email:tlsrpt", "tlsrpt : email", "*:tlsrpt", "Email",
                                      "EMAIL:tlsrpt"])
def test_dkim_key_for_several_services_including_email_verifies(key, services: str) -> None:
    """RFC 6376 3.6.1: s= is a colon-separated list of service types (ABNF strings, whose
    case does not matter; OpenDKIM compares "email" with strcasecmp); a key for mail and
    TLS reports alike (RFC 8460) is a key for mail."""
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k=rsa; s={services}; p={public}",),
            ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    symbols, header = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_VALID" in symbols and "DMARC_PASS" in symbols, symbols
    assert "dkim=pass" in header


def test_dkim_key_for_other_services_only_is_no_key_for_mail(key) -> None:
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k=rsa; s=tlsrpt; p={public}",)}
    symbols, _ = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_VALID" not in symbols


def test_dkim_key_record_with_blanks_around_the_equals_sign_is_a_key(key) -> None:
    """RFC 6376 3.2: tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]."""
    private, public = key
    zone = {KEY_NAME: ("v=DKIM1; k=rsa; p = " + public,)}
    symbols, _ = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_VALID" in symbols, symbols


def test_dkim_rsa_sha1_signature_is_no_valid_signature_and_no_dmarc_pass(key) -> None:
    """RFC 8301 3.1: verifiers MUST NOT consider rsa-sha1 signatures valid, so such a
    signature neither earns DKIM credit nor aligns the From domain for DMARC."""
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k=rsa; p={public}",),
            ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    sha1 = dkim.sign(MESSAGE, b"sel", b"bank.test", private, signature_algorithm=b"rsa-sha1",
                     include_headers=[b"from", b"to", b"subject"]) + MESSAGE
    symbols, header = authenticate(ZoneResolver(zone), sha1, mail_from="fwd@forwarder.test")
    assert "DKIM_VALID" not in symbols and "DMARC_FAIL_REJECT" in symbols, symbols
    assert "dkim=permerror" in header and "rsa-sha1" in header, header
    # Signed both ways (as signers did while moving to SHA-256): the rsa-sha256 one passes.
    both = dkim.sign(sha1, b"sel", b"bank.test", private,
                     include_headers=[b"from", b"to", b"subject"]) + sha1
    symbols, header = authenticate(ZoneResolver(zone), both, mail_from="fwd@forwarder.test")
    assert "DKIM_VALID" in symbols and "DMARC_PASS" in symbols, symbols


@pytest.mark.parametrize("kind", ["RSA", "Rsa", " rsa "])
def test_dkim_key_type_is_read_whatever_its_case(key, kind: str) -> None:
    """k=RSA is published by some signers and read as rsa by other verifiers; dkimpy
    compares the value exactly and took it for an unknown algorithm."""
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k={kind}; p={public}",)}
    symbols, header = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_VALID" in symbols and "dkim=pass" in header, symbols
    # A key type that is not RSA in any case is still no RSA key.
    zone = {KEY_NAME: (f"v=DKIM1; k=dsa; p={public}",)}
    symbols, _ = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_VALID" not in symbols


def test_dkim_body_hash_failure_under_a_key_in_testing_mode_is_no_invalid_signature(
        key) -> None:
    """RFC 6376 3.6.1 makes no exception for the body: a signer testing DKIM (t=y) whose
    signature's body hash fails (a footer added, a body re-encoded) sent unsigned mail."""
    private, public = key
    altered = sign(private).replace(b"is ready.", b"is ready!")
    zone = {KEY_NAME: (f"v=DKIM1; t=y; k=rsa; p={public}",)}
    symbols, header = authenticate(ZoneResolver(zone), altered)
    assert "DKIM_INVALID" not in symbols, symbols
    assert 'dkim=neutral reason="body hash did not verify, but the key is in testing mode' \
        in header, header
    # The same failure under a key in production is what it was.
    symbols, header = authenticate(ZoneResolver({KEY_NAME: (f"v=DKIM1; k=rsa; p={public}",)}),
                                   altered)
    assert "DKIM_INVALID" in symbols and 'dkim=fail reason="body hash did not verify"' in header


@pytest.mark.parametrize(("record", "reason"), [
    ("v=DKIM1; k=rsa; p=", "key revoked"),
    ("v=DKIM1; k=dsa; p={public}", "unknown algorithm"),
    ("v=DKIM1; k=rsa; p=AAAA", "could not parse"),
    ("v=DKIM2; p={public}", "bad version"),
    ("v=DKIM1; s=tlsrpt; p={public}", "other services"),
    ("v=DKIM1; s=other; p={public}", "other services"),
])
def test_dkim_key_record_that_cannot_verify_mail_is_a_permerror_that_says_why(
        key, record: str, reason: str) -> None:
    """RFC 6376 6.1.2: a revoked key, a key of an unknown type or for other services, or
    one that does not parse is a permanent failure of the key; it was reported as a
    signature that does not verify (as if the message had been altered)."""
    private, public = key
    zone = {KEY_NAME: (record.format(public=public),)}
    symbols, header = authenticate(ZoneResolver(zone), sign(private))
    assert "DKIM_INVALID" in symbols, symbols
    assert "dkim=permerror" in header and reason in header, header


@pytest.mark.parametrize("flags", ["Y", "s:Y", " y "])
def test_dkim_key_testing_flag_is_read_whatever_its_case(key, flags: str) -> None:
    """RFC 6376 3.6.1's key-t-tag-flag = "y" is an ABNF string, case-insensitive
    (RFC 5234 2.3), and OpenDKIM compares the flags with strcasecmp: t=Y is testing."""
    private, public = key
    altered = sign(private).replace(b"Subject: Statement", b"Subject: Statement (copy)")
    zone = {KEY_NAME: (f"v=DKIM1; t={flags}; k=rsa; p={public}",)}
    symbols, header = authenticate(ZoneResolver(zone), altered)
    assert "DKIM_INVALID" not in symbols, symbols
    assert "dkim=neutral" in header and "testing" in header, header
    # A flag that is not y in any case is no testing mode.
    zone = {KEY_NAME: (f"v=DKIM1; t=s; k=rsa; p={public}",)}
    symbols, _ = authenticate(ZoneResolver(zone), altered)
    assert "DKIM_INVALID" in symbols, symbols


@pytest.mark.parametrize(("hashes", "allowed"), [
    ("sha1", False), ("", False), ("sha512", False),
    ("sha256", True), ("sha1:sha256", True), ("SHA256", True), ("sha1 : sha256", True),
])
def test_dkim_signature_with_a_hash_its_key_does_not_allow_is_a_permerror(
        key, hashes: str, allowed: bool) -> None:
    """RFC 6376 6.1.2: when the key record's h= does not include the hash of the
    signature's a=, the verifier MUST ignore the signature (PERMFAIL, inappropriate hash
    algorithm); the key's owner said no such signature is theirs."""
    private, public = key
    zone = {KEY_NAME: (f"v=DKIM1; k=rsa; h={hashes}; p={public}",),
            ("_dmarc.bank.test", "TXT"): ("v=DMARC1; p=reject",)}
    symbols, header = authenticate(ZoneResolver(zone), sign(private),
                                   mail_from="fwd@forwarder.test")
    if allowed:
        assert "DKIM_VALID" in symbols and "DMARC_PASS" in symbols, symbols
        return
    assert "DKIM_VALID" not in symbols and "DMARC_FAIL_REJECT" in symbols, symbols
    assert "dkim=permerror" in header and "sha256" in header, header


@pytest.mark.parametrize("mail_from", ["news@bank.test", "news@bank.test.", "news@BANK.test."])
@pytest.mark.parametrize("term", ["exists:%{i}._ip.%{o}", "exists:%{s}._s.test"])
def test_spf_sender_macros_read_the_domain_without_its_root_dot(mail_from: str,
                                                                term: str) -> None:
    """bank.test. is bank.test written absolute (RFC 1034 3.1): %{o} and %{s} of such a
    MAIL FROM must name the domain as %{d} does, or the sender's own policy fails its
    legitimate mail (an empty label is no name)."""
    zone = {("bank.test", "TXT"): (f"v=spf1 {term} -all",),
            ("192.0.2.1._ip.bank.test", "A"): ("127.0.0.2",),
            ("news@bank.test._s.test", "A"): ("127.0.0.2",)}
    symbols, _ = authenticate(ZoneResolver(zone), MESSAGE, mail_from=mail_from,
                              client_ip="192.0.2.1")
    assert "SPF_PASS" in symbols, symbols


P_MACRO_ZONE = {
    ("news.test", "TXT"): ("v=spf1 exists:%{p}._ok.news.test -all",),
    ("10.2.0.192.in-addr.arpa", "PTR"): ("mta.elsewhere.test", "out.news.test",
                                         "fake.news.test"),
    ("mta.elsewhere.test", "A"): ("192.0.2.10",),
    ("out.news.test", "A"): ("192.0.2.10",),
    ("fake.news.test", "A"): ("198.51.100.1",),          # does not name the client back
    ("out.news.test._ok.news.test", "A"): ("127.0.0.2",),
}


@pytest.mark.parametrize(("client_ip", "expected"), [
    ("192.0.2.10", "SPF_PASS"),      # validated names: mta.elsewhere.test, out.news.test
    ("192.0.2.11", "SPF_FAIL"),      # no PTR: %{p} is "unknown"
])
def test_spf_p_macro_is_the_validated_name_of_the_client(client_ip: str,
                                                         expected: str) -> None:
    """RFC 7208 7.3: %{p} is the client's validated domain name (its PTR names that
    resolve back to it), a subdomain of the domain checked preferred; "unknown" only when
    none is. It was always "unknown", so a record naming its senders by %{p} failed
    every one of its own messages."""
    symbols, _ = authenticate(ZoneResolver(P_MACRO_ZONE), MESSAGE, mail_from="b@news.test",
                              client_ip=client_ip)
    assert expected in symbols, symbols


def test_spf_client_names_are_looked_up_once_however_many_terms_ask() -> None:
    """RFC 7208 4.6.4: at most 10 PTR names looked up and checked for ptr and %{p}."""
    record = "v=spf1 " + " ".join(f"exists:%{{p}}.x{i}.news.test" for i in range(4)) \
        + " ptr:other.test ptr:news.test -all"
    resolver = ZoneResolver({**P_MACRO_ZONE, ("news.test", "TXT"): (record,)})
    authenticate(resolver, MESSAGE, mail_from="b@news.test", client_ip="192.0.2.10")
    asked = [query for query in resolver.asked if query[1] in ("PTR", "A")]
    assert ("10.2.0.192.in-addr.arpa", "PTR") in asked
    assert len(set(asked)) == len(asked), asked
