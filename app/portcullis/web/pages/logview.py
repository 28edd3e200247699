"""The decision log, in the FAQ's one-line format.

The super administrator reads the log file itself (``decisionlog.tail``, as ``portcullis
log`` does).  A log line cannot be attributed to a domain safely (subjects and HELO names
are free text a sender can fill with anyone's domain), so a domain administrator gets the
same lines built from the archive entries of their own domains, merged by time with the
lines of their domains' recipients refused at RCPT, which the gateway kept attributed
(``refusallog``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from portcullis import refusallog
from portcullis.archive import ArchivedMessage
from portcullis.archive.archive import MAX_SEARCH
from portcullis.decisionlog import format_line, tail
from portcullis.policy import Verdict

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

LINE_CHOICES = (50, 200, 1000)
# How far back a domain administrator's filter looks: about as far as the super
# administrator's, whose lines come from the log file's last 4 MiB.
SEARCHED_MESSAGES = 20_000


def register(web: WebApp) -> None:
    web.page("/log")(log_page)


def _label(ctx: RequestContext, message: ArchivedMessage) -> str:
    """The line's verdict and reason, as the gateway logged them (a wanted message the
    internal host refused is archived as the handler logs it, 'TempFailed by internal
    host: ...'), other domains' recipients hidden."""
    try:
        word = Verdict(message.verdict).label
    except ValueError:
        word = message.verdict
    return f"{word} {ctx.hide_recipients(message.reason, message.recipients)}".strip()


def log_page(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    try:
        lines = int(ctx.query.get("lines", "200"))
    except ValueError:
        lines = 200
    lines = lines if lines in LINE_CHOICES else 200
    contains = ctx.query.get("grep", "").strip()[:200]
    if ctx.user.is_super:
        found = tail(ctx.config.log_file, lines, contains)
        source = str(ctx.config.log_file)
    else:
        found = domain_lines(ctx, lines, contains)
        source = ""
    return ctx.render("log", title=ctx._("Log"), lines=found, count=lines, grep=contains,
                      choices=LINE_CHOICES, source=source)


def domain_lines(ctx: RequestContext, lines: int, contains: str = "") -> list[str]:
    """A domain administrator's last ``lines`` log lines, oldest first; with
    ``contains``, the last of those holding it (as in the log file's tail), not those
    of the last ``lines`` messages that do: one wanted line among the day's spam was
    never found."""
    assert ctx.user is not None
    page = MAX_SEARCH if contains else lines
    archived = ((message.received, _line(ctx, message))
                for message in _newest_first(ctx, page))
    refused = refusallog.newest_first(ctx.store, ctx.user.domain_filter or [], page)
    found: list[str] = []
    for _, line in heapq.merge(archived, refused, key=lambda pair: pair[0], reverse=True):
        if contains.lower() in line.lower():
            found.append(line)
            if len(found) == lines:
                break
    return found[::-1]


def _line(ctx: RequestContext, message: ArchivedMessage) -> str:
    return format_line(message.received, _label(ctx, message), message.client_ip,
                       message.helo, ctx.shown_recipients(message.recipients),
                       message.subject)


def _newest_first(ctx: RequestContext, page: int) -> Iterator[ArchivedMessage]:
    """The archived messages of this administrator's domains, newest first, read
    ``page`` at a time, up to SEARCHED_MESSAGES, each once (mail arriving meanwhile
    moves the older ones to later pages)."""
    assert ctx.user is not None
    seen: set[str] = set()
    for offset in range(0, SEARCHED_MESSAGES, page):
        messages = ctx.services.archive.search(domains=ctx.user.domain_filter,
                                               limit=page, offset=offset)
        yield from (message for message in messages if message.id not in seen)
        seen.update(message.id for message in messages)
        if len(messages) < page:
            return
