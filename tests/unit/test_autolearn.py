"""Auto-learning takes only confident verdicts, judged without Bayes' own opinion, and
keeps the classes balanced."""

from __future__ import annotations

import time

import pytest

from portcullis.bayes.autolearn import AutoLearner, autolearn_class
from portcullis.bayes.database import AUTO, Taught, TokenDatabase, digest
from portcullis.bayes.engine import Bayes, message_tokens
from portcullis.bayes.evaluate import temporary_config
from portcullis.bayes.training import train
from portcullis.checks.base import Context
from portcullis.config import HostPort
from portcullis.directory.domains import Domain
from portcullis.observers import MessageEvent
from portcullis.policy import Flag, Symbol, Thresholds, Verdict, decide
from portcullis.reputation import mta, oneway, peers
from portcullis.reputation.symbols import REPUTATION, about_sender
from portcullis.services import Services
from portcullis.smtp.recipients import Direction, Route
from tests.support.delivery import as_delivered

pytestmark = pytest.mark.reputation
T = Thresholds(5.0, 12.0)
INBOUND = Route(Direction.INBOUND, HostPort("192.0.2.25", 25),
                Domain("example.com", HostPort("192.0.2.25", 25)))


# Real symbols: spammy headers below the tag threshold, and what reputation gives a peer
# and a regular sender.
SPAMMY = [Symbol("FROM_NAME_SPOOF", 1.5), Symbol("DATE_IN_FUTURE", 1.5),
          Symbol("MISSING_MID", 0.5)]
PEER = peers.symbols(peers.Peer(2, 1, 0), 10)
ONE_WAY = oneway.symbols(oneway.OneWay(5, 0.0), 3)


def settle(learner: AutoLearner) -> None:
    deadline = time.monotonic() + 20
    while learner.pending() and time.monotonic() < deadline:
        time.sleep(0.05)


def event(symbols: list[Symbol], body: str = "agenda for the budget meeting",
          delivered: bool = True, route: Route = INBOUND) -> MessageEvent:
    content = f"From: a@remote.test\r\nSubject: {body}\r\n\r\n{body} {body}\r\n".encode()
    ctx = Context(client_ip="192.0.2.9", mail_from="a@remote.test",
                  recipients=["bob@example.com"], route=route, content=content)
    return MessageEvent(ctx, decide(symbols, T), delivered, "id")


def test_spam_needs_a_score_reject_on_evidence_other_than_bayes():
    assert autolearn_class(event([Symbol("X", 12.0)]), 12, 0)
    assert autolearn_class(event([Symbol("BAYES_999", 12.5)]), 12, 0) is None
    listed = [Symbol("RBL", 0, "RBL Block", Flag.REJECT), Symbol("X", 20.0)]
    assert autolearn_class(event(listed), 12, 0) is None          # decided by a flag


def test_a_bad_reputation_alone_never_makes_a_message_spam():
    # The MTA's record is about its other mail: it rejects this one (10 + 3 >= 12) but
    # the message's own evidence (10) is short of the auto-learn score.
    assert autolearn_class(event([Symbol("MTA_BAD_IP", 3.0), Symbol("X", 10.0)]), 12, 0) \
        is None
    assert autolearn_class(event([Symbol("MTA_BAD_IP", 3.0), Symbol("X", 12.0)]), 12, 0)
    # A reputation bonus still holds spam learning back.
    assert autolearn_class(event([Symbol("PEER_DOMAIN", -2.0), Symbol("X", 13.5)]), 12, 0) \
        is None


def test_ham_needs_an_accept_on_evidence_of_its_own():
    signed = [Symbol("SPF_PASS", -0.2), Symbol("DKIM_VALID", -0.2), Symbol("DMARC_PASS", -0.5)]
    assert autolearn_class(event(signed), 12, 0) is False
    assert autolearn_class(event([*signed, *PEER, Symbol("BAYES_50", 5.5)]), 12, 0) is False
    assert autolearn_class(event([Symbol("BAYES_00", -2.0)]), 12, 0) is None
    assert autolearn_class(event(signed, delivered=False), 12, 0) is None
    outbound = Route(Direction.OUTBOUND, HostPort("127.0.0.1", 10025), None)
    assert autolearn_class(event(signed, route=outbound), 12, 0) is None


