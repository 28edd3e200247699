"""Protected domains: internal mail host, filtering and validation switches, and the
valid-address list (pasted, cleaned by the FAQ's rules, refused lines named)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import bottle

from portcullis.accounts.users import list_users
from portcullis.addresses import AddressError, domain_of
from portcullis.config import HostPort
from portcullis.directory import domains, valid_addresses
from portcullis.web import display
from portcullis.web.app import MAX_FORM_BYTES, Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

DOMAIN = "<name:re:[A-Za-z0-9.-]{1,253}>"
SHOW_ADDRESSES = 500
# One paste is checked and stored in one piece, holding every line and every refused
# line's text at once (about 200 bytes a line): beyond this many lines the process of a
# few pasting administrators could outgrow its memory, so a longer list is refused
# whole and goes in parts or through the CLI, which reads a file.
MAX_PASTED_LINES = 100_000
SHOW_IMPORT_ERRORS = 100            # refused lines listed; the others are counted
ECHO_PASTE_CHARS = 2 * 1024 * 1024  # a longer paste is not sent back into the form
# An address has at most 254 characters; a longer line leaves room for a name.  Checking
# a longer line costs many times its size (one of 12 MB, split at its blanks, took 300 MB).
MAX_LINE_CHARS = 1000
# What str.splitlines splits at ("\r\n" is one line end).
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
LINE = re.compile(rf"([^{LINE_BREAKS}]*)(?:\r\n|[{LINE_BREAKS}]|\Z)")
# The ports a domain administrator may give their mail host: SMTP, submission and the
# usual alternative SMTP port.  Any other (a database's, SSH's, a web server's on the
# internal network) would have the gateway speak SMTP to a service that is no mail
# server; the super administrator may set any port.
DOMAIN_ADMIN_PORTS = (25, 587, 2525)


def register(web: WebApp) -> None:
    web.page("/domains")(domain_list)
    web.page("/domains", "POST", Access.SUPER)(add_domain)
    web.page(f"/domains/{DOMAIN}")(domain_page)
    web.page(f"/domains/{DOMAIN}", "POST")(change_domain)
    web.page(f"/domains/{DOMAIN}/remove", "POST", Access.SUPER)(remove_domain)
    web.page(f"/domains/{DOMAIN}/addresses", "POST")(import_addresses)
    web.page(f"/domains/{DOMAIN}/addresses/remove", "POST")(remove_address)


def _switches(ctx: RequestContext) -> dict[str, bool]:
    # An unticked checkbox is not sent at all: absent means off.
    return {name: ctx.field(name) == "on" for name in domains.SWITCHES}


def domain_list(ctx: RequestContext, error: str = "", status: int = 200) -> Any:
    assert ctx.user is not None
    found = domains.list_domains(ctx.store, ctx.user.domain_filter)
    counts = {d.name: valid_addresses.count_addresses(ctx.store, d.name) for d in found}
    bottle.response.status = status
    return ctx.render("domains", title=ctx._("Domains"), domains=found, counts=counts,
                      error=error, form=ctx.form if error else {})


def add_domain(ctx: RequestContext) -> Any:
    try:
        domain = domains.add_domain(ctx.store, ctx.field("name"), ctx.field("mail_host"),
                                    **_switches(ctx))
    except AddressError as exc:
        return domain_list(ctx, str(exc), 400)
    ctx.audit("domain add", f"{domain.name} mail host {domain.mail_host}")
    ctx.flash(ctx._("Domain {name} added.", name=domain.name))
    return ctx.redirect(f"/domains/{domain.name}")


def domain_page(ctx: RequestContext, name: str, error: str = "", import_errors: Any = None,
                pasted: str = "", status: int = 200, settings_sent: bool = False) -> Any:
    """The domain's page; ``settings_sent``: its settings form was refused, and shows
    what was sent (a refusal must not quietly undo the other fields' changes)."""
    domain = ctx.require_domain(name)
    # A host an older release stored, which this one refuses (0x7f000001: getaddrinfo
    # reads it as 127.0.0.1): the gateway defers the domain's mail until it is corrected.
    try:
        domains.parse_mail_host(str(domain.mail_host))
        host_problem = ""
    except AddressError as exc:
        host_problem = str(exc)
    if settings_sent:
        host_text, switches = ctx.field("mail_host"), _switches(ctx)
    else:
        host_text = str(domain.mail_host)
        switches = {s: getattr(domain, s) for s in domains.SWITCHES}
    count = valid_addresses.count_addresses(ctx.store, domain.name)
    wanted = ctx.query.get("filter", "").strip().lower()
    addresses = first_addresses(ctx, domain.name, wanted, SHOW_ADDRESSES + 1)
    admins = [u for u in list_users(ctx.store) if domain.name in u.domains] \
        if ctx.user and ctx.user.is_super else []
    bottle.response.status = status
    return ctx.render("domain", title=domain.name, domain=domain, count=count,
                      addresses=addresses[:SHOW_ADDRESSES], more=len(addresses) > SHOW_ADDRESSES,
                      filter=wanted, admins=admins, error=error,
                      import_errors=import_errors or [], pasted=pasted,
                      defers_all=valid_addresses.defers_all_mail(ctx.store, domain),
                      max_lines=MAX_PASTED_LINES,
                      host_text=host_text, switches=switches, host_problem=host_problem,
                      max_size=display.size(MAX_FORM_BYTES),
                      ports=", ".join(map(str, DOMAIN_ADMIN_PORTS)))


def first_addresses(ctx: RequestContext, domain: str, wanted: str, limit: int) -> list[str]:
    """The domain's first ``limit`` valid addresses holding ``wanted``, in order.  Only
    these are read: a list imported with the CLI may be long, and reading all of it at
    each view took 140 MB for 500,000 addresses.  (Addresses are stored lower-cased, as
    ``wanted`` is; LIKE is case-sensitive in PostgreSQL.)"""
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", wanted) + "%"
    rows = ctx.store.query("SELECT address FROM valid_addresses WHERE domain = ? AND address"
                           " LIKE ? ESCAPE '\\' ORDER BY address LIMIT ?",
                           (domain, pattern, limit))
    return [row["address"] for row in rows]


def change_domain(ctx: RequestContext, name: str) -> Any:
    domain = ctx.require_domain(name)
    assert ctx.user is not None
    try:
        mail_host = domains.parse_mail_host(ctx.field("mail_host"))
        if not ctx.user.is_super and mail_host != domain.mail_host:
            check_domain_admins_host(ctx, mail_host)
        updated = domains.update_domain(ctx.store, domain.name, str(mail_host),
                                        **_switches(ctx))
    except AddressError as exc:
        return domain_page(ctx, name, error=str(exc), status=400, settings_sent=True)
    ctx.audit("domain set", f"{updated.name}: {updated.to_json()}")
    ctx.flash(ctx._("Domain {name} updated.", name=updated.name))
    return ctx.redirect(f"/domains/{updated.name}")


def check_domain_admins_host(ctx: RequestContext, mail_host: HostPort) -> None:
    """Refuse (AddressError) a mail host a domain administrator may not set: the
    appliance itself (its outbound Postfix, resolver, web UI), or a port other than
    DOMAIN_ADMIN_PORTS.  A host the super administrator set stays theirs to keep."""
    if domains.is_this_appliance(mail_host):
        raise AddressError(ctx._("The mail host of a domain cannot be this appliance"
                                 " itself; ask the administrator of the appliance."))
    if mail_host.port not in DOMAIN_ADMIN_PORTS:
        raise AddressError(ctx._(
            "The mail host's port may be {ports} only; ask the administrator of the"
            " appliance for another.", ports=", ".join(map(str, DOMAIN_ADMIN_PORTS))))


def remove_domain(ctx: RequestContext, name: str) -> Any:
    domain = ctx.require_domain(name)
    if ctx.field("confirm") != domain.name:
        return domain_page(ctx, name, error=ctx._(
            "Type the domain name to confirm that it should no longer be protected."),
            status=400)
    domains.remove_domain(ctx.store, domain.name)
    ctx.audit("domain remove", domain.name)
    ctx.flash(ctx._("Domain {name} removed.", name=domain.name))
    return ctx.redirect("/domains")


def line_count(text: str) -> int:
    """The number of lines ``text.splitlines()`` gives, without making them."""
    breaks = sum(text.count(end) for end in LINE_BREAKS) - text.count("\r\n")
    return breaks + (bool(text) and not text.endswith(tuple(LINE_BREAKS)))


def first_long_line(text: str) -> int:
    """The number of the first line longer than MAX_LINE_CHARS (0: none), as
    ``text.splitlines()`` numbers them from 1, without making them."""
    for number, line in enumerate(LINE.finditer(text), start=1):
        if line.end(1) - line.start(1) > MAX_LINE_CHARS:
            return number
    return 0


def import_addresses(ctx: RequestContext, name: str) -> Any:
    domain = ctx.require_domain(name)
    text = ctx.field("addresses")
    replace = ctx.field("replace") == "on"
    if not text.strip():
        return domain_page(ctx, name, error=ctx._("Paste at least one address."), status=400)
    lines = line_count(text)
    if lines > MAX_PASTED_LINES:
        return domain_page(ctx, name, error=ctx._(
            "Nothing was stored: the list has {lines} lines, and one paste may have at most"
            " {limit}. Paste it in parts (each part is added to the list), or import the"
            " whole list on the appliance with: portcullis valid import {domain} FILE"
            " (with --replace to replace the list).", lines=f"{lines:,}",
            limit=f"{MAX_PASTED_LINES:,}", domain=domain.name), status=413)
    long_line = first_long_line(text)
    if long_line:
        return domain_page(ctx, name, error=ctx._(
            "Nothing was stored: line {number} is longer than {limit} characters, which no"
            " address is.", number=long_line, limit=MAX_LINE_CHARS), status=400)
    result = valid_addresses.import_addresses(ctx.store, domain.name, text, replace=replace)
    if result.errors:
        shown = result.errors[:SHOW_IMPORT_ERRORS]
        if len(result.errors) > len(shown):
            shown.append(ctx._("... and {count} more line(s).",
                               count=len(result.errors) - len(shown)))
        return domain_page(ctx, name, error=ctx._(
            "Nothing was stored: {count} line(s) could not be used. Correct them and send"
            " the list again.", count=len(result.errors)),
            import_errors=shown, pasted=text if len(text) <= ECHO_PASTE_CHARS else "",
            status=400)
    ctx.audit("valid addresses", f"{domain.name}: {result.added} added, {result.unchanged}"
              f" unchanged{' (list replaced)' if replace else ''}")
    ctx.flash(ctx._("{added} address(es) added, {unchanged} already listed.",
                    added=result.added, unchanged=result.unchanged))
    return ctx.redirect(f"/domains/{domain.name}")


def remove_address(ctx: RequestContext, name: str) -> Any:
    domain = ctx.require_domain(name)
    address = ctx.field("address").strip().lower()
    if domain_of(address) != domain.name:
        raise bottle.HTTPError(403, ctx._("That address is not in this domain."))
    if valid_addresses.remove_address(ctx.store, address):
        ctx.audit("valid address remove", address)
        ctx.flash(ctx._("{address} removed.", address=address))
        if valid_addresses.defers_all_mail(ctx.store, domain):
            ctx.flash(ctx._("That was the last address on the list, by which alone this"
                            " domain's recipients are validated: all its mail is now"
                            " deferred (451) until an address is added or SMTP validation"
                            " is turned on."), "error")
    return ctx.redirect(f"/domains/{domain.name}")
