"""Periodic upkeep of the account tables (listed in ``housekeeping.TASKS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.accounts import audit, sessions, throttle
from portcullis.store.clock import restamp_future, upkeep_time

if TYPE_CHECKING:
    from portcullis.services import Services


def purge_web_state(services: Services) -> str:
    """Drop ended sessions, login failures past the window and old audit entries."""
    store = services.store
    # Stamped ahead of the clock (store/clock.py), a session outlived its limits and a
    # login failure locked its user name or address out until the clock caught up.
    restamp_future(store, "web_sessions", {"created": 0, "last_seen": 0})
    restamp_future(store, "web_login_failures", {"at": 0})
    now = upkeep_time(store, "web")
    ended = sessions.purge_sessions(store, now)
    failures = throttle.purge_failures(store, now)
    old = audit.purge(store, now=now)
    return (f"web: {ended} ended session(s), {failures} old login failure(s),"
            f" {old} old audit entr(y/ies) removed")
