"""Greylisting and address-harvest detection: what the defenses remember, and the two
corrections an administrator makes (forget greylist entries, lift a harvest block).

The same functions as ``portcullis greylist show|forget`` and ``portcullis harvest
show|unblock``.  A domain administrator sees the greylist entries of mail for their own
domains (each entry names its recipient); the harvest counts are kept per client, not per
recipient domain, so they, the auto-whitelisted networks and both corrections (which act
on a client for every domain) belong to the super administrator.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bottle

from portcullis.addresses import AddressError
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, parse_client
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
    trusted, clients, totals = [], [], {}
    if ctx.user.is_super:
        trusted, totals["trusted"] = trusted_networks(ctx, settings["greylist_awl_passes"])
        clients, totals["clients"] = harvest_clients(ctx)
    bottle.response.status = status
    return ctx.render(
        "defenses", title=ctx._("Defenses"), settings=settings, entries=entries,
        limit=LIMIT, client=client, network=network, trusted=trusted, clients=clients,
        totals=totals, error=error)


# Mail from anywhere fills the two tables below (a botnet's dictionary attack, one row
# per client): the page reads the first LIMIT rows of each and counts the rest, where
# harvest.clients and Greylist.trusted_networks read them all (200,000 harvest rows made
# a 96 MB page and took 380 MB in the web process).

def trusted_networks(ctx: RequestContext, passes: int) -> tuple[list[dict], int]:
    """The networks auto-whitelisted by their passes, most passes first, and how many."""
    if not passes:
        return [], 0
    rows = ctx.store.query("SELECT network, passes, first_seen, last_seen FROM greylist_awl"
                           " WHERE passes >= ? ORDER BY passes DESC LIMIT ?", (passes, LIMIT))
    total = ctx.store.scalar("SELECT COUNT(*) FROM greylist_awl WHERE passes >= ?", (passes,))
    return [dict(row) for row in rows], int(total)


def harvest_clients(ctx: RequestContext) -> tuple[list[dict], int]:
    """Clients with invalid recipients counted, blocked ones first, and how many."""
    now = time.time()
    rows = ctx.store.query("SELECT client, invalid, window_start, blocked_until FROM harvest"
                           " ORDER BY blocked_until DESC, invalid DESC LIMIT ?", (LIMIT,))
    total = ctx.store.scalar("SELECT COUNT(*) FROM harvest")
    return [dict(row) | {"blocked": row["blocked_until"] > now} for row in rows], int(total)


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
