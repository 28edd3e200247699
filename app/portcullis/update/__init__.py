"""Signed push updates: the bundle format and its verification (shared with the vendor's
``portcullis_vendor``), and the appliance's update agent.

The web UI's entry point is ``history(store)``: every update attempt with its outcome,
newest first (``portcullis-update-agent history`` shows the same).  See agent.py for the
commands and targets.py for what a bundle can update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.update.attempts import UpdateAttempt, recent

if TYPE_CHECKING:
    from portcullis.store import Store

__all__ = ["UpdateAttempt", "history"]


def history(store: Store, limit: int = 50) -> list[UpdateAttempt]:
    """Every update attempt (pushes from the vendor, local installs) with its outcome,
    newest first, at most ``limit``."""
    return recent(store, limit)
