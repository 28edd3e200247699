"""Archive search, the message view (headers, MIME parts, the symbols and scores that
explain the verdict) and Release."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import bottle

from portcullis import mime
from portcullis.addresses import domain_of
from portcullis.archive import ArchivedMessage, ArchiveError
from portcullis.archive.archive import MAX_OFFSET
from portcullis.archive.release import release
from portcullis.policy import Symbol, Verdict

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

log = logging.getLogger(__name__)

MESSAGE = "<message_id:re:[0-9A-Za-z-]{1,64}>"
PAGE_SIZE = 50
SHOW_TEXT = 20_000          # characters of each text part shown in the message view
MAX_HEADERS = 300
MAX_TEXT_PARTS = 10         # text shown for the first parts only: a page stays readable

Translate = Callable[..., str]      # RequestContext._: a message id and its fields

# What archive/release.py records and raises in English (for the CLI and the store),
# matched to be shown in the administrator's language; anything else (an SMTP reply, a
# store error) is shown as it is.
_RELEASED = re.compile(r"released by (?P<who>[^\s:]+): (?P<outcome>.*)", re.DOTALL)
_RELEASE_FAILED = re.compile(r"release by (?P<who>[^\s:]+) failed: (?P<outcome>.*)", re.DOTALL)
_ERRORS: list[tuple[re.Pattern[str], Callable[[Translate, re.Match[str]], str]]] = [
    (re.compile(r"no archived message \S+"),
     lambda _, m: _("No such message in the archive.")),
    (re.compile(r"message \S+ has no recipient you may release to"),
     lambda _, m: _("This message has no recipient you may release to.")),
    (re.compile(r"message \S+ was rejected as a virus; only the super administrator may"
                r" release it"),
     lambda _, m: _("This message was rejected as a virus; only the super administrator"
                    " may release it.")),
    (re.compile(r"message \S+ was delivered when it arrived; release it again to send"
                r" another copy"),
     lambda _, m: _("This message was delivered when it arrived; release it again to send"
                    " another copy.")),
    (re.compile(r"message \S+ is being delivered now; release it again to send another copy"),
     lambda _, m: _("This message is being delivered now; release it again to send another"
                    " copy.")),
    (re.compile(r"message \S+ was purged from the archive \(its retention is over\)"),
     lambda _, m: _("This message was purged from the archive (its retention is over).")),
    (re.compile(r"message \S+ was already released to (?P<recipients>.+); release it again"
                r" to send another copy", re.DOTALL),
     lambda _, m: _("This message was already released to {recipients}; release it again"
                    " to send another copy.", recipients=m["recipients"])),
    (re.compile(r"the body of \S+ is no longer in the archive: its day's files were removed"
                r" \(retention\)"),
     lambda _, m: _("The body of this message is no longer in the archive: its day's files"
                    " were removed (retention).")),
    (re.compile(r"archived body of \S+ is unreadable: (?P<error>.*)", re.DOTALL),
     lambda _, m: _("The archived body of this message is unreadable: {error}",
                    error=m["error"])),
]


def register(web: WebApp) -> None:
    web.page("/archive")(search)
    web.page(f"/archive/{MESSAGE}")(show)
    web.page(f"/archive/{MESSAGE}/raw")(raw)
    web.page(f"/archive/{MESSAGE}/release", "POST")(release_message)


def parse_local_time(text: str) -> float | None:
    """A ``datetime-local`` field (``2026-11-29T10:00``) as a time stamp; None if empty."""
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(text) from None


def search(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    q = ctx.query
    filters = {name: q.get(name, "").strip()[:200] for name in
               ("sender", "recipient", "subject", "client_ip")}
    verdict = q.get("verdict", "")
    if verdict not in {v.value for v in Verdict}:
        verdict = ""
    error = ""
    try:
        since, until = parse_local_time(q.get("since", "")), parse_local_time(q.get("until", ""))
    except ValueError as exc:
        since = until = None
        error = ctx._("{value} is not a date and time.", value=str(exc))
    try:
        offset = min(max(0, int(q.get("offset", "0") or 0)), MAX_OFFSET)
    except ValueError:
        offset = 0
    found = ctx.services.archive.search(
        since=since, until=until, verdict=verdict, domains=ctx.user.domain_filter,
        limit=PAGE_SIZE + 1, offset=offset, **filters)
    more, found = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
    params = {k: v for k, v in {**filters, "verdict": verdict, "since": q.get("since", ""),
                                "until": q.get("until", "")}.items() if v}
    if error:
        bottle.response.status = 400
    return ctx.render("archive", title=ctx._("Archive"), messages=found,
                      more=more, offset=offset, page_size=PAGE_SIZE,
                      filters=filters, verdict=verdict, since=q.get("since", ""),
                      until=q.get("until", ""), params=params, error=error,
                      verdicts=[v.value for v in Verdict],
                      released_for=lambda m: released_for(ctx, m))


def released_for(ctx: RequestContext, message: ArchivedMessage) -> float | None:
    """When a release last reached a recipient this administrator may see: another
    domain's release of a shared message is no release of theirs."""
    times = [message.released_to[r] for r in ctx.shown_recipients(message.recipients)
             if r in message.released_to]
    return max(times) if message.released and times else None


