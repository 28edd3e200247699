"""Forwards to the training addresses come from our users, but what they forward was
written by strangers: finding the original must cost time linear in the forward."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from portcullis.bayes.database import TokenDatabase
from portcullis.bayes.evaluate import temporary_config
from portcullis.bayes.forwarded import extract_original, extract_originals
from portcullis.bayes.mailboxes import HamMailbox, SpamMailbox
from portcullis.checks.base import Context
from portcullis.directory.domains import add_domain
from portcullis.directory.settings import set_settings
from portcullis.directory.snapshot import load_snapshot
from portcullis.mime import parse_message
from portcullis.reputation import oneway
from portcullis.services import Services
from portcullis.smtp.rewrite import rewrite
from tests.support.delivery import as_delivered, auto_learn

pytestmark = pytest.mark.reputation


def forward(body: str) -> bytes:
    return ("From: bob@example.com\r\nSubject: Fwd: junk\r\n\r\n" + body).encode()


def report(services: Services, spam: bool, *originals: bytes,
           sender: str = "bob@example.com") -> None:
    """``sender`` forwards ``originals`` as attachments to spam@ (or ham@)."""
    mailbox = SpamMailbox if spam else HamMailbox
    ctx = Context(client_ip="192.0.2.25", mail_from=sender,
                  recipients=["spam@gw.test" if spam else "ham@gw.test"],
                  content=attached(*originals))
    assert asyncio.run(mailbox(services).consume(ctx)).code == 250


def test_a_long_line_of_dashes_after_forwarded_by_costs_linear_time():
    # A spam's own text, forwarded inline: each split of the dash run was tried (the old
    # pattern took 10 s for this line, and grew with its square).
    hostile = "Please learn this.\r\n\r\n-- Forwarded by " + "-" * 30000 + "x\r\n"
    started = time.monotonic()
    original = extract_original(parse_message(forward(hostile)))
    assert time.monotonic() - started < 1.0
    assert original is not None and b"Forwarded by" in original    # no marker: whole text


def test_a_forwarded_by_marker_is_still_recognised():
    text = ("Spam again.\r\n\r\n----- Forwarded by Bob Smith/ACME on 01/02/2026 ------\r\n"
            "From: prizes@lottery.test\r\nSubject: You won\r\n\r\nclaim your prize now\r\n")
    original = parse_message(extract_original(parse_message(forward(text))))
    assert original["Subject"] == "You won" and original["From"] == "prizes@lottery.test"
    assert "claim your prize" in original.get_payload()


def spam(index: int) -> bytes:
    return (f"From: promo{index}@spam.test\r\nTo: bob@example.com\r\nSubject: offer {index}\r\n"
            f"\r\nviagra casino lottery winner prize jackpot number{index} cheap pills\r\n"
            ).encode()


def attached(*parts: bytes, encoding: str = "") -> bytes:
    cte = f"Content-Transfer-Encoding: {encoding}\r\n" if encoding else ""
    body = b"".join(b"--XX\r\nContent-Type: message/rfc822\r\n" + cte.encode() + b"\r\n"
                    + (base64.encodebytes(p).replace(b"\n", b"\r\n") if encoding else p)
                    for p in parts)
    return (b"From: bob@example.com\r\nTo: spam@gw.test\r\nSubject: FW: junk\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nplease learn these\r\n" + body
            + b"--XX--\r\n")


def test_an_original_attached_base64_encoded_is_decoded():
    # Some clients send the attached message base64 encoded (RFC 2046 forbids it); its
    # raw payload is the encoded text, which was refused as "not a mail message".
    [original] = extract_originals(parse_message(attached(spam(1), encoding="base64")))
    assert parse_message(original)["Subject"] == "offer 1"


def test_every_attached_original_is_taken_but_not_those_inside_them():
    decoy = (b"From: billing@partner.test\r\nSubject: invoice\r\n\r\nthe quarterly budget"
             b" meeting agenda\r\n")
    carrier = (b"From: promo9@spam.test\r\nSubject: offer 9\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\n"
               b"Content-Type: text/plain\r\n\r\ncheap pills\r\n--YY\r\n"
               b"Content-Type: message/rfc822\r\n\r\n" + decoy + b"--YY--\r\n")
    originals = extract_originals(parse_message(attached(spam(1), spam(2), carrier)))
    assert [parse_message(o)["Subject"] for o in originals] == ["offer 1", "offer 2",
                                                               "offer 9"]


def test_the_spam_mailbox_learns_every_forwarded_message(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    mailbox = SpamMailbox(services)
    ctx = Context(client_ip="192.0.2.25", mail_from="bob@example.com",
                  recipients=["spam@gw.test"], content=attached(spam(1), spam(2), spam(3)))
    reply = asyncio.run(mailbox.consume(ctx))
    assert reply.code == 250, reply
    assert TokenDatabase(services.store).totals()["spam"] == 3


def test_a_reported_spam_erases_only_the_reporters_one_way_relationship(tmp_path):
    # The spam's From (and Return-Path) are the spammer's to choose: claiming to be the
    # bank's newsletter, one report erased the bank's relationship with every user.
    services = Services.open(temporary_config(tmp_path))
    for user in ("alice@example.com", "bob@example.com"):
        oneway.record_good(services.store, "news@bank.test", user, "192.0.2.0/24",
                           time.time(), 0)
    forged = (b"Return-Path: <news@bank.test>\r\nFrom: news@bank.test\r\nSubject: win\r\n\r\n"
              b"viagra casino lottery winner prize jackpot cheap pills\r\n")
    report(services, True, forged, sender="Bob@example.com")
    assert oneway.lookup(services.store, "news@bank.test", "bob@example.com",
                         "192.0.2.0/24") is None
    assert oneway.lookup(services.store, "news@bank.test", "alice@example.com",
                         "192.0.2.0/24") is not None


def test_an_attached_message_nested_too_deeply_to_write_back_is_refused_for_good(tmp_path):
    # The email package parses 300 nested multiparts but cannot write them back: the
    # RecursionError became "451 Internal error", and the user's server retried for days.
    inner = b"Subject: deep\r\n\r\nbottom text here\r\n"
    for i in range(300):
        inner = (f"Subject: l{i}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                 f"boundary=b{i}\r\n\r\n--b{i}\r\n").encode() + inner + f"\r\n--b{i}--\r\n".encode()
    ctx = Context(client_ip="192.0.2.25", mail_from="bob@example.com",
                  recipients=["spam@gw.test"], content=attached(inner))
    reply = asyncio.run(SpamMailbox(Services.open(temporary_config(tmp_path))).consume(ctx))
    assert reply.code == 550 and "nested too deeply" in reply.text


def test_a_domains_mail_host_reports_for_that_domains_users_only(tmp_path):
    # Each protected domain's mail host may be its tenant's own server (its domain
    # administrator sets it): it must not report spam in another domain's users' names,
    # which also erases those users' one-way relationships.
    services = Services.open(temporary_config(tmp_path))
    add_domain(services.store, "example.com", "192.0.2.25:25")
    add_domain(services.store, "example.net", "192.0.2.26:25")
    snapshot = load_snapshot(services.store, services.config)
    mailbox = SpamMailbox(services)

    def answer(client: str, sender: str) -> int:
        return mailbox.accept(Context(client_ip=client, mail_from=sender,
                                      recipient=mailbox.address, snapshot=snapshot)).code

    assert answer("192.0.2.25", "bob@example.com") == 250
    assert answer("192.0.2.26", "dave@example.net") == 250
    assert answer("192.0.2.26", "bob@example.com") == 550
    assert answer("198.51.100.1", "bob@example.com") == 550


def test_a_reported_message_the_auto_learner_learnt_on_arrival_is_moved_not_learnt_twice(
        tmp_path):
    # Auto-learning learnt the message as it arrived; the copy a user forwards from their
    # mailbox carries what its delivery added above it (the gateway's Received, then the
    # internal host's Received and Return-Path): a different digest, so the person's
    # spam@ report was learnt beside the auto-learnt ham instead of moving it, and the
    # message counted in both classes.
    services = Services.open(temporary_config(tmp_path))
    arrival = (b"Received: from out.shop.test (out.shop.test [198.51.100.7]) by mx.shop.test\r\n"
               b"From: Shop <news@shop.test>\r\nTo: bob@example.com\r\n"
               b"Subject: Your order has shipped\r\nMessage-ID: <1@shop.test>\r\n\r\n"
               b"Your parcel with the blue kettle is on its way today.\r\n")
    auto_learn(services.store, arrival, spam=False)
    database = TokenDatabase(services.store)
    delivered = as_delivered(arrival, services.config.smtp.hostname)
    in_mailbox = (b"Return-Path: <news@shop.test>\r\nDelivered-To: bob@example.com\r\n"
                  b"Received: from gw.example.com (gw.example.com [10.0.0.5]) by"
                  b" mail.example.com\r\n" + delivered)
    report(services, True, in_mailbox)
    totals = database.totals()
    assert (totals["spam"], totals["ham"], totals["auto_ham"]) == (1, 0, 0)


@pytest.mark.parametrize("phrase", ["[SPAM?]", "[Spam? ¿]"])
def test_a_tagged_message_reported_as_ham_is_the_message_that_arrived(tmp_path, phrase):
    # The gateway's tag is no word of the message: with it the ham@ report was another
    # message, so the same message rejected later was auto-learnt as spam beside Bob's
    # ham (auto-learning never moves a person's), and the tag's words were learnt as ham.
    services = Services.open(temporary_config(tmp_path))
    set_settings(services.store, services.config, {"tag_phrase": phrase})
    # A Subject as text, one encoded, and none (the gateway adds one with the tag).
    for subject in (b"Subject: Minutes of the budget meeting\r\n",
                    b"Subject: =?utf-8?q?Caf=C3=A9_minutes?=\r\n", b""):
        arrival = (b"From: Carol <carol@partner.test>\r\nTo: bob@example.com\r\n" + subject
                   + b"\r\nThe minutes of the quarterly budget meeting.\r\n")
        delivered = as_delivered(arrival, services.config.smtp.hostname, tag_phrase=phrase)
        report(services, False, delivered)
        assert auto_learn(services.store, arrival, spam=True) == (0, 1)


def test_a_released_message_reported_as_ham_moves_the_spam_auto_learning_learnt(tmp_path):
    # The false positive the FAQ's Release is for: rejected (and auto-learnt as spam on
    # its own evidence), released by an administrator, then forwarded to ham@ by its
    # recipient.  A release adds no Received field, only X-Portcullis-Released: the
    # report, under it and the internal host's fields, was another message, learnt as
    # ham beside the auto-learnt spam.
    services = Services.open(temporary_config(tmp_path))
    arrival = (b"From: Dave <dave@supplier.test>\r\nTo: bob@example.com\r\n"
               b"Subject: Invoice 4711 attached\r\n\r\n"
               b"Please find the invoice for the kettles attached, due in 30 days.\r\n")
    auto_learn(services.store, arrival, spam=True)
    database = TokenDatabase(services.store)
    released = rewrite(arrival, prepend=[
        b"X-Portcullis-Released: 20261201T000000-ee by admin; Tue, 01 Dec 2026 10:00:00"
        b" +0000"], tag_phrase=None, authserv_id=services.config.smtp.hostname)
    in_mailbox = (b"Return-Path: <dave@supplier.test>\r\nReceived: from gw.example.com"
                  b" (gw.example.com [10.0.0.5]) by mail.example.com\r\n" + released)
    report(services, False, in_mailbox)
    totals = database.totals()
    assert (totals["spam"], totals["ham"], totals["auto_spam"]) == (0, 1, 0)
