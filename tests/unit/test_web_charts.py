"""Server-rendered SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from portcullis.web import charts

pytestmark = pytest.mark.webui

SVG = "{http://www.w3.org/2000/svg}"
LABELS = {"accept": "accepted", "tag": "tagged", "reject": "rejected", "tempfail": "tempfailed"}


def test_grouping_sums_hourly_buckets_and_keeps_empty_groups():
    start = 1_700_000_000 // 86400 * 86400
    series = {"accept": {start: 3, start + 3600: 2}, "reject": {start + 7200: 5}}
    groups, values = charts.group_buckets(series, start, start + 4 * 3600, 3600)
    assert len(groups) in (4, 5)  # local-time alignment may open one earlier group
    assert sum(values["accept"]) == 5 and sum(values["reject"]) == 5
    assert sum(values["tag"]) == 0 and len(values["tag"]) == len(groups)


def test_stacked_chart_is_valid_svg_with_one_bar_per_nonzero_count():
    groups = [0, 3600, 7200]
    values = {"accept": [1, 0, 4], "tag": [0, 0, 0], "reject": [2, 3, 0], "tempfail": [0, 0, 1]}
    svg = charts.stacked_bars(groups, values, title="Traffic", labels=LABELS,
                              x_label=lambda g: f"t{g}")
    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "")]
    assert len(bars) == 5
    heights = {r.find(f"{SVG}title").text: float(r.get("height")) for r in bars}
    # Bars are proportional to their counts.
    assert heights["t7200: 4 accepted"] == pytest.approx(4 * heights["t0: 1 accepted"])


def test_hostile_labels_are_escaped_in_svg():
    evil = '<script>alert(1)</script>"&'
    svg = charts.horizontal_bars([(evil, 60.0), ("192.0.2.1", 51.0)], title=evil,
                                 colour="#c62828", unit="connections")
    assert "<script>" not in svg
    root = ET.fromstring(svg)     # still well-formed XML
    assert evil in "".join(root.itertext())


def test_empty_data_gives_an_empty_but_valid_chart():
    svg = charts.stacked_bars([], {v: [] for v in charts.VERDICTS}, title="None",
                              labels=LABELS, x_label=str)
    ET.fromstring(svg)
    ET.fromstring(charts.horizontal_bars([], title="None", colour="#000"))


@pytest.mark.parametrize(("value", "ceiling"), [(0, 5), (1, 5), (5, 5), (7, 10), (12, 20),
                                                (499, 500), (501, 1000)])
def test_axis_ceiling_is_round_and_its_ticks_are_whole_numbers(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling
    assert (ceiling / charts.TICKS).is_integer()