def test_reputation_bonuses_are_never_the_reason_to_learn_ham():
    # Spammy content below the tag threshold, from a peer with a good MTA: accepted, but
    # only the sender's standing made it look like ham.
    assert autolearn_class(event([*SPAMMY, *PEER, *ONE_WAY, Symbol("MTA_GOOD_IP", -1.5)]),
                           12, 0) is None
    assert autolearn_class(event([Symbol("ONE_WAY", -3.0)]), 12, 0) is None
    # A bad reputation still holds ham learning back.
    signed = [Symbol("SPF_PASS", -0.2), Symbol("DMARC_PASS", -0.5)]
    assert autolearn_class(event([*signed, Symbol("MTA_BAD_NET", 1.0)]), 12, 0) is None


def test_the_learner_takes_clean_mail_but_not_spammy_mail_a_peer_vouches_for(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    learner = AutoLearner(services)
    vouched = [*SPAMMY, *PEER, *ONE_WAY, Symbol("MTA_GOOD_IP", -1.5),
               Symbol("SPF_PASS", -0.2)]
    spammy = event(vouched, body="cheap pills casino winner claim your prize now")
    assert spammy.decision.verdict is Verdict.ACCEPT
    learner.message(spammy)
    clean = event([*PEER, Symbol("SPF_PASS", -0.2), Symbol("DKIM_VALID", -0.2)])
    learner.message(clean)
    settle(learner)
    database = TokenDatabase(services.store)
    assert database.totals()["ham"] == database.totals()["auto_ham"] == 1
    assert database.taught(digest(message_tokens(spammy.ctx.message))) is None
    assert database.taught(digest(message_tokens(clean.ctx.message))) == Taught(False, AUTO)


def test_every_symbol_reputation_adds_is_known_to_be_about_the_sender(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    store = services.store
    made = [*peers.symbols(peers.Peer(4, 3, 0), 3), *peers.symbols(peers.Peer(0, 0, 2), 3),
            *oneway.symbols(oneway.OneWay(9, 0.0), 3)]
    for address, kind, unwanted, accepted in (("192.0.2.1", "ip", 60, 0),
                                              ("192.0.2.2", "ip", 0, 60),
                                              ("198.51.100.0/24", "net", 60, 0),
                                              ("203.0.113.0/24", "net", 0, 60)):
        store.execute("INSERT INTO mta_reputation (address, kind, connections, unwanted,"
                      " accepted, tagged, rejected, first_seen, last_seen)"
                      " VALUES (?, ?, 60, ?, ?, 0, 0, 0, 0)",
                      (address, kind, unwanted, accepted))
    for ip in ("192.0.2.1", "192.0.2.2", "198.51.100.7", "203.0.113.7"):
        made += mta.symbols(store, ip)
    assert {s.name for s in made} == REPUTATION
    assert all(about_sender(s) for s in made)
    assert about_sender(Symbol("WHITELIST", -100.0, "", Flag.WHITELIST))
    assert not about_sender(Symbol("SPF_PASS", -0.2))


def test_malware_and_protected_mail_are_never_learnt_as_spam():
    virus = [Symbol("VIRUS", 0, "Virus: X", Flag.MALWARE), Symbol("X", 20.0)]
    assert autolearn_class(event(virus), 12, 0) is None
    protected = [Symbol("PEER", -10.0, "peer", Flag.PROTECT), Symbol("X", 40.0)]
    assert autolearn_class(event(protected), 12, 0) is None


def test_one_class_cannot_run_ahead_of_the_other(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    learner = AutoLearner(services)
    for index in range(60):
        learner.message(event([Symbol("DMARC_PASS", -0.5)],
                              body=f"budget meeting number{index}"))
    settle(learner)
    totals = TokenDatabase(services.store).totals()
    # Nothing learnt as spam yet: ham stops at BALANCE x min_trained (2 x 20).
    assert totals["ham"] == totals["auto_ham"] == 40
    assert totals["spam"] == 0


def test_white_listed_mail_is_never_learnt_as_ham():
    # The white list accepts whatever a (forgeable) listed sender writes: its -100 is no
    # evidence about the content, which here Bayes and a peer bonus disagree about.
    white = [Symbol("WHITELIST", -100.0, "White list: sender x@partner.test (partner.test)",
                    Flag.WHITELIST), Symbol("BAYES_999", 9.0), Symbol("SPAMMY", 10.0)]
    assert autolearn_class(event(white), 12, 0) is None


def test_mail_from_a_forged_peer_is_never_learnt_as_ham():
    # Anyone may write under the address of a user's correspondent; when SPF says the
    # sender was forged, the peer bonus vouches for nothing.
    for spf in ("SPF_FAIL", "SPF_SOFTFAIL", "DMARC_FAIL_QUARANTINE"):
        forged = [Symbol(spf, 3.5), Symbol("PEER", -6.0), Symbol("BAYES_50", 5.5)]
        assert autolearn_class(event(forged), 12, 0) is None


def test_auto_learning_never_moves_a_message_an_administrator_trained(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    learner = AutoLearner(services)
    database = TokenDatabase(services.store)
    bayes = Bayes(services.store)
    # The same text arrives as an outright reject on its own evidence: the auto-learner
    # would take it as spam.
    trained = event([Symbol("X", 13.0)], body="minutes of the quarterly budget review")
    spam_run = event([Symbol("X", 13.0)], body="cheap pills casino winner claim a prize")
    folder = tmp_path / "ham"
    folder.mkdir()
    (folder / "1.eml").write_bytes(trained.ctx.content)
    assert train(bayes, [(folder, False)], show_progress=False).learnt["ham"] == 1
    learner.message(trained)
    learner.message(spam_run)
    settle(learner)
    tokens = message_tokens(trained.ctx.message)
    assert database.totals()["ham"] == 1 and database.totals()["auto_spam"] == 1
    assert database.counts(tokens)["minutes"] == (0, 1)
    assert database.taught(digest(tokens)) == Taught(False, "cli")
    # The administrator may still move what the auto-learner learnt.
    (tmp_path / "ham" / "2.eml").write_bytes(spam_run.ctx.content)
    assert train(bayes, [(folder, False)], show_progress=False).learnt["ham"] == 1
    assert database.taught(digest(message_tokens(spam_run.ctx.message))) == \
        Taught(False, "cli")


def test_a_message_coming_through_the_gateway_again_is_not_learnt_again(tmp_path):
    """The internal host of one protected domain forwards a message it got through the
    gateway to a user of another (a forwarding rule, a group): it arrives again under the
    gateway's own Received field and the internal host's.  Learnt as it came the second
    time it was another message, and every such pass counted it again."""
    services = Services.open(temporary_config(tmp_path))
    learner = AutoLearner(services)
    signed = [Symbol("SPF_PASS", -0.2), Symbol("DKIM_VALID", -0.2), Symbol("DMARC_PASS", -0.5)]
    first = event(signed, body="agenda for the quarterly budget meeting")
    hostname = services.config.smtp.hostname
    delivered = as_delivered(first.ctx.content, hostname)
    again = Context(client_ip="192.0.2.25", mail_from="a@remote.test",
                    recipients=["carol@example.net"], route=INBOUND,
                    content=b"Received: from mail.example.com ([192.0.2.25]) by"
                            b" mail.example.com\r\n" + delivered)
    for message in (first, MessageEvent(again, decide(signed, T), True, "id2")):
        learner.message(message)
        settle(learner)
    totals = TokenDatabase(services.store).totals()
    assert totals["ham"] == totals["auto_ham"] == 1
