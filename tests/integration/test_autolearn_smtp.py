"""Auto-learning through real SMTP: what the gateway learns from its own verdicts next to
what users teach it through ham@, and what reputation may not teach it."""

from __future__ import annotations

import time

import pytest

from portcullis.bayes.engine import prepare
from portcullis.store import open_store
from tests.support.gateway import Gateway
from tests.support.mailcorpus import message
from tests.support.mailflow import (
    delivered,
    forward_as_attachment,
    inbound,
    organisation_gateway,
    send_from,
    symbols,
    unique,
)

pytestmark = pytest.mark.reputation

# Header oddities worth 3.5 points whatever the text says (FROM_NAME_SPOOF,
# DATE_IN_FUTURE, MISSING_MID): content evidence with no Bayes and no reputation in it.
ODD_HEADERS = ('From: "billing@bank.test" <{sender}>\r\nTo: {recipient}\r\n'
               "Subject: {subject}\r\nDate: Fri, 01 Jan 2100 10:00:00 +0000\r\n\r\n")


def odd(subject: str, body: str, sender: str, recipient: str) -> bytes:
    return (ODD_HEADERS.format(sender=sender, recipient=recipient, subject=subject)
            + body + "\r\n").encode()


@pytest.fixture
def gw(world, tmp_path):
    """A gateway for example.com with no trained classifier (so no Bayes symbol), tag at 2
    and reject at 3 so header oddities alone reject; auto-learning takes a score reject
    from 3 and an accept below 2 (every message here also has HELO_IP_MISMATCH, 1.5: the
    sending script greets with [127.0.0.1])."""
    gateway = organisation_gateway(world, tmp_path / "state", "[bayes]\nautolearn_spam_score"
                                   " = 3.0\nautolearn_ham_score = 2.0\n")
    gateway.cli("settings", "set", "tag_threshold", "2", "reject_threshold", "3")
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def learnt(gw: Gateway, content: bytes, timeout: float = 0.0) -> tuple[str, str] | None:
    """(class, source) the gateway's store holds for a message, waiting up to ``timeout``
    for it to appear (auto-learning runs in a thread of the gateway)."""
    store = open_store(gw.state_dir)
    digest = prepare(content, False).learnt.digest
    deadline = time.monotonic() + timeout
    while True:
        row = store.query_one("SELECT class, source FROM bayes_learned WHERE digest = ?",
                              (digest,))
        if row is not None or time.monotonic() >= deadline:
            return (row["class"], row["source"]) if row else None
        time.sleep(0.2)


def train_ham(world, gw, original: bytes) -> dict:
    """Bob forwards a message to ham@ through the organisation's mail server."""
    return send_from(world.lan, world.lan_root_ip, gw.port, "bob@example.com",
                     ["ham@gw.test"], forward_as_attachment(original, "bob@example.com",
                                                            "ham@gw.test"))


def test_a_users_ham_is_never_moved_to_spam_by_auto_learning(world, gw):
    original = odd(unique("your invoice"), "the invoice for the quarterly support contract",
                   "billing@remote.test", "bob@example.com")
    # The gateway rejects it on its header oddities and learns it as spam by itself.
    answer = inbound(world, gw, "billing@remote.test", "bob@example.com", original)
    assert answer["code"] == 550, answer
    assert learnt(gw, original, timeout=20) == ("spam", "auto")

    # Bob knows better: ham@ moves what the machine learnt.
    answer = train_ham(world, gw, original)
    assert answer["code"] == 250, answer
    assert learnt(gw, original) == ("ham", "mailbox")

    # The same message comes again and is rejected again; a spam run right behind it is
    # learnt (the learner works in order), but Bob's judgement stands.
    assert inbound(world, gw, "billing@remote.test", "bob@example.com", original)["code"] \
        == 550
    spam = odd(unique("prize"), "claim your lottery prize now", "promo@remote.test",
               "bob@example.com")
    assert inbound(world, gw, "promo@remote.test", "bob@example.com", spam)["code"] == 550
    assert learnt(gw, spam, timeout=20) == ("spam", "auto")
    assert learnt(gw, original) == ("ham", "mailbox")


def test_a_peers_spammy_mail_is_not_learnt_as_ham_but_its_clean_mail_is(world, gw):
    # Alice writes to friend@remote.test: friend becomes her peer (PEER, -6).
    reply = message(unique("Re: lunch"), "Thanks, see you on Monday.",
                    sender="alice@example.com", recipient="friend@remote.test")
    answer = send_from(world.lan, world.lan_root_ip, gw.port, "alice@example.com",
                       ["friend@remote.test"], reply)
    assert answer["code"] == 250, answer
    # Header oddities (3.5, and the HELO's 1.5) below what the peer bonus takes off:
    # accepted and delivered, but only the relationship made it look like ham.
    subject = unique("cheap pills")
    spammy = odd(subject, "cheap pills casino jackpot, claim your prize",
                 "friend@remote.test", "alice@example.com")
    assert inbound(world, gw, "friend@remote.test", "alice@example.com", spammy)["code"] \
        == 250
    [entry] = gw.archive(subject=subject)
    assert entry["verdict"] == "accept" and symbols(entry)["PEER"] < 0
    assert delivered(world.internal, "alice@example.com", subject)
    # The peer's clean mail right behind it is learnt as ham (the learner works in order).
    clean = message(unique("agenda"), "the agenda for the project review meeting",
                    sender="friend@remote.test", recipient="alice@example.com")
    assert inbound(world, gw, "friend@remote.test", "alice@example.com", clean)["code"] \
        == 250
    assert learnt(gw, clean, timeout=20) == ("ham", "auto")
    assert learnt(gw, spammy) is None
