"""Charts rendered on the server as inline SVG (no JavaScript, no external assets).

Every piece of text that reaches the SVG is escaped here, because labels can be hostile
(host names and addresses come from the Internet).  Bars carry a ``<title>`` so a
browser shows the exact figure on hover, and each chart has an accessible label.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from html import escape

VERDICTS = ("accept", "tag", "reject", "tempfail")
COLOURS = {"accept": "#2e7d32", "tag": "#f2a900", "reject": "#c62828",
           "tempfail": "#5c6f7b"}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


TICKS = 5      # intervals on the value axis: with the ceilings below, whole numbers


def nice_ceiling(value: float) -> float:
    """The top of the value axis: 5, or the smallest 1, 2 or 5 times a power of ten at
    or above value, so the five tick intervals fall on whole numbers of messages."""
    if value <= TICKS:
        return float(TICKS)
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power


def group_buckets(series: dict[str, dict[int, int]], start: float, end: float,
                  step: int) -> tuple[list[int], dict[str, list[int]]]:
    """Sum ``traffic_series`` output into consecutive groups of ``step`` seconds.

    Groups start at local midnight boundaries (days begin when the appliance's clock
    says so).  Returns the groups' start times and, per verdict, one count per group
    (zero where nothing happened), so quiet hours show as gaps rather than disappearing.
    """
    offset = time.localtime(start).tm_gmtoff

    def align(stamp: float) -> int:
        return int((stamp + offset) // step * step - offset)

    groups = list(range(align(start), int(end), step))
    index = {g: i for i, g in enumerate(groups)}
    values = {v: [0] * len(groups) for v in [*VERDICTS, *sorted(set(series) - set(VERDICTS))]}
    for verdict, buckets in series.items():
        for bucket, count in buckets.items():
            slot = index.get(align(bucket))
            if slot is not None:
                values[verdict][slot] += int(count)
    return groups, values


def stacked_bars(groups: Sequence[int], values: dict[str, list[int]], *, title: str,
                 labels: dict[str, str], x_label: Callable[[int], str],
                 width: int = 900, height: int = 280) -> str:
    """A stacked column chart: one column per time group, one colour per verdict."""
    left, right, top, bottom = 48, 12, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[v][i] for v in values) for i in range(len(groups))]
    ceiling = nice_ceiling(max(totals, default=0))
    n = max(len(groups), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="chart-title" x="{left}" y="18">{_e(title)}</text>']
    for step in range(TICKS + 1):
        value = ceiling * step / TICKS
        y = top + plot_h - plot_h * step / TICKS
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{_e(f"{value:g}")}</text>')
    label_every = max(1, math.ceil(n / 12))
    for i, group in enumerate(groups):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for verdict, counts in values.items():
            count = counts[i]
            if not count:
                continue
            h = plot_h * count / ceiling
            y -= h
            out.append(
                f'<rect class="bar bar-{_e(verdict)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(verdict, "#888888")}">'
                f'<title>{_e(x_label(group))}: {count} {_e(labels.get(verdict, verdict))}'
                f'</title></rect>')
        if i % label_every == 0:
            out.append(f'<text class="axis" x="{left + i * slot + slot / 2:.1f}" '
                       f'y="{top + plot_h + 16}" text-anchor="middle">'
                       f'{_e(x_label(group))}</text>')
    out.append(f'<line class="baseline" x1="{left}" x2="{width - right}" '
               f'y1="{top + plot_h}" y2="{top + plot_h}"/>')
    x = left
    for verdict in values:
        out.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
                   f'fill="{COLOURS.get(verdict, "#888888")}"/>')
        text = f"{labels.get(verdict, verdict)} ({sum(values[verdict])})"
        out.append(f'<text class="legend" x="{x + 14}" y="{height - 5}">{_e(text)}</text>')
        x += 24 + 7 * len(text)
    out.append("</svg>")
    return "".join(out)


def horizontal_bars(items: Sequence[tuple[str, float]], *, title: str, colour: str,
                    unit: str = "", width: int = 900) -> str:
    """A ranked bar chart (Top Spammers, Top Legitimate): one labelled bar per item."""
    row, top, label_w, right = 18, 28, 220, 70
    height = top + row * max(len(items), 1) + 8
    ceiling = max((value for _, value in items), default=0) or 1
    plot_w = width - label_w - right
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="chart-title" x="0" y="18">{_e(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = max(plot_w * value / ceiling, 1.0)
        shown = label if len(label) <= 34 else label[:33] + "\u2026"
        out.append(f'<text class="axis" x="{label_w - 6}" y="{y + 12}" '
                   f'text-anchor="end">{_e(shown)}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" '
                   f'height="{row - 5}" fill="{_e(colour)}"><title>{_e(label)}: '
                   f'{_e(f"{value:g}")} {_e(unit)}</title></rect>')
        out.append(f'<text class="axis" x="{label_w + w + 6:.1f}" y="{y + 12}">'
                   f'{_e(f"{value:g}")}</text>')
    out.append("</svg>")
    return "".join(out)


def hour_label(stamp: int) -> str:
    return time.strftime("%H:%M", time.localtime(stamp))


def day_label(stamp: int) -> str:
    return time.strftime("%m-%d", time.localtime(stamp))
