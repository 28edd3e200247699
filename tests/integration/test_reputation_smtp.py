"""Reputation and training through real SMTP: Internet mail from an MTA in its own
namespace, replies through the organisation's mail server (a relay) and the gateway's
outbound Postfix to an Internet MX, forwards to spam@, and the MTA reports."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.support.mailcorpus import message, unsure_message, write_corpus
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


@pytest.fixture
def gw(world, tmp_path):
    """A gateway protecting example.com, with the lan's mail server as a relay and a
    classifier trained on a small corpus (so mixed content lands in the Tag band)."""
    # one_way_interval = 0: each good message earns a credit (days compressed to seconds).
    gateway = organisation_gateway(world, tmp_path / "state",
                                   "[reputation]\none_way_interval = 0\n")
    gateway.cli("train", "--ham", str(write_corpus(tmp_path / "ham", False, 25)),
                "--spam", str(write_corpus(tmp_path / "spam", True, 25)))
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def test_reply_from_an_internal_user_turns_the_next_message_from_tag_into_accept(world, gw):
    first_subject = unique("proposal")
    answer = inbound(world, gw, "friend@remote.test", "alice@example.com",
                     unsure_message(first_subject, "friend@remote.test", "alice@example.com"))
    assert answer["code"] == 250, answer
    [first] = delivered(world.internal, "alice@example.com", first_subject)
    assert first["Subject"] == f"[SPAM?] {first_subject}"

    # Alice answers through the organisation's mail server; the gateway hands the reply
    # to its outbound Postfix, which delivers it to the correspondent's MX.
    reply = message(f"Re: {first_subject}", "Thanks, see you on Monday.",
                    sender="alice@example.com", recipient="friend@remote.test")
    answer = send_from(world.lan, world.lan_root_ip, gw.port, "alice@example.com",
                       ["friend@remote.test"], reply)
    assert answer["code"] == 250, answer
    assert delivered(world.internet, "friend@remote.test", f"Re: {first_subject}"), \
        world.outbound.log()[-2000:]

    second_subject = unique("proposal")
    inbound(world, gw, "friend@remote.test", "alice@example.com",
            unsure_message(second_subject, "friend@remote.test", "alice@example.com", seed=2))
    [second] = delivered(world.internal, "alice@example.com", second_subject)
    assert second["Subject"] == second_subject
    [entry] = gw.archive(subject=second_subject)
    assert entry["verdict"] == "accept"
    assert symbols(entry)["PEER"] < 0
    # An RCPT-stage finding names its recipient (the web UI shows it to that domain only).
    assert {s["name"]: s.get("recipient") for s in entry["symbols"]}["PEER"] \
        == "alice@example.com"
    # A stranger writing the same thing to Alice is still tagged.
    third_subject = unique("proposal")
    inbound(world, gw, "stranger@elsewhere.test", "alice@example.com",
            unsure_message(third_subject, "stranger@elsewhere.test", "alice@example.com", seed=3))
    assert gw.archive(subject=third_subject)[0]["verdict"] == "tag"
    # A colleague of the correspondent gets the small bonus for Alice's correspondent's
    # domain (counted by domain through outbound_pairs' index), never protection.
    fourth_subject = unique("proposal")
    inbound(world, gw, "boss@remote.test", "alice@example.com",
            unsure_message(fourth_subject, "boss@remote.test", "alice@example.com", seed=4))
    [entry] = gw.archive(subject=fourth_subject)
    assert symbols(entry).get("PEER_DOMAIN") == -2.0 and "PEER" not in symbols(entry)


def test_repeated_good_one_way_mail_loses_the_tag(world, gw):
    verdicts, bonuses, subject = [], [], ""
    for issue in range(8):
        subject = unique(f"newsletter {issue}")
        answer = inbound(world, gw, "news@letters.test", "bob@example.com",
                         unsure_message(subject, "news@letters.test", "bob@example.com",
                                        seed=10 + issue))
        assert answer["code"] == 250, answer
        [entry] = gw.archive(subject=subject)
        verdicts.append(entry["verdict"])
        bonuses.append(symbols(entry).get("ONE_WAY", 0.0))
    # Tagged at first; after a few good issues the bonus (growing with each) lifts the
    # tag, and it stays lifted.
    assert verdicts[:3] == ["tag"] * 3 and bonuses[:3] == [0.0] * 3, verdicts
    first_accept = verdicts.index("accept")
    assert verdicts[first_accept:] == ["accept"] * (8 - first_accept), verdicts
    assert bonuses[3] < 0 and bonuses[first_accept] <= bonuses[3]
    [newest] = delivered(world.internal, "bob@example.com", subject)
    assert not newest["Subject"].startswith("[SPAM?]")


def test_a_forward_to_spam_trains_and_raises_the_score_of_the_same_message(world, gw):
    subject = unique("offer")
    original = unsure_message(subject, "deals@remote.test", "bob@example.com", seed=5)
    inbound(world, gw, "deals@remote.test", "bob@example.com", original)
    [before] = gw.archive(subject=subject)

    forward = forward_as_attachment(original, "bob@example.com", "spam@gw.test")
    # Only the organisation trains: the same forward from the Internet is refused.
    refused = inbound(world, gw, "bob@example.com", "spam@gw.test", forward)
    assert refused["code"] == 550 and "organisation" in refused["text"]
    answer = send_from(world.lan, world.lan_root_ip, gw.port, "bob@example.com",
                       ["spam@gw.test"], forward)
    assert answer["code"] == 250, answer
    assert any("Trained spam: 250" in line for line in gw.decision_log())
    # Consumed by the gateway: delivered nowhere, archived nowhere.
    assert not [m for m in world.internal.messages("bob@example.com")
                if "Fwd: spam" in str(m["Subject"])]
    assert gw.archive(subject="Fwd: spam") == []

    inbound(world, gw, "deals@remote.test", "bob@example.com", original)
    after = gw.archive(subject=subject)[0]
    assert after["id"] != before["id"]
    assert after["score"] > before["score"]
    bayes_before = [v for k, v in symbols(before).items() if k.startswith("BAYES")]
    bayes_after = [v for k, v in symbols(after).items() if k.startswith("BAYES")]
    assert bayes_after[0] > bayes_before[0]

    # Bob changes his mind: ham@ moves the message back, and the score comes down again.
    answer = send_from(world.lan, world.lan_root_ip, gw.port, "bob@example.com",
                       ["ham@gw.test"], forward_as_attachment(original, "bob@example.com",
                                                              "ham@gw.test"))
    assert answer["code"] == 250, answer
    inbound(world, gw, "deals@remote.test", "bob@example.com", original)
    assert gw.archive(subject=subject)[0]["score"] < after["score"]
    # A forward with nothing in it is refused with a reason; nothing is learnt.
    empty = b"From: bob@example.com\r\nSubject: Fwd:\r\n\r\n\r\n"
    answer = send_from(world.lan, world.lan_root_ip, gw.port, "bob@example.com",
                       ["spam@gw.test"], empty)
    assert answer["code"] == 550 and "No forwarded message" in answer["text"]


def connect_from(gw, source_ip: str) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", gw.port, timeout=30, source_address=(source_ip, 0))


def test_reports_list_an_mta_only_after_the_thresholds(world, gw):
    spammer, legitimate = "127.0.0.2", "127.0.0.3"

    def guess() -> None:
        with connect_from(gw, spammer) as client:
            client.ehlo("spam.invalid")
            client.mail("x@spam.invalid")
            assert client.rcpt("nobody@example.com")[0] == 550

    def deliver() -> None:
        with connect_from(gw, legitimate) as client:
            client.sendmail("news@letters.test", ["alice@example.com"],
                            message("weekly project report", "the meeting agenda and "
                                    "the project schedule for the quarterly review",
                                    sender="news@letters.test"))

    def listed(report: str) -> list[str]:
        return [row["address"] for row in gw.cli_json("report", report)]

    for _ in range(49):
        guess()
    assert listed("top-spammers") == []
    guess()
    assert listed("top-spammers") == [spammer]
    assert spammer in gw.cli("report", "top-spammers").stdout

    for _ in range(50):
        deliver()
    assert listed("top-legitimate") == []          # "over 50 connections"
    deliver()
    assert listed("top-legitimate") == [legitimate]
    [row] = gw.cli_json("report", "top-legitimate")
    assert row["connections"] == 51 and row["accepted_share"] == 1.0
    assert listed("top-spammers") == [spammer]
    # The record feeds the score: the spammer's next message carries a penalty.
    with connect_from(gw, spammer) as client:
        client.sendmail("x@spam.invalid", ["alice@example.com"],
                        message(unique("hello"), "just text", sender="x@spam.invalid"))
    [entry] = gw.archive(client_ip=spammer)
    assert symbols(entry)["MTA_BAD_IP"] > 0


def test_mail_from_a_white_listed_sender_earns_an_mta_no_reputation(world, gw):
    """Whoever forges a white-listed sender gets the message in, but its MTA must not
    collect accepted connections by it and then carry MTA_GOOD_IP to other mail."""
    forger = "127.0.0.5"
    gw.cli("list", "white", "add", "boss@partner.test")
    time.sleep(1.5)                                  # the gateway's directory snapshot
    for _ in range(60):
        with connect_from(gw, forger) as client:
            client.sendmail("boss@partner.test", ["alice@example.com"],
                            message(unique("hello"), "just text", sender="boss@partner.test"))
    assert gw.cli_json("report", "top-legitimate") == []
    with connect_from(gw, forger) as client:
        client.sendmail("x@spam.invalid", ["alice@example.com"],
                        message(unique("now as itself"), "just text", sender="x@spam.invalid"))
    entry = next(e for e in gw.archive(client_ip=forger) if e["mail_from"] == "x@spam.invalid")
    assert not {"MTA_GOOD_IP", "MTA_GOOD_NET"} & set(symbols(entry))


def test_mail_for_a_domain_without_filtering_earns_an_mta_no_reputation(world, gw):
    """A spammer's MTA that first mails a domain without filtering (accepted unjudged)
    must not arrive at the filtered ones with the bonus of a legitimate MTA."""
    launderer = "127.0.0.4"
    gw.cli("domain", "add", "example.net", "--mail-host", f"{world.lan2_ip}:25",
           "--filtering", "off")
    time.sleep(1.5)                                  # the gateway's directory snapshot
    for _ in range(60):
        with connect_from(gw, launderer) as client:
            client.sendmail("x@spam.invalid", ["dave@example.net"],
                            message("hello", "just text", sender="x@spam.invalid"))
    assert len(gw.archive(client_ip=launderer)) == 60
    assert gw.cli_json("report", "top-legitimate") == []
    with connect_from(gw, launderer) as client:
        client.sendmail("x@spam.invalid", ["alice@example.com"],
                        message(unique("now the filtered one"), "just text",
                                sender="x@spam.invalid"))
    entry = next(e for e in gw.archive(client_ip=launderer) if "alice@example.com"
                 in e["recipients"])
    assert not {"MTA_GOOD_IP", "MTA_GOOD_NET"} & set(symbols(entry))
