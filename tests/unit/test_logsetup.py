"""Process logging: one line per record, whatever a client made it quote."""

from __future__ import annotations

import logging

import pytest

from portcullis import logsetup

pytestmark = pytest.mark.gateway


def test_a_quoted_line_break_cannot_add_a_log_line(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logsetup.configure("info")
        log = logging.getLogger("portcullis.test")
        log.warning("next hop said %s", "250 ok\nINFO portcullis.smtp: forged\u2028line")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed for %s", "a\rb")
    finally:
        root.handlers[:], root.level = handlers, level
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "WARNING portcullis.test: next hop said 250 ok?INFO portcullis.smtp:" \
                       " forged?line"
    assert lines[1] == "ERROR portcullis.test: failed for a?b"
    assert lines[2] == "Traceback (most recent call last):"      # the traceback keeps lines
