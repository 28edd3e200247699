"""Recipients refused at RCPT, kept per protected domain for its administrators' log.

The decision log file has these lines, but a domain administrator may not read it: a
sender writes what it likes into a HELO name or a subject, so no line can be attributed
to a domain by its text.  The gateway attributes each refusal itself, by the protected
domain of the recipient it refused, when it logs the line (``RefusalLog`` observer).

Bounded: rows older than the archive's retention go, and a domain keeps its newest
MAX_PER_DOMAIN only, so a dictionary attack cannot fill the disk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from portcullis.events import RecipientRefused
from portcullis.store import Store

MAX_PER_DOMAIN = 5_000
# Trimming reads up to MAX_PER_DOMAIN index entries: done once per this many refusals of
# a domain (and at a process's first), so a domain holds at most this many more a worker.
TRIM_EVERY = 200


def record(store: Store, event: RecipientRefused) -> None:
    """Keep one refusal of a recipient in a protected domain (``event.domain``); none
    for a domain removed meanwhile (a worker's snapshot of the domains lags the store by
    seconds: the insert failed its foreign key and logged a traceback)."""
    store.execute("INSERT INTO rcpt_refusals (at, domain, recipient, client_ip, helo, line)"
                  " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM domains WHERE name = ?)",
                  (event.when, event.domain, event.recipient, event.client_ip, event.helo,
                   event.line, event.domain))


def purge(store: Store, retention_days: int, now: float | None = None) -> int:
    """Remove every domain's refusals older than the retention; return how many went
    (housekeeping, and each trim: a domain nobody writes to any more ages out too)."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    return store.execute("DELETE FROM rcpt_refusals WHERE at < ?", (cutoff,))


def trim(store: Store, domain: str, retention_days: int, now: float | None = None) -> int:
    """Remove every domain's refusals older than the retention, and ``domain``'s beyond
    its newest MAX_PER_DOMAIN; return how many went."""
    return purge(store, retention_days, now) + store.execute(
        "DELETE FROM rcpt_refusals WHERE domain = ? AND at < (SELECT at FROM rcpt_refusals"
        " WHERE domain = ? ORDER BY at DESC LIMIT 1 OFFSET ?)",
        (domain, domain, MAX_PER_DOMAIN - 1))


def newest_first(store: Store, domains: list[str], page: int) -> Iterator[tuple[float, str]]:
    """(time, logged line) of the refusals in ``domains``, newest first, read ``page`` at
    a time (each once: refusals arriving meanwhile come before where the reading is)."""
    if not domains:
        return
    marks = ", ".join("?" * len(domains))       # placeholders only: the names are bound
    after: tuple[float, int] = (float("inf"), 0)
    while True:
        rows = store.query(
            f"SELECT id, at, line FROM rcpt_refusals WHERE domain IN ({marks})"  # noqa: S608
            " AND (at < ? OR (at = ? AND id < ?)) ORDER BY at DESC, id DESC LIMIT ?",
            (*domains, after[0], after[0], after[1], page))
        yield from ((row["at"], row["line"]) for row in rows)
        if len(rows) < page:
            return
        after = (rows[-1]["at"], rows[-1]["id"])
