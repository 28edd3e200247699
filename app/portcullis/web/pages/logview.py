"""The decision log, in the FAQ's one-line format.

The super administrator reads the log file itself (``decisionlog.tail``, as ``portcullis
log`` does).  A log line cannot be attributed to a domain safely (subjects and HELO names
are free text a sender can fill with anyone's domain), so a domain administrator gets the
same lines built from the archive entries of their own domains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portcullis.decisionlog import format_line, tail
from portcullis.policy import Verdict

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

LINE_CHOICES = (50, 200, 1000)


def register(web: WebApp) -> None:
    web.page("/log")(log_page)


def _label(verdict: str, reason: str) -> str:
    try:
        word = Verdict(verdict).label
    except ValueError:
        word = verdict
    return f"{word} {reason}".strip()


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
        messages = ctx.services.archive.search(domains=ctx.user.domain_filter, limit=lines)
        found = [format_line(m.received,
                             _label(m.verdict, ctx.hide_recipients(m.reason, m.recipients)),
                             m.client_ip, m.helo, ctx.shown_recipients(m.recipients),
                             m.subject)
                 for m in reversed(messages)]
        if contains:
            found = [line for line in found if contains.lower() in line.lower()]
        source = ""
    return ctx.render("log", title=ctx._("Log"), lines=found, count=lines, grep=contains,
                      choices=LINE_CHOICES, source=source)
