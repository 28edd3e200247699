"""Greylisting and address-harvest detection: what the defenses remember, and the two
corrections an administrator makes (forget greylist entries, lift a harvest block).

The same functions as ``portcullis greylist show|forget`` and ``portcullis harvest
show|unblock``.  A domain administrator sees the greylist entries of mail for their own
domains (each entry names its recipient); the harvest counts are kept per client, not per
recipient domain, so they, the auto-whitelisted networks and both corrections (which act
on a client for every domain) belong to the super administrator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from portcullis.addresses import AddressError
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, GreylistPolicy, parse_client
from portcullis.directory.settings import get_settings
from portcullis.web.app import Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

LIMIT = 200


def register(web: WebApp) -> None:
    web.page("/defenses", "GET")(defenses_page)
    web.page("/defenses/greylist/forget", "POST", Access.SUPER)(greylist_forget)
    web.page("/defenses/harvest/unblock", "POST", Access.SUPER)(harvest_unblock)


def defenses_page(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    assert ctx.user is not None
    settings = get_settings(ctx.store, ctx.config)
    greylist = Greylist(ctx.store)
    client = ctx.query.get("client", "").strip()
    network = ""
    if client:
        try:
            network = parse_client(client)
        except AddressError as exc:
            error, status = str(exc), 400
    entries = [] if error and client else greylist.entries(LIMIT, network,
                                                           ctx.user.domain_filter)
    trusted, clients = [], []
    if ctx.user.is_super:
        trusted = greylist.trusted_networks(GreylistPolicy.from_settings(settings))
        clients = harvest.clients(ctx.store)
    bottle.response.status = status
    return ctx.render(
        "defenses", title=ctx._("Defenses"), settings=settings, entries=entries,
        limit=LIMIT, client=client, network=network, trusted=trusted, clients=clients,
        error=error)


def greylist_forget(ctx: RequestContext) -> Any:
    given = ctx.field("client").strip()
    try:
        network = "" if given == "all" else parse_client(given)
    except AddressError as exc:
        return defenses_page(ctx, str(exc), 400)
    removed = Greylist(ctx.store).forget(network)
    ctx.audit("greylist forget", f"{network or 'all'}: {removed}")
    ctx.flash(ctx._("{count} greylist entries of {network} forgotten.", count=removed,
                    network=network) if network else
              ctx._("All {count} greylist entries forgotten.", count=removed))
    return ctx.redirect("/defenses")


def harvest_unblock(ctx: RequestContext) -> Any:
    address = ctx.field("ip").strip()
    if not address or not harvest.unblock(ctx.store, address):
        return defenses_page(ctx, ctx._("{ip} is not counted or blocked.", ip=address), 404)
    ctx.audit("harvest unblock", address)
    ctx.flash(ctx._("{ip} unblocked: its invalid recipients are no longer counted.",
                    ip=address))
    return ctx.redirect("/defenses")