def _message(ctx: RequestContext, message_id: str) -> ArchivedMessage:
    """The archived message, if this administrator may see it (403/404 otherwise)."""
    assert ctx.user is not None
    message = ctx.services.archive.get(message_id)
    if message is None:
        raise bottle.HTTPError(404, ctx._("No such message in the archive."))
    if not ctx.user.is_super and not ctx.shown_recipients(message.recipients):
        raise bottle.HTTPError(403, ctx._("This message is not for a domain you manage."))
    return message


def _parts(content: bytes) -> tuple[list[tuple[str, str]], list[dict], list[str]]:
    """Headers (decoded), the MIME part tree of a message and what its bounds left out
    (a bomb of parts must not look like a message of one), never failing."""
    parsed = mime.parse_message(content)
    # decoded_header reads the first header of a name; decode each occurrence instead.
    headers = []
    for name, value in list(parsed.items())[:MAX_HEADERS]:
        holder = type(parsed)()
        holder[name] = value
        headers.append((name, mime.decoded_header(holder, name)))
    parts: list[dict] = []
    cut: list[str] = []
    texts = 0
    for depth, part in mime.walk(parsed, cut):
        ctype = part.get_content_type()
        entry = {"depth": depth, "type": ctype, "filename": mime.filename(part),
                 "charset": part.get_content_charset() or "", "size": 0, "text": ""}
        if not part.is_multipart():
            payload = mime.payload(part)
            entry["size"] = len(payload) if payload is not None else 0
            if ctype.startswith("text/") and texts < MAX_TEXT_PARTS:
                texts += 1
                text = mime.part_text(part, limit=SHOW_TEXT * 4)
                entry["text"] = text[:SHOW_TEXT]
                entry["cut"] = len(text) > SHOW_TEXT
        parts.append(entry)
    return headers, parts, list(dict.fromkeys(cut))


def show(ctx: RequestContext, message_id: str) -> Any:
    assert ctx.user is not None
    message = _message(ctx, message_id)
    error = ""
    try:
        content = ctx.services.archive.read_body(message)
        headers, parts, cut = _parts(content)
    except ArchiveError as exc:
        headers, parts, cut, error = [], [], [], archive_error(ctx._, exc)
    # A virus is the super administrator's to release (release() refuses others too).
    virus_kept = kept_from(ctx, message)
    releasable = [] if virus_kept else ctx.shown_recipients(message.recipients)
    # Once a release has reached them all, the button offers another copy, said as such.
    pending = [r for r in releasable if r not in message.released_to]
    symbols, elsewhere = shown_symbols(ctx, message)
    return ctx.render("message", title=message.subject or message.id, message=message,
                      headers=headers, parts=parts, cut=cut, error=error,
                      delivery=delivery(ctx, message), releasable=releasable,
                      pending=pending, released=released_for(ctx, message),
                      virus_kept=virus_kept,
                      symbols=symbols, elsewhere=elsewhere,
                      total=sum(s.score for s in message.symbols))


def kept_from(ctx: RequestContext, message: ArchivedMessage) -> bool:
    """Whether the message is a virus this administrator may neither release nor
    download: as in Proxmox Mail Gateway's virus quarantine, it is the super
    administrator's alone (a download would hand it over as a release does)."""
    assert ctx.user is not None
    return message.virus and not ctx.user.is_super


def shown_symbols(ctx: RequestContext,
                  message: ArchivedMessage) -> tuple[list[Symbol], float | None]:
    """The symbols this administrator may read, and the summed score of those left out
    (None when none is).

    What is shared: SMTP gives a message one reply, so its verdict, reason and total
    score are the message's, seen by every administrator of one of its recipients (the
    reason with other domains' addresses hidden).  The verdict is the judgement for one
    recipient (the most lenient), which adds that recipient's own findings (a peer
    bonus, greylisting, validation); those are shown only to administrators of that
    recipient's domain, and to others as one score without names or reasons.  Messages
    archived before findings named their recipient show every symbol.
    """
    assert ctx.user is not None
    shown: list[Symbol] = []
    hidden: list[Symbol] = []
    for symbol in message.symbols:
        mine = not symbol.recipient or ctx.user.may_manage(domain_of(symbol.recipient))
        (shown if mine else hidden).append(symbol)
    return shown, sum(s.score for s in hidden) if hidden else None


