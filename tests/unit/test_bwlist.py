"""The administrator's black and white lists as the checks apply them (a real store)."""

from __future__ import annotations

import asyncio

import pytest

from portcullis.bayes.evaluate import temporary_config
from portcullis.checks.base import Context
from portcullis.checks.bwlist import BlackWhiteList, EnvelopeWhiteList
from portcullis.directory import bwlists
from portcullis.directory.snapshot import load_snapshot
from portcullis.policy import Thresholds, Verdict, decide
from portcullis.services import Services

pytestmark = pytest.mark.defenses


@pytest.fixture
def services(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    bwlists.add_entry(services.store, "black", "203.0.113.0/24", note="banished host")
    bwlists.add_entry(services.store, "white", "newsletter.example")
    bwlists.add_entry(services.store, "white", "198.51.100.25")
    bwlists.add_entry(services.store, "black", "pushysender.com")
    yield services
    services.close()


def verdict(services: Services, client_ip: str, mail_from: str) -> tuple[Verdict, list[str]]:
    """The verdict the lists alone give, and what the RCPT-stage white list found."""
    ctx = Context(client_ip=client_ip, mail_from=mail_from,
                  content=f"From: <{mail_from}>\r\nSubject: hi\r\n\r\nhello\r\n".encode(),
                  snapshot=load_snapshot(services.store, services.config))
    symbols = asyncio.run(BlackWhiteList(services).check(ctx))
    at_rcpt = asyncio.run(EnvelopeWhiteList(services).check(ctx))
    return decide(symbols, Thresholds()).verdict, [s.name for s in at_rcpt]


def test_a_black_listed_host_is_refused_whatever_white_listed_sender_it_writes(services):
    # MAIL FROM is the client's to write: a banished host wrote a white-listed sender and
    # was accepted past every check, the black list included.
    assert verdict(services, "203.0.113.9", "news@newsletter.example") == (Verdict.REJECT, [])
    assert verdict(services, "192.0.2.7", "news@newsletter.example") == \
        (Verdict.ACCEPT, ["WHITELIST_ENVELOPE"])            # from any other host: trusted


def test_a_white_listed_host_is_accepted_whatever_sender_it_writes(services):
    # The client's address cannot be forged in a line: the white-listed server wins.
    assert verdict(services, "198.51.100.25", "offers@pushysender.com") == \
        (Verdict.ACCEPT, ["WHITELIST_ENVELOPE"])
    assert verdict(services, "192.0.2.7", "offers@pushysender.com") == (Verdict.REJECT, [])
