"""Traffic counters: the dashboard's and the reports' messages per hour, for the whole
appliance and for a domain administrator's domains."""

from __future__ import annotations

import pytest

from portcullis.stats import BUCKET_SECONDS, TrafficCounter, traffic_series
from portcullis.store import migrations, open_store

pytestmark = pytest.mark.webui

HOUR = 100 * BUCKET_SECONDS


def test_a_message_to_several_domains_is_one_message_of_the_appliance(tmp_path):
    store = open_store(tmp_path)
    counter = TrafficCounter(store)
    counter.count("reject", ["a.example", "b.example", "c.example"], when=HOUR + 5)
    counter.count("accept", ["a.example"], when=HOUR + 6)
    counter.count("reject", [""], when=HOUR + 7)          # a refused relay attempt
    counter.flush()
    assert traffic_series(store, HOUR) == {"reject": {HOUR: 2}, "accept": {HOUR: 1}}
    # Each domain's administrator still sees the message among their domain's.
    assert traffic_series(store, HOUR, ["a.example"]) == {"reject": {HOUR: 1},
                                                          "accept": {HOUR: 1}}
    assert traffic_series(store, HOUR, ["b.example", "c.example"]) == {"reject": {HOUR: 2}}
    store.close()


def test_hours_counted_before_keep_their_figures(tmp_path, monkeypatch):
    monkeypatch.setitem(migrations.COMPONENTS, "stats", [])
    old = open_store(tmp_path)
    old.executemany("INSERT INTO traffic (bucket, domain, verdict, count) VALUES (?, ?, ?, ?)",
                    [(HOUR, "a.example", "accept", 4), (HOUR, "b.example", "accept", 1),
                     (HOUR, "", "reject", 7), (HOUR + BUCKET_SECONDS, "a.example", "tag", 2)])
    old.close()
    monkeypatch.undo()
    store = open_store(tmp_path)
    assert traffic_series(store, HOUR) == {"accept": {HOUR: 5}, "reject": {HOUR: 7},
                                           "tag": {HOUR + BUCKET_SECONDS: 2}}
    store.close()
