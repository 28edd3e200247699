"""The administrator's global black and white lists (client IP, envelope and header sender)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.addresses import header_addresses
from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Flag, Symbol

if TYPE_CHECKING:
    from portcullis.directory.snapshot import BWList


def listed_on(ctx: Context, bwlist: BWList, senders: list[str]) -> str | None:
    """What put the message on ``bwlist`` ("client 1.2.3.4 (1.2.3.0/24)"), or None."""
    hit = bwlist.match_ip(ctx.ip)
    if hit:
        return f"client {ctx.client_ip} ({hit})"
    for sender in senders:
        hit = bwlist.match_sender(sender)
        if hit:
            return f"sender {sender} ({hit})"
    return None


class BlackWhiteList(Check):
    name = "bwlist"
    stage = Stage.DATA
    inline = True
    description = "client IP, envelope sender or From: on the black or white list"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        envelope = [ctx.mail_from] if ctx.mail_from else []
        header_from = [addr for _, addr in header_addresses(ctx.message.get_all("From", []))
                       if "@" in addr]
        found: list[Symbol] = []
        # The header From is trivially forged, so it may black-list but never white-list.
        for kind, bwlist, flag, score, senders in (
                ("white", ctx.snapshot.white, Flag.WHITELIST, -100.0, envelope),
                ("black", ctx.snapshot.black, Flag.BLACKLIST, 100.0, envelope + header_from)):
            what = listed_on(ctx, bwlist, senders)
            if what:
                label = "White list" if kind == "white" else "Black list"
                found.append(Symbol(f"{kind.upper()}LIST", score, f"{label}: {what}", flag))
        return found


class EnvelopeWhiteList(Check):
    """The white list already at RCPT, so that nothing refuses a white-listed client or
    envelope sender there (DNSBL, greylisting, harvest blocks): the FAQ's "accept
    everything (except viruses and unwanted attachments) from that server".  It scores
    nothing; the DATA-stage check above gives the score."""

    name = "bwlist_rcpt"
    stage = Stage.RCPT
    inline = True
    description = "client IP or envelope sender on the white list (at RCPT)"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        what = listed_on(ctx, ctx.snapshot.white, [ctx.mail_from] if ctx.mail_from else [])
        if what is None:
            return []
        return [Symbol("WHITELIST_ENVELOPE", 0.0, f"White list: {what}", Flag.WHITELIST)]
