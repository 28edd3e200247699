"""The runtime policy settings, built from ``directory.settings.SETTINGS``: a setting
another part of the appliance declares there appears here without changes to the UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from portcullis.directory.settings import SETTINGS, SettingError, get_settings, set_settings
from portcullis.web.app import Access

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp


def register(web: WebApp) -> None:
    web.page("/settings", "GET", Access.SUPER)(settings_page)
    web.page("/settings", "POST", Access.SUPER)(change_settings)


def input_kind(kind: type) -> str:
    return {bool: "checkbox", int: "number", float: "number", list: "textarea"}.get(kind,
                                                                                     "text")


def shown(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, float):
        # Every digit: the form sends the text back, and "{:g}" (six digits) made 5.1234567
        # 5.12346, stored as a change at the next save of any other setting.
        text = repr(value)
        return text.removesuffix(".0")
    return str(value)


def settings_page(ctx: RequestContext, error: str = "", submitted: Any = None,
                  status: int = 200) -> Any:
    values = get_settings(ctx.store, ctx.config)
    rows = []
    for name, setting in SETTINGS.items():
        value = values[name]
        text = submitted.get(name, "") if submitted is not None else shown(value)
        checked = (submitted.get(name) == "on") if submitted is not None else bool(value)
        rows.append({"name": name, "help": setting.help,
                     "input": "select" if setting.choices else input_kind(setting.kind),
                     "choices": setting.choices or (), "text": text, "checked": checked,
                     "min": setting.minimum, "max": setting.maximum,
                     "step": "1" if setting.kind is int else "any"})
    bottle.response.status = status
    return ctx.render("settings", title=ctx._("Settings"), rows=rows, error=error)


def change_settings(ctx: RequestContext) -> Any:
    current = get_settings(ctx.store, ctx.config)
    changes: dict[str, Any] = {}
    try:
        for name, setting in SETTINGS.items():
            raw: Any = ("on" if ctx.field(name) == "on" else "off") if setting.kind is bool \
                else ctx.field(name)
            value = setting.coerce(raw)
            # Only what changed is stored: the others keep following the config file.
            if value != current[name]:
                changes[name] = value
        if changes:
            set_settings(ctx.store, ctx.config, changes)
    except SettingError as exc:
        return settings_page(ctx, str(exc), ctx.form, 400)
    if changes:
        ctx.audit("settings", ", ".join(f"{k}={v!r}" for k, v in changes.items()))
        ctx.flash(ctx._("Settings saved: {names}.", names=", ".join(changes)))
    else:
        ctx.flash(ctx._("Nothing changed."))
    return ctx.redirect("/settings")
