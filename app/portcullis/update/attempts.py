"""The update history: every attempt to update this appliance, kept in the store.

Written by the unprivileged agent (it runs in the store's group, like every service that
opens the store), read by the web UI and ``portcullis-update-agent history`` through
``portcullis.update.history`` — the one function both call.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from portcullis.store import Store

OUTCOMES = ("receiving", "applied", "rejected", "rolled-back", "failed")


@dataclass(frozen=True)
class UpdateAttempt:
    id: int
    started: float
    finished: float | None
    client: str             # the address the push came from ("local" for an admin's install)
    target: str             # app, clamav, config, trust-root ("" if never read that far)
    version: str
    previous: str           # what ran before (for applied and rolled-back updates)
    outcome: str            # one of OUTCOMES; "receiving" while in progress or if cut off
    reason: str             # why it was rejected, rolled back or failed
    signed_by: str          # trusted key ids, comma separated
    sha256: str             # of the whole bundle file
    size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        """For display (the web UI's panel): local times, the newest facts first."""
        return {"started": _local(self.started), "client": self.client,
                "target": self.target, "version": self.version, "previous": self.previous,
                "outcome": self.outcome, "reason": self.reason, "signed_by": self.signed_by,
                "finished": _local(self.finished), "size": self.size,
                "sha256": self.sha256}


def _local(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def start_attempt(store: Store, client: str) -> int:
    """Record that a push began; returns the attempt's id."""
    return store.insert("INSERT INTO update_history (started, client, outcome)"
                        " VALUES (?, ?, 'receiving')", (time.time(), client))


def finish_attempt(store: Store, attempt_id: int, *, outcome: str, reason: str = "",
                   target: str = "", version: str = "", previous: str = "",
                   signed_by: list[str] | tuple[str, ...] = (), sha256: str = "",
                   size: int = 0) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    store.execute(
        "UPDATE update_history SET finished = ?, outcome = ?, reason = ?, target = ?,"
        " version = ?, previous = ?, signed_by = ?, sha256 = ?, size = ? WHERE id = ?",
        (time.time(), outcome, reason[:2000], target, version, previous, ",".join(signed_by),
         sha256, size, attempt_id))


def recent(store: Store, limit: int = 100) -> list[UpdateAttempt]:
    """The most recent update attempts, newest first, each with its outcome and reason."""
    rows = store.query("SELECT * FROM update_history ORDER BY id DESC LIMIT ?",
                       (max(1, int(limit)),))
    return [UpdateAttempt(**row) for row in rows]
