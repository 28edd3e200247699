"""HELO, From, Message-ID and Date heuristics (modest scores, no verdicts)."""

from __future__ import annotations

import pytest

from portcullis.checks.identity import date_symbols, from_symbols, helo_symbols, message_id_symbols
from portcullis.mime import parse_message

pytestmark = pytest.mark.defenses

OURS = {"gw.corp.test", "corp.test"}


@pytest.mark.parametrize(("helo", "expected"), [
    ("mail.example.net", set()),
    ("[192.0.2.10]", set()),
    ("[192.0.2.99]", {"HELO_IP_MISMATCH"}),
    ("192.0.2.10", {"HELO_BARE_IP"}),
    ("192.0.2.99", {"HELO_BARE_IP", "HELO_IP_MISMATCH"}),
    ("corp.test", {"HELO_IS_OURS"}),
    ("GW.corp.test.", {"HELO_IS_OURS"}),
    ("localhost", {"HELO_NOT_FQDN"}),
    ("bad_name!.example", {"HELO_INVALID"}),
    ("[nonsense]", {"HELO_INVALID"}),
])
def test_helo_oddities(helo: str, expected: set[str]) -> None:
    assert {s.name for s in helo_symbols(helo, "192.0.2.10", OURS)} == expected


def test_from_display_name_showing_another_address() -> None:
    msg = parse_message(b'From: "service@bank.example" <x@elsewhere.example>\n\nhi\n')
    names = {s.name for s in from_symbols(msg, "x@elsewhere.example")}
    assert names == {"FROM_NAME_SPOOF"}


@pytest.mark.parametrize("from_field", [
    # Google Groups and Mailman rewrite the From of a poster without a name this way.
    b"From: \"'alice@example.org' via Friends\" <friends@googlegroups.com>",
    b"From: \"alice@example.org via Friends\" <friends@lists.example.net>",
    # Google Drive's share notifications.
    b"From: \"alice@example.org (via Google Drive)\" <drive-shares-dm-noreply@google.com>",
    # Another mailbox of the sender's own organisation.
    b"From: \"support@shop.example\" <noreply@mail.shop.example>",
])
def test_from_display_name_of_a_relayed_author_or_the_same_organisation_is_no_spoof(
        from_field: bytes) -> None:
    msg = parse_message(from_field + b"\n\nhi\n")
    envelope = msg["From"].rpartition("<")[2].rstrip(">")
    assert "FROM_NAME_SPOOF" not in {s.name for s in from_symbols(msg, envelope)}


def test_from_and_envelope_of_different_organisations_is_a_weak_signal() -> None:
    msg = parse_message(b"From: news@shop.example\n\nhi\n")
    found = from_symbols(msg, "bounce@mailer.example")
    assert [(s.name, s.score) for s in found] == [("FROM_ENVELOPE_MISMATCH", 0.3)]
    same_org = parse_message(b"From: news@shop.example\n\nhi\n")
    assert from_symbols(same_org, "bounce@mail.shop.example") == []


def test_several_from_headers() -> None:
    msg = parse_message(b"From: a@x.example\nFrom: b@y.example\n\nhi\n")
    assert "FROM_MULTIPLE" in {s.name for s in from_symbols(msg, "a@x.example")}


def test_malformed_message_id() -> None:
    assert message_id_symbols(parse_message(b"Message-ID: 12345\n\nhi\n"))
    assert not message_id_symbols(parse_message(b"Message-ID: <1@x.example>\n\nhi\n"))


def test_dates_are_judged_against_when_the_message_was_received() -> None:
    old = parse_message(b"Received: from a by b; Mon, 1 Jan 2007 10:00:00 +0000\n"
                        b"Date: Mon, 1 Jan 2007 09:59:00 +0000\n\nhi\n")
    assert date_symbols(old) == []          # an old corpus is not "in the past"
    future = parse_message(b"Received: from a by b; Mon, 1 Jan 2007 10:00:00 +0000\n"
                           b"Date: Fri, 5 Jan 2007 10:00:00 +0000\n\nhi\n")
    assert [s.name for s in date_symbols(future)] == ["DATE_IN_FUTURE"]
    garbage = parse_message(b"Date: yesterday-ish\n\nhi\n")
    assert [s.name for s in date_symbols(garbage)] == ["DATE_INVALID"]


def test_helo_naming_another_protected_domain_is_no_claim_to_be_us(tmp_path) -> None:
    # An ISP protects both: a customer's server greeting as its own domain while writing
    # to another customer scored as a spammer posing as the recipient's domain.
    import asyncio

    from portcullis.bayes.evaluate import temporary_config
    from portcullis.checks.base import Context
    from portcullis.checks.identity import Identity
    from portcullis.directory.domains import add_domain
    from portcullis.directory.snapshot import load_snapshot
    from portcullis.services import Services

    services = Services.open(temporary_config(tmp_path))
    for domain in ("customer-a.example", "customer-b.example"):
        add_domain(services.store, domain, "192.0.2.25:25")
    snapshot = load_snapshot(services.store, services.config)

    def found(helo: str) -> set[str]:
        ctx = Context(client_ip="198.51.100.7", helo=helo, mail_from="boss@customer-a.example",
                      recipients=["ann@customer-b.example"], snapshot=snapshot,
                      content=b"From: boss@customer-a.example\r\nSubject: lunch\r\n\r\nhi\r\n")
        return {s.name for s in asyncio.run(Identity(services).check(ctx))}

    try:
        assert "HELO_IS_OURS" not in found("customer-a.example")
        assert "HELO_IS_OURS" in found("customer-b.example")      # the recipient's domain
        assert "HELO_IS_OURS" in found(services.config.smtp.hostname)
    finally:
        services.close()
