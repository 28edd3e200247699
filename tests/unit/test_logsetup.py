"""Process logging: one line per record, whatever a client made it quote."""

from __future__ import annotations

import logging
import sys

import pytest

from portcullis import logsetup

pytestmark = pytest.mark.gateway


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("portcullis.test", logging.WARNING, __file__, 1, message, args,
                             exc_info)


def test_a_quoted_line_break_cannot_add_a_log_line():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logsetup.configure("info")
        [handler] = root.handlers
        formatter = handler.formatter
    finally:
        root.handlers[:], root.level = handlers, level
    assert isinstance(formatter, logsetup.OneLineFormatter)
    assert formatter.format(record("next hop said %s",
                                   "250 ok\nINFO portcullis.smtp: forged\u2028line")) == \
        "WARNING portcullis.test: next hop said 250 ok?INFO portcullis.smtp: forged?line"
    try:
        raise ValueError("boom")
    except ValueError:
        lines = formatter.format(record("failed for %s", "a\rb",
                                        exc_info=sys.exc_info())).splitlines()
    assert lines[0] == "WARNING portcullis.test: failed for a?b"
    assert lines[1] == "Traceback (most recent call last):"      # the traceback keeps lines
