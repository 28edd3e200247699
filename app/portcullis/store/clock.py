"""Upkeep against a clock that jumps (an appliance booting with a wrong RTC, then NTP
stepping the clock).

One rule for every upkeep task:

- a record stamped after the clock was stamped by a clock that ran ahead and was set
  back: it counts as stamped now (``restamp_future``), or a sender greylisted or blocked
  then stayed deferred until the clock caught up, possibly for years;
- the time a task ages records against moves at most ``MAX_STEP`` a run past the last
  run's (``upkeep_time``, stored per task in ``meta``), with a warning: a clock stepped a
  year ahead would otherwise age out the archive, peer relationships and Bayes tokens in
  one run.  After a real long stop the task catches up a day a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from portcullis.store.base import Store

log = logging.getLogger(__name__)

MAX_STEP = 86400.0


def upkeep_time(store: Store, task: str, now: float | None = None) -> float:
    """The time ``task`` ages records against this run: the clock, but at most
    ``MAX_STEP`` past the time of its last run; remembered for the next run."""
    now = time.time() if now is None else now
    key = f"upkeep:{task}"
    with store.transaction():
        last = store.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        bounded = now if last is None else min(now, float(last) + MAX_STEP)
        store.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                      " DO UPDATE SET value = excluded.value", (key, bounded))
    if bounded < now:
        log.warning("%s: the clock is %.0f s past the last upkeep (stepped forward?);"
                    " ageing records to %.0f s before it this run", task,
                    now - float(last), now - bounded)
    elif last is not None and now < float(last):
        log.warning("%s: the clock is %.0f s behind the last upkeep (set back?); records"
                    " stamped later count as stamped now", task, float(last) - now)
    return bounded


def restamp_future(store: Store, table: str, leads: Mapping[str, float],
                   now: float | None = None) -> int:
    """Set each column of ``leads`` that is later than the clock plus its lead (0 for a
    time of the past, a block's length for when it ends) to that; return the rows
    changed.  ``table`` and the columns are code's, never data."""
    now = time.time() if now is None else now
    limits = [now + lead for lead in leads.values()]
    return store.purge(
        table, " OR ".join(f"{column} > ?" for column in leads), limits,
        update=", ".join(f"{column} = min({column}, ?)" for column in leads), values=limits)
