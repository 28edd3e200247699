"""Server admin: ClamAV status and "update now", update history, service status, the
gateway's live figures, firewall blocks, logged-in administrators and the audit trail."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from portcullis import gatewaystatus
from portcullis.accounts import audit, sessions
from portcullis.firewall.control import MAX_BLOCK_MINUTES
from portcullis.numbers import NumberError, parse_number
from portcullis.web import unitstatus
from portcullis.web.app import Access
from portcullis.web.providers import panel

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp


def register(web: WebApp) -> None:
    web.page("/server", "GET", Access.SUPER)(server_page)
    web.page("/server/clamav-update", "POST", Access.SUPER)(clamav_update)
    web.page("/server/firewall/block", "POST", Access.SUPER)(firewall_block)
    web.page("/server/firewall/unblock", "POST", Access.SUPER)(firewall_unblock)


def server_page(ctx: RequestContext) -> Any:
    providers = ctx.web.providers
    try:
        disk = shutil.disk_usage(ctx.config.store.dir)
    except OSError:
        disk = None
    return ctx.render(
        "server", title=ctx._("Server admin"),
        clamav=panel(providers, "clamav_status"),
        can_update=providers.available("clamav_update"),
        can_block=providers.available("firewall_block"),
        updates=panel(providers, "update_history", limit=50),
        firewall=panel(providers, "firewall_status"),
        units=unitstatus.unit_states(), gateway=gatewaystatus.read(ctx.config.store.dir),
        disk=disk, state_dir=str(ctx.config.store.dir),
        admins=sessions.active_sessions(ctx.store), trail=audit.recent(ctx.store, 50))


def update_detail(outcome: Any) -> str:
    """What "update now" did (portcullis.antivirus.UpdateOutcome, made plain), in a line."""
    if isinstance(outcome, dict):
        parts = [f"freshclam: {outcome['freshclam']}" if outcome.get("freshclam") else "",
                 f"clamd: {outcome['reload']}" if outcome.get("reload") else ""]
        return "; ".join(p for p in parts if p)
    return outcome if isinstance(outcome, str) else ""


def clamav_update(ctx: RequestContext) -> Any:
    result = panel(ctx.web.providers, "clamav_update")
    ctx.audit("clamav update", result.state)
    if result.state == "ok":
        ctx.flash(ctx._("ClamAV signature update requested. {detail}",
                        detail=update_detail(result.data)).strip())
    elif result.state == "absent":
        ctx.flash(ctx._("ClamAV updates are not available on this system."), "error")
    else:
        ctx.flash(ctx._("ClamAV update failed: {error}", error=result.error), "error")
    return ctx.redirect("/server")


def firewall_block(ctx: RequestContext) -> Any:
    address = ctx.field("address").strip()
    text = ctx.field("minutes").strip()
    try:
        # Empty: the configured ssh_block_minutes.  Anything else is a number of minutes
        # in range; "nan", "inf", "0" or "abc" used to become the default block quietly.
        minutes = parse_number(text, int, name=ctx._("minutes"), minimum=1,
                               maximum=MAX_BLOCK_MINUTES) if text else None
    except NumberError as exc:
        ctx.audit("firewall block", f"{address} refused: {exc}")
        ctx.flash(ctx._("Could not block {address}: {error}", address=address,
                        error=str(exc)), "error")
        return ctx.redirect("/server")
    # The same function as `portcullis firewall block` (through the control socket).
    result = panel(ctx.web.providers, "firewall_block", address=address, minutes=minutes)
    ctx.audit("firewall block", f"{address} {result.state} {result.error}".strip())
    if result.state == "ok":
        ctx.flash(ctx._("{address} is blocked from SSH.", address=address))
    else:
        ctx.flash(ctx._("Could not block {address}: {error}", address=address,
                        error=result.error or ctx._("Not available on this system.")),
                  "error")
    return ctx.redirect("/server")


def firewall_unblock(ctx: RequestContext) -> Any:
    address = ctx.field("address").strip()
    result = panel(ctx.web.providers, "firewall_unblock", address=address)
    ctx.audit("firewall unblock", f"{address} {result.state} {result.error}".strip())
    if result.state == "ok":
        ctx.flash(ctx._("{address} is no longer blocked.", address=address))
    else:
        ctx.flash(ctx._("Could not unblock {address}: {error}", address=address,
                        error=result.error or ctx._("Not available on this system.")),
                  "error")
    return ctx.redirect("/server")
