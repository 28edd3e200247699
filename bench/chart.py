"""Line charts as plain SVG (no plotting library): one series per target."""

from __future__ import annotations

import math
from html import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def panel(title: str, y_label: str, series: dict[str, list[tuple[float, float]]],
          x: int, y: int, width: int = 460, height: int = 300, log: bool = False) -> list[str]:
    """One chart at (x, y): axes, ticks, a polyline and dots per series.  ``log``: a
    logarithmic y axis (the sink runs ten times faster than anything behind it)."""
    left, bottom, top, right = 60, 40, 30, 10
    points = [p for values in series.values() for p in values]
    xs = sorted({p[0] for p in points}) or [1]
    y_max = max([p[1] for p in points] + [1e-9]) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = 1.0, 10 ** math.ceil(math.log10(max(y_max, 10)))

    def px(value: float) -> float:
        position = xs.index(value) / max(1, len(xs) - 1)    # evenly spaced levels
        return x + left + position * plot_w

    def py(value: float) -> float:
        if log:
            share = math.log10(max(value, low) / low) / math.log10(high / low)
            return y + top + plot_h - share * plot_h
        return y + top + plot_h - value / y_max * plot_h

    out = [f'<text x="{x + width / 2}" y="{y + 18}" text-anchor="middle" '
           f'font-weight="bold">{escape(title)}</text>',
           f'<line x1="{x + left}" y1="{y + top + plot_h}" x2="{x + left + plot_w}" '
           f'y2="{y + top + plot_h}" stroke="black"/>',
           f'<line x1="{x + left}" y1="{y + top}" x2="{x + left}" y2="{y + top + plot_h}" '
           f'stroke="black"/>',
           f'<text x="{x + 14}" y="{y + top + plot_h / 2}" text-anchor="middle" '
           f'transform="rotate(-90 {x + 14} {y + top + plot_h / 2})">{escape(y_label)}</text>',
           f'<text x="{x + left + plot_w / 2}" y="{y + height - 5}" text-anchor="middle">'
           f'concurrent sessions</text>']
    for level in xs:
        out.append(f'<text x="{px(level)}" y="{y + top + plot_h + 15}" '
                   f'text-anchor="middle">{level:g}</text>')
    ticks = [10.0 ** e for e in range(int(math.log10(high)) + 1)] if log else \
        [y_max * i / 4 for i in range(5)]
    for value in ticks:
        out.append(f'<text x="{x + left - 4}" y="{py(value) + 4}" text-anchor="end">'
                   f'{value:.0f}</text>')
        out.append(f'<line x1="{x + left}" y1="{py(value)}" x2="{x + left + plot_w}" '
                   f'y2="{py(value)}" stroke="#ddd"/>')
    for n, (_name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in sorted(values))
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                   f'stroke-width="2"/>')
        out += [f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{colour}"/>'
                for a, b in values]
    return out


def legend(names: list[str], x: int, y: int) -> list[str]:
    out = []
    for n, name in enumerate(names):
        colour = COLOURS[n % len(COLOURS)]
        out.append(f'<rect x="{x}" y="{y + n * 18}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 18}" y="{y + n * 18 + 10}">{escape(name)}</text>')
    return out


def throughput_and_latency(throughput: dict[str, list[tuple[float, float]]],
                           latency: dict[str, list[tuple[float, float]]], title: str) -> str:
    """Two panels side by side (msgs/s and p99 ms against concurrency) and a legend."""
    names = list(dict.fromkeys([*throughput, *latency]))
    height = 340 + 18 * len(names) + 20
    body = [f'<text x="10" y="16" font-weight="bold">{escape(title)}</text>',
            *panel("Throughput (log scale)", "messages per second", throughput, 0, 20,
                   log=True),
            *panel("p99 latency (probe, under load)", "milliseconds", latency, 470, 20),
            *legend(names, 70, 340)]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="940" height="{height}" '
            f'font-family="sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>\n")


def redraw(results_json: str) -> str:
    """Draw the chart of a results file again (e.g. after a change to the drawing)."""
    import json
    from pathlib import Path

    from bench.report import series

    path = Path(results_json)
    results = json.loads(path.read_text())
    throughput, latency = series(results)
    svg = path.with_suffix(".svg")
    svg.write_text(throughput_and_latency(
        throughput, latency, f"Portcullis bench {results['timestamp']}: one message per "
        f"connection, {results['settings']['message_bytes']}-byte message"))
    return str(svg)


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(redraw(name))
