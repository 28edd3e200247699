"""``portcullis train``, ``score`` and ``eval`` as an administrator runs them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.gateway import PORTCULLIS, Gateway
from tests.support.mailcorpus import message, unsure_message, write_corpus

pytestmark = pytest.mark.reputation


@pytest.fixture
def appliance(tmp_path):
    """A gateway's configuration and store (not started: these commands need no daemon)."""
    return Gateway(tmp_path / "state")


def test_bad_input_is_skipped_with_a_message_and_nothing_else_is_lost(appliance, tmp_path):
    folder = write_corpus(tmp_path / "ham", spam=False, count=5)
    (folder / "truncated.eml").write_bytes(
        b"From: a@remote.test\r\nSubject: minutes of the meeting\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain"
        b"\r\n\r\nthe agenda and the budget\r\n--B\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6I")
    (folder / "charset.eml").write_bytes(
        b"From: b@remote.test\r\nSubject: r\xe9union\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Le café de la réunion budgétaire".encode("latin-1") + b"\r\n")
    (folder / "huge.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    (folder / "garbage.eml").write_bytes(bytes(range(256)) * 8)

    result = appliance.cli("train", "--ham", str(folder), "--json")
    summary = json.loads(result.stdout)
    skipped = {os.path.basename(s["message"]): s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"huge.bin", "garbage.eml"}
    assert "too large" in skipped["huge.bin"]
    assert "not a mail message" in skipped["garbage.eml"]
    assert "skipped" in result.stderr and "huge.bin" in result.stderr
    assert [os.path.basename(n["message"]) for n in summary["notes"]] == ["truncated.eml"]
    # Every good message, and the readable parts of the damaged ones, were learnt.
    assert summary["learnt"] == {"ham": 7, "spam": 0}
    assert summary["totals"]["ham"] == 7
    scored = json.loads(appliance.cli("score", str(folder / "charset.eml"), "--json").stdout)
    assert scored["action"] == "accept"
    # The gateway's scoring path survives the same input.
    scored = json.loads(appliance.cli("score", str(folder / "huge.bin"), "--json").stdout)
    assert scored["action"] in ("accept", "tag")
    upkeep = appliance.cli("maintenance").stdout
    assert "bayes:" in upkeep and "reputation:" in upkeep


def test_training_twice_learns_nothing_new_and_score_reports_the_verdict(appliance, tmp_path):
    ham = write_corpus(tmp_path / "ham", spam=False, count=25)
    spam = write_corpus(tmp_path / "spam", spam=True, count=25)
    first = appliance.cli("train", "--ham", str(ham), "--spam", str(spam))
    assert "learnt 25 spam and 25 ham" in first.stdout
    assert "learning spam" in first.stderr and "25/25" in first.stderr
    again = appliance.cli("train", "--ham", str(ham), "--spam", str(spam))
    assert "learnt 0 spam and 0 ham (50 already known" in again.stdout

    spammy = tmp_path / "spammy.eml"
    spammy.write_bytes(message("claim your jackpot prize",
                               "congratulations winner claim the lottery jackpot prize now "
                               "cheap pills pharmacy discount"))
    verdict = json.loads(appliance.cli("score", str(spammy), "--json").stdout)
    assert verdict["action"] == "tag" and verdict["score"] >= 5
    [bayes] = [s for s in verdict["symbols"] if s["name"].startswith("BAYES")]
    assert "jackpot" in bayes["reason"]
    unsure = tmp_path / "unsure.eml"
    unsure.write_bytes(unsure_message("hello", "x@remote.test", "bob@example.com"))
    assert json.loads(appliance.cli("score", str(unsure), "--json").stdout)["action"] == "tag"
    missing = appliance.cli("score", str(tmp_path / "nope.eml"), check=False)
    assert missing.returncode == 1 and "nope.eml" in missing.stderr


def test_eval_needs_no_configuration_and_ends_with_one_json_line(tmp_path):
    sets = {}
    for name, spam, count, seed in (("train-ham", False, 30, 1), ("train-spam", True, 30, 1),
                                    ("test-ham", False, 20, 2), ("test-spam", True, 20, 2)):
        sets[name] = write_corpus(tmp_path / name, spam, count, seed=seed * 100)
    env = {k: v for k, v in os.environ.items() if k != "PORTCULLIS_CONFIG"}
    args = [a for name, path in sets.items() for a in (f"--{name}", str(path))]
    result = subprocess.run([*PORTCULLIS, "--config", str(tmp_path / "absent.toml"), "eval",
                             *args, "--json"], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["ham"], figures["spam"]) == (20, 20)
    assert (figures["trained_ham"], figures["trained_spam"]) == (30, 30)
    for key in ("ham_rejected_rate", "ham_tagged_rate", "spam_accepted_rate",
                "spam_rejected_rate", "msgs_per_s"):
        assert key in figures
    assert figures["spam_accepted_rate"] == 0.0 and figures["ham_tagged_rate"] == 0.0
    assert figures["msgs_per_s"] > 0
    assert "scoring test messages" in result.stderr
    assert not (tmp_path / "absent.toml").exists()
