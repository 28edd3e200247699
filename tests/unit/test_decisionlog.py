"""The decision log: one line per decision, whatever a sender writes into it."""

from __future__ import annotations

import os
import stat

import pytest

from portcullis.decisionlog import DecisionLog, tail

pytestmark = pytest.mark.gateway

FORGED = "2026/12/02 04:00:00 - Accepted 192.0.2.9 \"mx.partner.test\" ceo@example.com wire"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\r", "\n"])
def test_a_subject_cannot_add_a_line_to_the_decision_log(tmp_path, separator):
    log = DecisionLog(tmp_path / "decisions.log")
    log.write("Accepted", "192.0.2.1", "mx.test", ["bob@example.com"],
              f"hello{separator}{FORGED}")
    log.write("Rejected Spam score 20.0", "192.0.2.2", "x", ["bob@example.com"], "offer")
    lines = tail(tmp_path / "decisions.log")
    assert len(lines) == 2
    assert lines[0].endswith(f"hello?{FORGED}")
    assert "Rejected" in lines[1]


def test_an_eight_bit_terminal_control_in_a_subject_is_replaced(tmp_path):
    log = DecisionLog(tmp_path / "decisions.log")
    line = log.write("Accepted", "192.0.2.1", "mx\x9b2J.test", ["bob@example.com"], "a\x9b31mb")
    assert "\x9b" not in line and line.endswith('"mx?2J.test" bob@example.com a?31mb')


def test_a_line_an_older_release_wrote_with_a_separator_reads_as_one(tmp_path):
    (tmp_path / "decisions.log").write_text(f"one\u2028{FORGED}\ntwo\n", encoding="utf-8")
    assert tail(tmp_path / "decisions.log") == [f"one\u2028{FORGED}", "two"]


@pytest.mark.parametrize("lines", ["0", "-3", "nan"])
def test_the_log_command_shows_at_least_one_line(capsys, lines):
    # --lines 0 printed every line of the log's last 4 MiB, -3 all but the first three.
    from portcullis.cli.main import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["log", "--lines", lines])
    assert "argument --lines: must be a whole number of at least 1" in capsys.readouterr().err
    assert build_parser().parse_args(["log", "--lines", "1"]).lines == 1


def test_a_line_cut_short_is_ended_before_the_next_decision(tmp_path):
    """A full disk (or a crash) may leave the last line half written; the next decision
    starts a line of its own, rather than reading as part of that one."""
    path = tmp_path / "decisions.log"
    path.write_bytes(b"2026/12/02 04:00:00 - Accepted 192.0.2.9 \"mx.te")
    log = DecisionLog(path)
    log.write("Rejected Spam score 20.0", "192.0.2.2", "x", ["bob@example.com"], "offer")
    log.write("Accepted", "192.0.2.3", "y", ["bob@example.com"], "hello")
    lines = tail(path)
    assert lines[0] == '2026/12/02 04:00:00 - Accepted 192.0.2.9 "mx.te'
    assert [line.split(" - ")[1].split()[0] for line in lines[1:]] == ["Rejected", "Accepted"]
    log.reopen()
    log.write("Accepted", "192.0.2.4", "z", ["bob@example.com"], "again")
    assert len(tail(path)) == 4


def test_the_log_is_never_readable_by_other_users(tmp_path):
    """Every message's sender, recipients and subject are in it."""
    umask = os.umask(0o022)
    try:
        DecisionLog(tmp_path / "decisions.log").write("Accepted", "192.0.2.1", "mx.test",
                                                      ["bob@example.com"], "payroll")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "decisions.log").stat().st_mode) == 0o640
