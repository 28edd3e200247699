"""Reports: traffic by verdict over 30 days, and the Top Spammers / Top Legitimate MTAs
(appliance-wide figures, shown to the super administrator)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portcullis.web import charts
from portcullis.web.pages.dashboard import traffic_chart, verdict_labels
from portcullis.web.providers import Panel, panel

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

TOP = 50
LABEL_KEYS = ("ip", "address", "network", "mta", "host", "name", "client_ip")
VALUE_KEYS = ("connections", "count", "messages", "total", "score")


def register(web: WebApp) -> None:
    web.page("/reports")(reports)


def ranked(rows: Any) -> list[tuple[str, float]]:
    """(label, value) pairs from a provider's records, for a bar chart."""
    pairs = []
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        label = next((str(row[k]) for k in LABEL_KEYS if row.get(k) not in (None, "")), None)
        value = next((row[k] for k in VALUE_KEYS if isinstance(row.get(k), int | float)
                      and not isinstance(row.get(k), bool)), None)
        if label is None:
            label = next((str(v) for v in row.values() if isinstance(v, str)), "?")
        if value is None:
            value = next((v for v in row.values() if isinstance(v, int | float)
                          and not isinstance(v, bool)), 0)
        pairs.append((label, float(value)))
    return pairs


def _top(ctx: RequestContext, key: str, title: str, colour: str) -> tuple[Panel, str]:
    found = panel(ctx.web.providers, key, limit=TOP)
    chart = ""
    if found.state == "ok":
        rows = found.data if isinstance(found.data, list) else []
        if rows:
            chart = charts.horizontal_bars(ranked(rows)[:TOP], title=title, colour=colour,
                                           unit=ctx._("connections"))
    return found, chart


def reports(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    chart, totals = traffic_chart(ctx, "30d", ctx._("Messages per day, last 30 days"))
    tops = []
    if ctx.user.is_super:
        tops = [(ctx._("Top Spammers"), *_top(ctx, "top_spammers", ctx._("Top Spammers"),
                                               charts.COLOURS["reject"])),
                (ctx._("Top Legitimate"), *_top(ctx, "top_legitimate",
                                                 ctx._("Top Legitimate"),
                                                 charts.COLOURS["accept"]))]
    return ctx.render("reports", title=ctx._("Reports"), chart=chart, totals=totals,
                      labels=verdict_labels(ctx), tops=tops)
