"""Line charts as plain SVG (no plotting library): one series per target."""

from __future__ import annotations

from html import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def panel(title: str, y_label: str, series: dict[str, list[tuple[float, float]]],
          x: int, y: int, width: int = 460, height: int = 300) -> list[str]:
    """One chart at (x, y): axes, ticks, a polyline and dots per series, a legend."""
    left, bottom, top, right = 60, 40, 30, 10
    points = [p for values in series.values() for p in values]
    xs = sorted({p[0] for p in points}) or [1]
    y_max = max([p[1] for p in points] + [1e-9]) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(value: float) -> float:
        position = xs.index(value) / max(1, len(xs) - 1)    # evenly spaced levels
        return x + left + position * plot_w

    def py(value: float) -> float:
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
    for i in range(5):
        value = y_max * i / 4
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
            *panel("Throughput", "messages per second", throughput, 0, 20),
            *panel("p99 latency (probe, under load)", "milliseconds", latency, 470, 20),
            *legend(names, 70, 340)]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="940" height="{height}" '
            f'font-family="sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(body) + "</svg>\n")
