"""Periodic upkeep of the account tables (listed in ``housekeeping.TASKS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.accounts import audit, sessions, throttle

if TYPE_CHECKING:
    from portcullis.services import Services


def purge_web_state(services: Services) -> str:
    """Drop ended sessions, login failures past the window and old audit entries."""
    store = services.store
    ended = sessions.purge_sessions(store)
    failures = throttle.purge_failures(store)
    old = audit.purge(store)
    return (f"web: {ended} ended session(s), {failures} old login failure(s),"
            f" {old} old audit entr(y/ies) removed")
