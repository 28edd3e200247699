"""Relays: internal networks allowed to send outbound mail through the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from portcullis.addresses import AddressError
from portcullis.directory import relays
from portcullis.web.app import Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp


def register(web: WebApp) -> None:
    web.page("/relays", "GET", Access.SUPER)(relay_list)
    web.page("/relays", "POST", Access.SUPER)(add_relay)
    web.page("/relays/remove", "POST", Access.SUPER)(remove_relay)


def relay_list(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    bottle.response.status = status
    return ctx.render("relays", title=ctx._("Relays"), relays=relays.list_relays(ctx.store),
                      error=error, form=ctx.form if error else {})


def add_relay(ctx: RequestContext) -> Any:
    try:
        network = relays.add_relay(ctx.store, ctx.field("network"), ctx.field("note").strip())
    except AddressError as exc:
        return relay_list(ctx, str(exc), 400)
    ctx.audit("relay add", network)
    ctx.flash(ctx._("Relay {network} added.", network=network))
    return ctx.redirect("/relays")


def remove_relay(ctx: RequestContext) -> Any:
    try:
        relays.remove_relay(ctx.store, ctx.field("network"))
    except AddressError as exc:
        return relay_list(ctx, str(exc), 400)
    ctx.audit("relay remove", ctx.field("network"))
    ctx.flash(ctx._("Relay {network} removed.", network=ctx.field("network")))
    return ctx.redirect("/relays")
