"""The administrator's global black and white lists (client IP, envelope and header sender)."""

from __future__ import annotations

from email.utils import getaddresses

from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Flag, Symbol


class BlackWhiteList(Check):
    name = "bwlist"
    stage = Stage.DATA
    description = "client IP, envelope sender or From: on the black or white list"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        envelope = [ctx.mail_from] if ctx.mail_from else []
        header_from = [addr for _, addr in getaddresses(ctx.message.get_all("From", []))
                       if "@" in addr]
        found: list[Symbol] = []
        # The header From is trivially forged, so it may black-list but never white-list.
        for kind, bwlist, flag, score, senders in (
                ("white", ctx.snapshot.white, Flag.WHITELIST, -100.0, envelope),
                ("black", ctx.snapshot.black, Flag.BLACKLIST, 100.0, envelope + header_from)):
            hit = bwlist.match_ip(ctx.ip)
            what = f"client {ctx.client_ip}"
            if hit is None:
                for sender in senders:
                    hit = bwlist.match_sender(sender)
                    if hit:
                        what = f"sender {sender}"
                        break
            if hit:
                label = "White list" if kind == "white" else "Black list"
                found.append(Symbol(f"{kind.upper()}LIST", score,
                                    f"{label}: {what} ({hit})", flag))
        return found
