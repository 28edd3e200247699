"""Auto-learning takes only confident verdicts, judged without Bayes' own opinion, and
keeps the classes balanced."""

from __future__ import annotations

import time

import pytest

from portcullis.bayes.autolearn import AutoLearner, autolearn_class
from portcullis.bayes.database import Taught, TokenDatabase, digest
from portcullis.bayes.engine import Bayes, message_tokens
from portcullis.bayes.evaluate import temporary_config
from portcullis.bayes.training import train
from portcullis.checks.base import Context
from portcullis.config import HostPort
from portcullis.directory.domains import Domain
from portcullis.observers import MessageEvent
from portcullis.policy import Flag, Symbol, Thresholds, decide
from portcullis.services import Services
from portcullis.smtp.recipients import Direction, Route

pytestmark = pytest.mark.reputation
T = Thresholds(5.0, 12.0)
INBOUND = Route(Direction.INBOUND, HostPort("192.0.2.25", 25),
                Domain("example.com", HostPort("192.0.2.25", 25)))


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
    assert autolearn_class(event([Symbol("MTA_BAD_IP", 3.0), Symbol("X", 10.0)]), 12, 0)
    assert autolearn_class(event([Symbol("BAYES_999", 12.5)]), 12, 0) is None
    listed = [Symbol("RBL", 0, "RBL Block", Flag.REJECT), Symbol("X", 20.0)]
    assert autolearn_class(event(listed), 12, 0) is None          # decided by a flag


def test_ham_needs_an_accept_with_reputation_vouching_for_it():
    assert autolearn_class(event([Symbol("PEER", -6.0), Symbol("BAYES_50", 5.5)]), 12, 0) \
        is False
    assert autolearn_class(event([Symbol("BAYES_00", -2.0)]), 12, 0) is None
    assert autolearn_class(event([Symbol("PEER", -6.0)], delivered=False), 12, 0) is None
    outbound = Route(Direction.OUTBOUND, HostPort("127.0.0.1", 10025), None)
    assert autolearn_class(event([Symbol("PEER", -6.0)], route=outbound), 12, 0) is None


def test_malware_and_protected_mail_are_never_learnt_as_spam():
    virus = [Symbol("VIRUS", 0, "Virus: X", Flag.MALWARE), Symbol("X", 20.0)]
    assert autolearn_class(event(virus), 12, 0) is None
    protected = [Symbol("PEER", -10.0, "peer", Flag.PROTECT), Symbol("X", 40.0)]
    assert autolearn_class(event(protected), 12, 0) is None


def test_one_class_cannot_run_ahead_of_the_other(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    learner = AutoLearner(services)
    for index in range(60):
        learner.message(event([Symbol("PEER", -6.0)], body=f"budget meeting number{index}"))
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
