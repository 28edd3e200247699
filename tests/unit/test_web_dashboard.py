"""The dashboard's traffic figures for a domain administrator: their domains' counters
only, read by index (an ISP's appliance keeps hourly counters of hundreds of domains)."""

from __future__ import annotations

import pytest

from portcullis.stats import BUCKET_SECONDS, traffic_series
from portcullis.store import open_store

pytestmark = pytest.mark.webui

DOMAINS = [f"d{n}.example" for n in range(20)]


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path)
    store.executemany(
        "INSERT INTO traffic (bucket, domain, verdict, count) VALUES (?, ?, ?, ?)",
        [(hour * BUCKET_SECONDS, domain, verdict, hour + n + len(verdict))
         for hour in range(100) for n, domain in enumerate(DOMAINS)
         for verdict in ("accept", "reject")])
    return store


def test_a_domain_administrators_traffic_is_read_from_their_domains_rows_only(
        store, monkeypatch):
    statements = []
    query = store.query
    monkeypatch.setattr(store, "query", lambda sql, params=(): (
        statements.append((sql, params)), query(sql, params))[1])
    mine = ["d3.example", "d17.example"]
    series = traffic_series(store, 40 * BUCKET_SECONDS, domains=mine)
    assert series == {verdict: {hour * BUCKET_SECONDS: sum(
        hour + DOMAINS.index(d) + len(verdict) for d in mine) for hour in range(40, 100)}
        for verdict in ("accept", "reject")}
    (sql, params), = statements
    plan = [row["detail"] for row in query(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any("INDEX traffic_domain (domain=? AND bucket>?)" in step for step in plan), plan
    assert not [step for step in plan if step.startswith("SCAN")], plan
