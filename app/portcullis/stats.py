"""Traffic counters per hour, domain and verdict, for the dashboard and reports.

Counting happens in memory and is written in one transaction every few seconds: a counter
per message would double the store's write load for figures nobody needs to the second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from portcullis.store import Store, StoreError
from portcullis.store.clock import upkeep_time

log = logging.getLogger(__name__)

BUCKET_SECONDS = 3600
# How long a flush waits for another writer: it runs on the gateway's event loop, where
# the store's usual 5 s held up every session of the worker, every few seconds while
# another process wrote at length, for figures that can wait for the next flush.
FLUSH_WAIT = 0.1
# The appliance's own row: every message is counted in it once, whatever its domains.
# Its figures were the sum of the domains' rows, so a message to three protected domains
# counted three times.  No domain can be called "*".
APPLIANCE = "*"


class TrafficCounter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: Counter[tuple[int, str, str]] = Counter()

    def count(self, verdict: str, domains: list[str] | None = None,
              when: float | None = None) -> None:
        """One message (or refused recipient) of ``verdict``, for the appliance and for
        each protected domain in ``domains`` ("" for none)."""
        bucket = int((time.time() if when is None else when) // BUCKET_SECONDS) * BUCKET_SECONDS
        for domain in dict.fromkeys([*(domains or ()), APPLIANCE]):
            if domain:
                self._pending[(bucket, domain, verdict)] += 1

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            with self.store.transaction(wait=FLUSH_WAIT):
                for (bucket, domain, verdict), count in pending.items():
                    self.store.execute(
                        "INSERT INTO traffic (bucket, domain, verdict, count) VALUES (?,?,?,?)"
                        " ON CONFLICT (bucket, domain, verdict)"
                        " DO UPDATE SET count = count + excluded.count",
                        (bucket, domain, verdict, count))
        except StoreError as exc:
            log.warning("traffic counters not saved, will retry: %s", exc)
            self._pending.update(pending)


def traffic_series(store: Store, since: float, domains: list[str] | None = None
                   ) -> dict[str, dict[int, int]]:
    """{verdict: {bucket: count}} since a time, for the appliance or for the domains
    given (a message to several of them counted for each)."""
    domains = [APPLIANCE] if domains is None else domains
    sql = "SELECT bucket, verdict, SUM(count) AS n FROM traffic WHERE bucket >= ?"
    sql += f" AND domain IN ({','.join('?' * len(domains))})"
    params: list = [int(since), *domains]
    series: dict[str, dict[int, int]] = {}
    for row in store.query(sql + " GROUP BY bucket, verdict ORDER BY bucket", params):
        series.setdefault(row["verdict"], {})[row["bucket"]] = row["n"]
    return series


def purge_traffic(store: Store, keep_days: int = 400, now: float | None = None) -> int:
    """Remove counters older than ``keep_days``; a clock stepped forward ages them a day
    a run (store.clock's rule), not all 400 days' figures at once."""
    cutoff = upkeep_time(store, "traffic", now) - keep_days * 86400
    return store.purge("traffic", "bucket < ?", (cutoff,))
