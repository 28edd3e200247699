"""The audit trail: who changed what from the web UI, when and from where."""

from __future__ import annotations

import time

from portcullis.store import Store

KEEP_DAYS = 400


def record(store: Store, user: str, client_ip: str, action: str, detail: str = "") -> None:
    store.execute("INSERT INTO web_audit (at, user, client_ip, action, detail)"
                  " VALUES (?, ?, ?, ?, ?)",
                  (time.time(), user, client_ip, action[:100], detail[:1000]))


def recent(store: Store, limit: int = 100) -> list[dict]:
    return store.query("SELECT * FROM web_audit ORDER BY at DESC, rowid DESC LIMIT ?",
                       (limit,))


def purge(store: Store, keep_days: int = KEEP_DAYS, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return store.purge("web_audit", "at < ?", (now - keep_days * 86400,))
