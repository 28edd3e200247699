"""The administrator's global black and white lists (client IP, envelope and header sender)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from portcullis.addresses import IPAddress, header_addresses
from portcullis.checks.base import Check, Context, Stage
from portcullis.mailauth import spf
from portcullis.mailauth.spf import SpfResult
from portcullis.policy import Flag, Symbol

if TYPE_CHECKING:
    from portcullis.directory.snapshot import BWList
    from portcullis.services import Services

SPF_ROUNDS = 2   # resolver timeouts an SPF answer may take before it is done without


def listed_on(ctx: Context, bwlist: BWList, senders: list[str]) -> str | None:
    """What put the message on ``bwlist`` ("client 1.2.3.4 (1.2.3.0/24)"), or None."""
    return _client_listed(ctx, bwlist) or _sender_listed(bwlist, senders)


async def whitelisted(ctx: Context, services: Services) -> str | None:
    """What puts the client or the envelope sender on the white list, or None.

    A sender is what the client writes in MAIL FROM; its address is not.  So a sender on
    the white list vouches for nothing from a client on the black list: the FAQ's
    black-listed host is banished "ever again", and it got back in by writing a
    white-listed sender (a newsletter's domain, or the protected domain itself).  Nor
    from a client the sender's own SPF record refuses (fail): anyone could write
    news@bank.example, white-listed for the bank's newsletter, and be let past every
    check (SpamAssassin's whitelist_auth, rspamd's whitelist with valid_spf, go further
    and ask for a pass; a sender without SPF, the FAQ's poorly configured newsletter,
    stays white-listed here).
    """
    return (await white_listing(ctx, services))[0]


async def white_listing(ctx: Context, services: Services) -> tuple[str | None, str]:
    """``whitelisted``'s answer, and why a white-listed sender was not honoured ('' if
    none was passed over): said with the message, or an administrator who white-listed a
    newsletter's domain could not tell why its mail is judged after all."""
    assert ctx.snapshot is not None
    client = _client_listed(ctx, ctx.snapshot.white)
    if client is not None:
        return client, ""
    sender = _sender_listed(ctx.snapshot.white, [ctx.mail_from] if ctx.mail_from else [])
    if sender is None:
        return None, ""
    if ctx.snapshot.black.match_ip(ctx.ip):
        return None, f"{sender} is not honoured from a black-listed client"
    if ctx.ip is not None and \
            await spf_within(services, ctx.ip, ctx.mail_from, ctx.helo) is SpfResult.FAIL:
        return None, (f"{sender} is not honoured from {ctx.client_ip}, which its SPF"
                      " record refuses; white-list the sending server's address instead")
    return sender, ""


async def spf_within(services: Services, ip: IPAddress, mail_from: str, helo: str
                     ) -> SpfResult | None:
    """The SPF result for the sender of ``mail_from`` (or HELO) sent by ``ip``, or None
    when it does not come within ``SPF_ROUNDS`` resolver timeouts."""
    sender, domain = spf.sender_identity(mail_from, helo)
    try:
        async with asyncio.timeout(services.config.dns.timeout * SPF_ROUNDS):
            outcome = await spf.check_host(services.resolver, ip, domain, sender, helo)
    except TimeoutError:
        return None
    return outcome.result


def _client_listed(ctx: Context, bwlist: BWList) -> str | None:
    hit = bwlist.match_ip(ctx.ip)
    return f"client {ctx.client_ip} ({hit})" if hit else None


def _sender_listed(bwlist: BWList, senders: list[str]) -> str | None:
    for sender in senders:
        hit = bwlist.match_sender(sender)
        if hit:
            return f"sender {sender} ({hit})"
    return None


class BlackWhiteList(Check):
    name = "bwlist"
    stage = Stage.DATA
    description = "client IP, envelope sender or From: on the black or white list"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        envelope = [ctx.mail_from] if ctx.mail_from else []
        header_from = [addr for _, addr in header_addresses(ctx.message.get_all("From", []))
                       if "@" in addr]
        found: list[Symbol] = []
        white, passed_over = await white_listing(ctx, self.services)
        if white:
            found.append(Symbol("WHITELIST", -100.0, f"White list: {white}", Flag.WHITELIST))
        elif passed_over:
            found.append(Symbol("WHITELIST_NOT_HONOURED", 0.0, f"White list: {passed_over}"))
        # The header From is trivially forged, so it may black-list but never white-list.
        black = listed_on(ctx, ctx.snapshot.black, envelope + header_from)
        if black:
            found.append(Symbol("BLACKLIST", 100.0, f"Black list: {black}", Flag.BLACKLIST))
        return found


class EnvelopeWhiteList(Check):
    """The white list already at RCPT, so that nothing refuses a white-listed client or
    envelope sender there (DNSBL, greylisting, harvest blocks): the FAQ's "accept
    everything (except viruses and unwanted attachments) from that server".  It scores
    nothing; the DATA-stage check above gives the score."""

    name = "bwlist_rcpt"
    stage = Stage.RCPT
    description = "client IP or envelope sender on the white list (at RCPT)"

    async def check(self, ctx: Context) -> list[Symbol]:
        what = await whitelisted(ctx, self.services)
        if what is None:
            return []
        return [Symbol("WHITELIST_ENVELOPE", 0.0, f"White list: {what}", Flag.WHITELIST)]
