"""Reports: traffic by verdict over 30 days (a domain administrator's own domains only),
and the Top Spammers / Top Legitimate MTAs (appliance-wide figures, shown to the super
administrator) as bar charts with a table each."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class TopList:
    """One of the two lists: its heading, the provider's answer and the bar chart."""

    key: str                 # the section's id: "top-spammers" or "top-legitimate"
    heading: str
    found: Panel
    chart: str               # SVG, empty when there is nothing to draw
    share: str               # the record field holding the share that qualified each MTA
    share_label: str

    @property
    def rows(self) -> list[dict]:
        data = self.found.data if self.found.state == "ok" else None
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _top(ctx: RequestContext, key: str, heading: str, rule: str, colour: str, share: str,
         share_label: str) -> TopList:
    found = panel(ctx.web.providers, key.replace("-", "_"), limit=TOP)
    top = TopList(key, heading, found, "", share, share_label)
    if top.rows:
        top.chart = charts.horizontal_bars(ranked(top.rows)[:TOP], title=rule,
                                           colour=colour, unit=ctx._("connections"))
    return top


def reports(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    chart, totals = traffic_chart(ctx, "30d", ctx._("Messages per day, last 30 days"))
    tops = []
    if ctx.user.is_super:
        tops = [_top(ctx, "top-spammers", ctx._("Top Spammers"),
                     ctx._("Connections of MTAs with 50 or more, 95% or more unwanted"),
                     charts.COLOURS["reject"], "unwanted_share", ctx._("Unwanted")),
                _top(ctx, "top-legitimate", ctx._("Top Legitimate"),
                     ctx._("Connections of MTAs with over 50, 95% or more accepted"),
                     charts.COLOURS["accept"], "accepted_share", ctx._("Accepted"))]
    return ctx.render("reports", title=ctx._("Reports"), chart=chart, totals=totals,
                      labels=verdict_labels(ctx), tops=tops,
                      domains=ctx.user.domain_filter)
