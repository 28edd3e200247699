"""Hostile text (a sender's subject, a HELO name) made safe to show as one line in a
terminal, a log file or the journal."""

from __future__ import annotations

import re

# Control characters (C0, DEL and C1: an escape sequence can retitle, clear or script a
# terminal, and U+0085 breaks a line), the Unicode line and paragraph separators, the
# bidirectional marks and overrides that reorder what is shown, and bytes that were not
# UTF-8 (kept by aiosmtpd as lone surrogates, which no file or journal can encode).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every character that could break or disguise a line as '?'."""
    return _UNSHOWABLE.sub("?", text)
