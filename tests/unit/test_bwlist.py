"""The administrator's black and white lists as the checks apply them (a real store)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from portcullis.bayes.evaluate import temporary_config
from portcullis.checks.base import Context
from portcullis.checks.bwlist import BlackWhiteList, EnvelopeWhiteList
from portcullis.config import DnsConfig
from portcullis.directory import bwlists
from portcullis.directory.snapshot import load_snapshot
from portcullis.policy import Thresholds, Verdict, decide
from portcullis.services import Services
from tests.support.dns import Dnsmasq

pytestmark = pytest.mark.defenses


@pytest.fixture
def services(tmp_path):
    # The senders' DNS, on loopback: a white-listed sender's SPF record is asked for.
    zone = Dnsmasq(tmp_path / "dns", ["newsletter.example", "nospf.example", "pushysender.com"])
    zone.txt("newsletter.example", "v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all")
    zone.start()
    services = Services.open(replace(temporary_config(tmp_path), dns=DnsConfig(
        nameservers=("127.0.0.1",), port=zone.port, timeout=2.0)))
    bwlists.add_entry(services.store, "black", "203.0.113.0/24", note="banished host")
    bwlists.add_entry(services.store, "white", "newsletter.example")
    bwlists.add_entry(services.store, "white", "198.51.100.25")
    bwlists.add_entry(services.store, "black", "pushysender.com")
    yield services
    services.close()
    zone.stop()


def verdict(services: Services, client_ip: str, mail_from: str) -> tuple[Verdict, list[str]]:
    """The verdict the lists alone give, and the symbols found (at DATA, then at RCPT)."""
    ctx = Context(client_ip=client_ip, mail_from=mail_from,
                  content=f"From: <{mail_from}>\r\nSubject: hi\r\n\r\nhello\r\n".encode(),
                  snapshot=load_snapshot(services.store, services.config))
    symbols = asyncio.run(BlackWhiteList(services).check(ctx))
    at_rcpt = asyncio.run(EnvelopeWhiteList(services).check(ctx))
    return decide(symbols, Thresholds()).verdict, [s.name for s in [*symbols, *at_rcpt]]


def test_a_black_listed_host_is_refused_whatever_white_listed_sender_it_writes(services):
    # MAIL FROM is the client's to write: a banished host wrote a white-listed sender and
    # was accepted past every check, the black list included.
    assert verdict(services, "203.0.113.9", "news@newsletter.example") == \
        (Verdict.REJECT, ["WHITELIST_NOT_HONOURED", "BLACKLIST"])
    assert verdict(services, "192.0.2.7", "news@newsletter.example") == \
        (Verdict.ACCEPT, ["WHITELIST", "WHITELIST_ENVELOPE"])   # from its own servers


def test_a_white_listed_host_is_accepted_whatever_sender_it_writes(services):
    # The client's address cannot be forged in a line: the white-listed server wins.
    assert verdict(services, "198.51.100.25", "offers@pushysender.com") == \
        (Verdict.ACCEPT, ["WHITELIST", "BLACKLIST", "WHITELIST_ENVELOPE"])
    assert verdict(services, "192.0.2.7", "offers@pushysender.com") == \
        (Verdict.REJECT, ["BLACKLIST"])


def test_a_white_listed_sender_its_own_spf_record_refuses_is_not_trusted(services):
    # news@newsletter.example is white-listed for the newsletter; anyone could write it,
    # and was let past every check.  A client the domain's SPF record refuses (fail) is
    # not the newsletter; one it authorises is, and so is any client of a white-listed
    # sender without SPF (the FAQ's poorly configured newsletter).
    assert verdict(services, "192.0.2.7", "news@newsletter.example")[1] == \
        ["WHITELIST", "WHITELIST_ENVELOPE"]
    assert verdict(services, "198.51.100.66", "news@newsletter.example")[1] == \
        ["WHITELIST_NOT_HONOURED"]
    bwlists.add_entry(services.store, "white", "nospf.example")
    assert verdict(services, "198.51.100.66", "news@nospf.example")[1] == \
        ["WHITELIST", "WHITELIST_ENVELOPE"]


def test_a_white_listed_sender_passed_over_is_said_so_with_what_to_do(services):
    # The administrator who white-listed the newsletter's domain must be able to tell why
    # its mail is judged after all.
    ctx = Context(client_ip="198.51.100.66", mail_from="news@newsletter.example",
                  content=b"From: <news@newsletter.example>\r\n\r\nhello\r\n",
                  snapshot=load_snapshot(services.store, services.config))
    [note] = asyncio.run(BlackWhiteList(services).check(ctx))
    assert (note.score, note.flag) == (0.0, None)
    assert note.reason == ("White list: sender news@newsletter.example (newsletter.example) is"
                           " not honoured from 198.51.100.66, which its SPF record refuses;"
                           " white-list the sending server's address instead")


def test_a_listed_senders_subaddresses_are_listed_too(services):
    # A listed address did not match its own tagged form (alerts+bounce-77@, the VERP
    # form a newsletter's bounces take; boss+x@, one character away from the black list),
    # where Postfix's access maps look user@domain up after user+ext@domain.
    bwlists.add_entry(services.store, "white", "alerts@nospf.example")
    bwlists.add_entry(services.store, "black", "boss@nospf.example")
    assert verdict(services, "192.0.2.99", "alerts+bounce-77@nospf.example") == \
        (Verdict.ACCEPT, ["WHITELIST", "WHITELIST_ENVELOPE"])
    assert verdict(services, "192.0.2.99", "Boss+X@nospf.example")[1] == ["BLACKLIST"]
    assert verdict(services, "192.0.2.99", "bossy@nospf.example")[1] == []
