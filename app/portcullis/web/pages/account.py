"""Logging in and out, first-start setup, and changing one's own password."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import bottle

from portcullis.accounts import sessions, setup, throttle
from portcullis.accounts.passwords import PasswordError
from portcullis.accounts.users import (
    AccountError,
    authenticate,
    has_super_admin,
    password_stamp,
    set_password,
)
from portcullis.web import security
from portcullis.web.app import LOGOUT_PATH, Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

log = logging.getLogger(__name__)
# A name as long as the form allows (100 KiB before login) would be a journal line as
# long, at every try, from anyone; no account has a longer name (the throttle keeps 100).
LOGGED_NAME_CHARS = 100


def register(web: WebApp) -> None:
    web.page("/login", "GET", Access.ANYONE)(login_form)
    web.page("/login", "POST", Access.ANYONE)(login)
    web.page("/setup", "GET", Access.ANYONE)(setup_form)
    web.page("/setup", "POST", Access.ANYONE)(run_setup)
    # Anyone: a browser whose session has already ended is logged out too (its cookie
    # cleared); see WebApp._needs_token for why that post needs no token.
    web.page(LOGOUT_PATH, "POST", Access.ANYONE)(logout)
    web.page("/account", "GET")(account_page)
    web.page("/account/password", "POST")(change_password)


def _device_token(ctx: RequestContext, name: str) -> str:
    stamp = password_stamp(ctx.store, name)
    return security.device_token(ctx.web.form_secret, name, stamp) if stamp else ""


def _known_device(ctx: RequestContext, name: str) -> bool:
    given = bottle.request.get_cookie(security.DEVICE_COOKIE) or ""
    return security.tokens_match(given, _device_token(ctx, name))


def _remember_device(ctx: RequestContext, name: str) -> None:
    ctx.set_cookie(security.DEVICE_COOKIE, _device_token(ctx, name),
                   max_age=security.DEVICE_DAYS * 86400)


def _start_session(ctx: RequestContext, name: str) -> None:
    # A fresh token at every login: a token planted before login is worth nothing.
    if ctx.token:
        sessions.end_session(ctx.store, ctx.token)
    token, session = sessions.create_session(ctx.store, name, ctx.client_ip)
    ctx.set_cookie(security.SESSION_COOKIE, token)
    ctx.token, ctx.session = token, session


def login_form(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    if not has_super_admin(ctx.store):
        return ctx.redirect("/setup")
    if ctx.user is not None and not error:
        return ctx.redirect("/")
    bottle.response.status = status
    return ctx.render("login", title=ctx._("Log in"), error=error,
                      username=ctx.field("username") if error else "",
                      next=security.safe_next(ctx.query.get("next", "") or
                                              ctx.field("next")))


def login(ctx: RequestContext) -> Any:
    name = ctx.field("username").strip()
    password = ctx.field("password")
    wait = throttle.claim_attempt(ctx.store, name, ctx.client_ip,
                                  known_device=_known_device(ctx, name))
    if wait > 0:
        log.warning("%s: login for %r refused: too many failed attempts", ctx.client_ip,
                    name[:LOGGED_NAME_CHARS])
        minutes = max(1, round(wait / 60))
        return login_form(ctx, ctx._("Too many failed logins. Try again in {minutes}"
                                     " minute(s).", minutes=minutes), 429)
    user = authenticate(ctx.store, name, password) if name and password else None
    if user is None:            # counted already (claim_attempt)
        log.warning("%s: failed login for %r", ctx.client_ip, name[:LOGGED_NAME_CHARS])
        return login_form(ctx, ctx._("Wrong user name or password."), 401)
    throttle.record_success(ctx.store, name, ctx.client_ip)
    _remember_device(ctx, user.name)
    _start_session(ctx, user.name)
    ctx.user = user
    ctx.audit("login")
    return ctx.redirect(security.safe_next(ctx.field("next")))


def logout(ctx: RequestContext) -> Any:
    if ctx.session is not None:
        ctx.audit("logout")
        sessions.end_session(ctx.store, ctx.token)
    # Also when the session had ended already: the browser keeps no dead cookie.
    bottle.response.delete_cookie(security.SESSION_COOKIE, path="/")
    return ctx.redirect("/login")


def setup_form(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    if has_super_admin(ctx.store):
        return ctx.redirect("/login")
    try:
        setup.ensure_code(ctx.store, ctx.config.store.dir)
    except OSError as exc:
        error = ctx._("No setup code could be written: {error}", error=str(exc))
        status = 500
    bottle.response.status = status
    return ctx.render("setup", title=ctx._("First start"), error=error,
                      username=ctx.field("username") or "admin",
                      code_file=str(setup.code_path(ctx.config.store.dir)))


def run_setup(ctx: RequestContext) -> Any:
    if has_super_admin(ctx.store):
        return ctx.redirect("/login")
    # Guessing the setup code is throttled like guessing a password, per address only:
    # its 100 bits need no limit for all addresses together, and one would let anyone
    # on the network keep the owner from setting the appliance up (50 wrong codes).
    wait = throttle.retry_after(ctx.store, "(setup)", ctx.client_ip, known_device=True)
    if wait > 0:
        return setup_form(ctx, ctx._("Too many wrong setup codes. Try again in {minutes}"
                                     " minute(s).", minutes=max(1, round(wait / 60))), 429)
    name = ctx.field("username").strip()
    password = ctx.field("password")
    if password != ctx.field("password2"):
        return setup_form(ctx, ctx._("The two passwords differ."), 400)
    try:
        user = setup.complete_setup(ctx.store, ctx.config.store.dir, ctx.field("code"), name,
                                    password)
    except setup.SetupError as exc:
        throttle.record_failure(ctx.store, "(setup)", ctx.client_ip)
        log.warning("%s: first-start setup refused: %s", ctx.client_ip, exc)
        return setup_form(ctx, str(exc), 403)
    except (AccountError, PasswordError) as exc:
        return setup_form(ctx, str(exc), 400)
    _start_session(ctx, user.name)
    ctx.user = user
    ctx.audit("setup", "first super administrator created")
    return ctx.redirect("/")


def account_page(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    bottle.response.status = status
    return ctx.render("account", title=ctx._("My account"), error=error)


def change_password(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    # The current password is guessed here as at the login (a session left open or
    # stolen): the same limits apply.
    wait = throttle.claim_attempt(ctx.store, ctx.user.name, ctx.client_ip,
                                  known_device=_known_device(ctx, ctx.user.name))
    if wait > 0:
        return account_page(ctx, ctx._("Too many failed logins. Try again in {minutes}"
                                       " minute(s).", minutes=max(1, round(wait / 60))), 429)
    if authenticate(ctx.store, ctx.user.name, ctx.field("current")) is None:
        return account_page(ctx, ctx._("The current password is wrong."), 403)
    throttle.record_success(ctx.store, ctx.user.name, ctx.client_ip)
    if ctx.field("password") != ctx.field("password2"):
        return account_page(ctx, ctx._("The two passwords differ."), 400)
    try:
        set_password(ctx.store, ctx.user.name, ctx.field("password"))
    except (AccountError, PasswordError) as exc:
        return account_page(ctx, str(exc), 400)
    ctx.audit("password", "own password changed")
    # set_password ended every session of this user and voided every browser's device
    # cookie; this browser gets both anew.
    _remember_device(ctx, ctx.user.name)
    _start_session(ctx, ctx.user.name)
    ctx.flash(ctx._("Your password was changed."))
    return ctx.redirect("/account")
