"""What outbound mail teaches the peer tables: a person writing, not a program answering."""

from __future__ import annotations

import pytest

from portcullis.bayes.evaluate import temporary_config
from portcullis.checks.base import Context
from portcullis.config import HostPort
from portcullis.directory.domains import add_domain
from portcullis.directory.snapshot import load_snapshot
from portcullis.observers import MessageEvent, OutboundPairs
from portcullis.policy import Thresholds, decide
from portcullis.reputation import peers
from portcullis.services import Services
from portcullis.smtp.recipients import Direction, Route

pytestmark = pytest.mark.reputation
OUTBOUND = Route(Direction.OUTBOUND, HostPort("127.0.0.1", 10025), None)


@pytest.fixture
def services(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    add_domain(services.store, "example.com", "192.0.2.25:25")
    return services


def send_out(services: Services, headers: str, mail_from: str = "support@example.com") -> None:
    content = (f"From: support@example.com\r\nTo: stranger@evil.test\r\n{headers}"
               "Subject: Re: your request\r\n\r\nWe received your request.\r\n").encode()
    ctx = Context(client_ip="192.0.2.25", mail_from=mail_from,
                  recipients=["stranger@evil.test"], route=OUTBOUND, content=content,
                  snapshot=load_snapshot(services.store, services.config))
    OutboundPairs(services).message(MessageEvent(ctx, decide([], Thresholds()), True, "id"))


@pytest.mark.parametrize("headers", [
    "Auto-Submitted: auto-replied\r\n",                  # RFC 3834 responders, tickets
    "Auto-Submitted: Auto-Generated; owner-email=x\r\n",  # Exchange's out-of-office
    "Precedence: bulk\r\n",                               # vacation(1)
    "X-Autoreply: yes\r\n",
    "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
    "report-type=disposition-notification; boundary=b\r\n",   # a read receipt
])
def test_an_auto_reply_to_a_stranger_makes_no_peer(services, headers):
    # Each message that reaches an auto-answering address would otherwise add an
    # exchange: three and the stranger's spam is protected, never rejected.
    for _ in range(3):
        send_out(services, headers)
    assert peers.lookup(services.store, "support@example.com", "stranger@evil.test") \
        == peers.Peer(0, 0, 0)


def test_a_person_writing_makes_a_peer(services):
    send_out(services, "Auto-Submitted: no\r\n")
    send_out(services, "")
    assert peers.lookup(services.store, "support@example.com",
                        "stranger@evil.test").outbound == 2


@pytest.mark.parametrize("mail_from", [
    "support@example.com.",            # the domain written absolute (RFC 1034 3.1)
    "Support@EXAMPLE.com.",
    "prvs=0123456789=support@example.com",   # BATV added by the internal server
])
def test_our_user_written_in_another_form_makes_the_same_peer(services, mail_from):
    """The pair is stored under the sender as relationships look it up (the inbound
    RCPT, in address_key's form), so the correspondent's reply finds it."""
    send_out(services, "", mail_from=mail_from)
    assert peers.lookup(services.store, "support@example.com",
                        "stranger@evil.test").outbound == 1
