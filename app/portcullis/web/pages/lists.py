"""The global black and white lists (domains, addresses, IP addresses and networks).

They affect every protected domain, so only the super administrator changes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from portcullis.addresses import AddressError
from portcullis.directory import bwlists
from portcullis.web.app import Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

KIND = "<kind:re:black|white>"


def register(web: WebApp) -> None:
    web.page("/lists", "GET", Access.SUPER)(show_lists)
    web.page(f"/lists/{KIND}", "POST", Access.SUPER)(add_entry)
    web.page(f"/lists/{KIND}/remove", "POST", Access.SUPER)(remove_entry)


def show_lists(ctx: RequestContext, error: str = "", kind: str = "",
               status: int = 200) -> Any:
    bottle.response.status = status
    return ctx.render("lists", title=ctx._("Black/White lists"),
                      entries={k: bwlists.list_entries(ctx.store, k) for k in bwlists.KINDS},
                      error=error, error_kind=kind, form=ctx.form if error else {})


def add_entry(ctx: RequestContext, kind: str) -> Any:
    try:
        entry = bwlists.add_entry(ctx.store, kind, ctx.field("entry"),
                                  ctx.field("note").strip())
    except AddressError as exc:
        return show_lists(ctx, str(exc), kind, 400)
    ctx.audit(f"{kind} list add", entry.text)
    ctx.flash(ctx._("{entry} added to the black list.", entry=entry.text) if kind == "black"
              else ctx._("{entry} added to the white list.", entry=entry.text))
    return ctx.redirect("/lists")


def remove_entry(ctx: RequestContext, kind: str) -> Any:
    try:
        bwlists.remove_entry(ctx.store, kind, ctx.field("entry"))
    except AddressError as exc:
        return show_lists(ctx, str(exc), kind, 400)
    ctx.audit(f"{kind} list remove", ctx.field("entry"))
    entry_text = ctx.field("entry")
    ctx.flash(ctx._("{entry} removed from the black list.", entry=entry_text) if kind == "black"
              else ctx._("{entry} removed from the white list.", entry=entry_text))
    return ctx.redirect("/lists")