def raw(ctx: RequestContext, message_id: str) -> Any:
    """The stored message as a download (never shown inline: it is hostile content)."""
    message = _message(ctx, message_id)
    if kept_from(ctx, message):
        raise bottle.HTTPError(403, ctx._("Only the super administrator may release or"
                                          " download a message rejected as a virus."))
    try:
        content = ctx.services.archive.read_body(message)
    except ArchiveError as exc:
        raise bottle.HTTPError(404, archive_error(ctx._, exc)) from None
    ctx.audit("archive download", message.id)
    bottle.response.content_type = "application/octet-stream"
    bottle.response.set_header("Content-Disposition",
                               f'attachment; filename="{message.id}.eml"')
    return content


def release_message(ctx: RequestContext, message_id: str) -> Any:
    assert ctx.user is not None
    message = _message(ctx, message_id)
    try:
        # The same function as `portcullis archive release`; a domain administrator's
        # release reaches only recipients in their domains.
        result = asyncio.run(release(ctx.services, message.id, released_by=ctx.user.name,
                                     allowed_domains=ctx.user.domain_filter,
                                     again=ctx.field("again") == "1"))
    except ArchiveError as exc:
        ctx.flash(archive_error(ctx._, exc), "error")
        return ctx.redirect(f"/archive/{message.id}")
    ctx.audit("release", f"{message.id}: {result.describe()}")
    outcome = release_outcome(ctx._, result.describe())
    if result.ok:
        ctx.flash(ctx._("Released: {outcome}", outcome=outcome))
    else:
        ctx.flash(ctx._("Release failed: {outcome}", outcome=outcome), "error")
    return ctx.redirect(f"/archive/{message.id}")


def delivery(ctx: RequestContext, message: ArchivedMessage) -> str:
    """The message's Delivery row.  A release is said to be by an administrator: only
    the super administrator and the one who made it see the account's name (a domain
    administrator must not learn other accounts', another domain's or the super
    administrator's).  A domain administrator reads only what a release did for their
    domains' recipients: nothing, when it was another domain's."""
    assert ctx.user is not None
    text = message.delivery
    if match := _RELEASED.fullmatch(text) or _RELEASE_FAILED.fullmatch(text):
        who = match["who"]
        if not ctx.user.is_super and who != ctx.user.name:
            who = ctx._("an administrator")
        outcome = shown_outcome(ctx, message, match["outcome"])
        if not outcome:
            return ""
        # Released, for this administrator, if it reached one of their recipients.
        reached = outcome.startswith("delivered to ")
        outcome = release_outcome(ctx._, outcome)
        text = ctx._("released by {who}: {outcome}", who=who, outcome=outcome) if reached \
            else ctx._("release by {who} failed: {outcome}", who=who, outcome=outcome)
    return ctx.hide_recipients(text, message.recipients)


def shown_outcome(ctx: RequestContext, message: ArchivedMessage, text: str) -> str:
    """The parts of a release's outcome (``ReleaseResult.describe``) about recipients
    this administrator may see: another domain's recipient's part (its internal host's
    refusal, say) is that domain's alone.  A part that names no recipient continues the
    one before (a reply holding "; ")."""
    shown = {r.lower() for r in ctx.shown_recipients(message.recipients)}
    everyone = {r.lower() for r in message.recipients}
    parts: list[str] = []
    keep = True
    for part in text.split("; "):
        recipient = part.partition(": ")[0].lower()
        if part.startswith("delivered to "):
            delivered = [r for r in part.removeprefix("delivered to ").split(", ")
                         if r.lower() in shown]
            keep = bool(delivered)
            part = f"delivered to {', '.join(delivered)}"
        elif recipient in everyone:
            keep = recipient in shown
        if keep:
            parts.append(part)
    return "; ".join(parts)


def release_outcome(_: Translate, text: str) -> str:
    """A release's outcome (``ReleaseResult.describe``) in the administrator's language;
    an internal host's reply stays as it came."""
    parts = []
    for part in text.split("; "):
        recipient, _colon, reply = part.partition(": ")
        if part.startswith("delivered to "):
            part = _("delivered to {recipients}", recipients=part.removeprefix("delivered to "))
        elif part == "no recipients":
            part = _("no recipients")
        elif reply == "domain is no longer protected":
            part = _("{recipient}: its domain is no longer protected", recipient=recipient)
        elif reply == "refused by the internal host":
            part = _("{recipient}: refused by the internal host", recipient=recipient)
        parts.append(part)
    return "; ".join(parts)


def archive_error(_: Translate, error: ArchiveError) -> str:
    """What the archive or a release refused, in the administrator's language."""
    text = str(error)
    for pattern, say in _ERRORS:
        if match := pattern.fullmatch(text):
            return say(_, match)
    return text
