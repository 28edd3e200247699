"""Administrator accounts (super administrator only): add, set password, assign
domains, remove — the same functions as ``portcullis user``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from portcullis.accounts.passwords import PasswordError
from portcullis.accounts.users import (
    ROLES,
    AccountError,
    add_user,
    list_users,
    remove_user,
    set_domains,
    set_password,
)
from portcullis.addresses import AddressError
from portcullis.directory.domains import list_domains
from portcullis.web.app import Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

USER = "<name:re:[A-Za-z0-9._@-]{1,64}>"


def register(web: WebApp) -> None:
    web.page("/users", "GET", Access.SUPER)(user_list)
    web.page("/users", "POST", Access.SUPER)(create_user)
    web.page(f"/users/{USER}/password", "POST", Access.SUPER)(change_password)
    web.page(f"/users/{USER}/domains", "POST", Access.SUPER)(change_domains)
    web.page(f"/users/{USER}/remove", "POST", Access.SUPER)(delete_user)


def user_list(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    bottle.response.status = status
    return ctx.render("users", title=ctx._("Users"), users=list_users(ctx.store),
                      domains=[d.name for d in list_domains(ctx.store)], roles=ROLES,
                      error=error, form=ctx.form if error else {})


def create_user(ctx: RequestContext) -> Any:
    if ctx.field("password") != ctx.field("password2"):
        return user_list(ctx, ctx._("The two passwords differ."), 400)
    try:
        user = add_user(ctx.store, ctx.field("name"), ctx.field("role"),
                        ctx.form.getall("domains"), password=ctx.field("password"))
    except (AccountError, AddressError, PasswordError) as exc:
        return user_list(ctx, str(exc), 400)
    ctx.audit("user add", f"{user.name} ({user.role}) {' '.join(user.domains)}".strip())
    ctx.flash(ctx._("User {name} added.", name=user.name))
    return ctx.redirect("/users")


def change_password(ctx: RequestContext, name: str) -> Any:
    if ctx.field("password") != ctx.field("password2"):
        return user_list(ctx, ctx._("The two passwords differ."), 400)
    try:
        set_password(ctx.store, name, ctx.field("password"))
    except (AccountError, PasswordError) as exc:
        return user_list(ctx, str(exc), 400)
    ctx.audit("user password", name)
    if ctx.user is not None and name.lower() == ctx.user.name:
        # set_password ended this browser's session too.
        return ctx.redirect("/login")
    ctx.flash(ctx._("Password of {name} changed.", name=name))
    return ctx.redirect("/users")


def change_domains(ctx: RequestContext, name: str) -> Any:
    try:
        user = set_domains(ctx.store, name, ctx.form.getall("domains"))
    except (AccountError, AddressError) as exc:
        return user_list(ctx, str(exc), 400)
    ctx.audit("user domains", f"{user.name}: {' '.join(user.domains)}")
    ctx.flash(ctx._("Domains of {name} changed.", name=user.name))
    return ctx.redirect("/users")


def delete_user(ctx: RequestContext, name: str) -> Any:
    try:
        remove_user(ctx.store, name)
    except AccountError as exc:
        return user_list(ctx, str(exc), 400)
    ctx.audit("user remove", name)
    if ctx.user is not None and name.lower() == ctx.user.name:
        return ctx.redirect("/login")
    ctx.flash(ctx._("User {name} removed.", name=name))
    return ctx.redirect("/users")
