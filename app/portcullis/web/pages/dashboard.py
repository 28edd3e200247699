"""The dashboard: traffic by verdict over time, open SMTP sessions, ClamAV status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from portcullis import gatewaystatus
from portcullis.stats import traffic_series
from portcullis.web import charts
from portcullis.web.providers import panel

if TYPE_CHECKING:
    from portcullis.web.app import RequestContext, WebApp

# range name -> (seconds shown, seconds per column, label function)
RANGES = {
    "24h": (86400, 3600, charts.hour_label),
    "7d": (7 * 86400, 6 * 3600, charts.day_label),
    "30d": (30 * 86400, 86400, charts.day_label),
}


def register(web: WebApp) -> None:
    web.page("/")(dashboard)


def verdict_labels(ctx: RequestContext) -> dict[str, str]:
    return {"accept": ctx._("accepted"), "tag": ctx._("tagged"), "reject": ctx._("rejected"),
            "tempfail": ctx._("tempfailed")}


def traffic_chart(ctx: RequestContext, range_name: str, title: str) -> tuple[str, dict]:
    """The SVG chart and per-verdict totals of a range, for this administrator's domains."""
    assert ctx.user is not None
    span, step, label = RANGES[range_name]
    now = time.time()
    series = traffic_series(ctx.store, now - span, domains=ctx.user.domain_filter)
    groups, values = charts.group_buckets(series, now - span + step, now, step)
    labels = verdict_labels(ctx)
    svg = charts.stacked_bars(groups, values, title=title, labels=labels, x_label=label)
    totals = {verdict: sum(counts) for verdict, counts in values.items()}
    return svg, totals


def dashboard(ctx: RequestContext) -> Any:
    assert ctx.user is not None
    range_name = ctx.query.get("range", "24h")
    if range_name not in RANGES:
        range_name = "24h"
    titles = {"24h": ctx._("Messages per hour, last 24 hours"),
              "7d": ctx._("Messages per 6 hours, last 7 days"),
              "30d": ctx._("Messages per day, last 30 days")}
    chart, totals = traffic_chart(ctx, range_name, titles[range_name])
    latest = ctx.services.archive.search(domains=ctx.user.domain_filter, limit=10)
    return ctx.render(
        "dashboard", title=ctx._("Dashboard"), chart=chart, totals=totals,
        labels=verdict_labels(ctx), range_name=range_name, ranges=list(RANGES),
        gateway=gatewaystatus.read(ctx.config.store.dir),
        clamav=panel(ctx.web.providers, "clamav_status"), latest=latest)
