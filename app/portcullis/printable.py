"""Hostile text (a sender's subject, a HELO name, a reason an update's pushing host
chose) made safe to show as one line in a terminal, a log file or the journal, and the
one table printer of every command line tool (``portcullis``, ``portcullis-update-agent``
and the vendor's ``portcullis-vendor``: standard library only, so each may import it)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Control characters (C0, DEL and C1: an escape sequence can retitle, clear or script a
# terminal, and U+0085 breaks a line), the Unicode line and paragraph separators, the
# bidirectional marks and overrides that reorder what is shown, and bytes that were not
# UTF-8 (kept by aiosmtpd as lone surrogates, which no file or journal can encode).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every character that could break or disguise a line as '?'."""
    return _UNSHOWABLE.sub("?", text)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Columns padded to their widest line; a cell holding newlines takes several lines;
    what a cell holds is shown with ``printable``."""
    cells = [[[printable(line) for line in ("" if v is None else str(v)).split("\n")]
              for v in row] for row in rows]
    widths = [max([len(h), *(len(line) for r in cells for line in r[i])])
              for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        for n in range(max(len(cell) for cell in row)):
            line = [cell[n] if n < len(cell) else "" for cell in row]
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    if not cells:
        print("(none)")
