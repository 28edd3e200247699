"""Traffic counters: the dashboard's and the reports' messages per hour, for the whole
appliance and for a domain administrator's domains."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from portcullis.stats import BUCKET_SECONDS, TrafficCounter, purge_traffic, traffic_series
from portcullis.store import migrations, open_store, sqlite
from portcullis.store.base import PURGE_BATCH

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


def test_purging_a_backlog_lets_the_gateway_write_between_batches(tmp_path):
    """The purge deletes a batch a transaction: a gateway worker's write, which never
    waits here, gets in before every batch after the first, as it would wait behind
    one DELETE of the whole backlog."""
    store = open_store(tmp_path)
    old = [(n * BUCKET_SECONDS, f"d{n % 500}.example", "accept", 1)
           for n in range(3 * PURGE_BATCH + 5)]
    store.executemany("INSERT INTO traffic (bucket, domain, verdict, count)"
                      " VALUES (?, ?, ?, ?)", old)
    gateway = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    batches = []

    def statement_starts(sql: str) -> None:
        if sql.startswith("DELETE FROM traffic"):
            gateway.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            batches.append(sql)

    store._conn().set_trace_callback(statement_starts)
    assert purge_traffic(store) == len(old)
    store._conn().set_trace_callback(None)
    assert len(batches) == 4
    assert store.scalar("SELECT count(*) FROM traffic") == 0
    gateway.close()
    store.close()


def test_a_flush_does_not_wait_on_another_writer_and_keeps_its_counts(tmp_path, monkeypatch):
    """The flush runs on the gateway's event loop: behind another process's long write
    it gives up at once (every session of the worker would wait with it) and keeps the
    counts for the next flush."""
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_MS", 60_000)   # what a statement waits
    store = open_store(tmp_path)
    counter = TrafficCounter(store)
    counter.count("accept", ["a.example"], when=HOUR)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    flush = threading.Thread(target=counter.flush)
    flush.start()
    flush.join(20)
    waited = flush.is_alive()
    other.execute("COMMIT")
    flush.join()
    assert not waited
    assert traffic_series(store, HOUR) == {}
    counter.flush()
    assert traffic_series(store, HOUR) == {"accept": {HOUR: 1}}
    other.close()
    store.close()
