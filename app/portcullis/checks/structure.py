"""Structural oddities of a message: broken MIME, missing mandatory headers, odd nesting."""

from __future__ import annotations

from email.message import Message

from portcullis.checks.base import Check, Context, Stage
from portcullis.mime import MAX_DEPTH, MAX_PARSED_PARTS, too_many_parts, unparseable, walk
from portcullis.policy import Symbol


class MessageStructure(Check):
    name = "structure"
    stage = Stage.DATA
    inline = True
    description = "malformed MIME, missing Date/From/Message-ID, absurd nesting"
    offline = True

    async def check(self, ctx: Context) -> list[Symbol]:
        message = ctx.message
        found: list[Symbol] = []
        if not message.get("From"):
            found.append(Symbol("MISSING_FROM", 2.0, "no From: header"))
        if not message.get("Date"):
            found.append(Symbol("MISSING_DATE", 1.0, "no Date: header"))
        if not message.get("Message-ID"):
            found.append(Symbol("MISSING_MID", 0.5, "no Message-ID: header"))
        depth, defects = _nesting_and_own_defects(message)
        if defects:
            found.append(Symbol("MIME_DEFECTS", min(0.5 * defects, 3.0),
                                f"{defects} MIME defect(s)"))
        if too_many_parts(message):
            found.append(Symbol("MIME_TOO_MANY_PARTS", 5.0,
                                f"more than {MAX_PARSED_PARTS} MIME parts"))
        elif depth >= MAX_DEPTH or unparseable(message):
            found.append(Symbol("MIME_TOO_DEEP", 5.0, f"MIME nesting {MAX_DEPTH} or deeper"))
        return found


def _nesting_and_own_defects(message: Message) -> tuple[int, int]:
    """The deepest MIME nesting (attached messages included: absurd nesting is absurd
    anywhere) and the number of MIME defects of the message's own structure.  What a
    message/* part holds is another message (a forwarded newsletter, a bounce's
    original): its defects are its author's, not this sender's, and the attachment
    checks judge it apart."""
    depth = defects = 0
    attached_at: int | None = None      # depth of the message/* part being passed over
    for part_depth, part in walk(message):
        depth = max(depth, part_depth)
        if attached_at is not None and part_depth > attached_at:
            continue        # walk() is depth-first: the attached message's parts follow it
        attached_at = part_depth if part.get_content_maintype() == "message" else None
        defects += len(part.defects)
    return depth, defects
