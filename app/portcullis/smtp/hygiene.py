"""Protocol hygiene for message content: line endings and SMTP smuggling.

aiosmtpd (>= 1.4.5) only ends DATA at <CRLF>.<CRLF>, so anything after a bare-LF or
bare-CR "end of data" stays inside the message.  Passed on unchanged, an internal host that
accepts <LF>.<LF> would see two messages: that is SMTP smuggling.  We refuse messages that
carry a lone dot line bounded by a bare newline (an attack, not a broken mailer), and turn
other bare CR/LF into CRLF (Postfix's ``smtpd_forbid_bare_newline = normalize``) so
legitimate mail from sloppy senders still arrives.
"""

from __future__ import annotations

import re

_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n|^\r?\n")
_DOT_LINE_CRLF = re.compile(rb"(?:^|\r\n)\.(?=\r\n)")
_RECEIVED = re.compile(rb"^Received[ \t]*:", re.IGNORECASE | re.MULTILINE)


class SmugglingAttempt(ValueError):
    """The content holds an end-of-data sequence other than <CRLF>.<CRLF>."""


def has_bare_newline(content: bytes) -> bool:
    # Every CR and every LF belongs to a CRLF exactly when all three counts agree
    # (counting is ten times faster than a regular expression over the message).
    crlf = content.count(b"\r\n")
    return content.count(b"\r") != crlf or content.count(b"\n") != crlf


def normalise_line_endings(content: bytes) -> bytes:
    """Return content with every line ending CRLF; raise SmugglingAttempt if that would
    create a lone-dot line that was not one before."""
    if not has_bare_newline(content):
        return content
    normalised = _ANY_NEWLINE.sub(b"\r\n", content)
    before = len(_DOT_LINE_CRLF.findall(content))
    after = len(_DOT_LINE_CRLF.findall(normalised))
    if after > before:
        raise SmugglingAttempt("end-of-data sequence with a bare <CR> or <LF>")
    return normalised


def header_section_too_large(content: bytes, limit: int) -> bool:
    """Whether the header section (up to the first empty line, or all of a message
    without one) is longer than ``limit`` bytes; only that much is searched."""
    return len(content) > limit and _HEADER_END.search(content, 0, limit + 4) is None


def line_count(content: bytes) -> int:
    """The lines the content has once every bare CR and bare LF ends one, as the line
    endings are normalised before parsing (so bare CRs cannot hide lines from a limit)."""
    return content.count(b"\n") + content.count(b"\r") - content.count(b"\r\n")


def received_count(content: bytes) -> int:
    """The Received: header fields of the header section: the hops the message took."""
    end = _HEADER_END.search(content)
    return len(_RECEIVED.findall(content, 0, len(content) if end is None else end.start()))
