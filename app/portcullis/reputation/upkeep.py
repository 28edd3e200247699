"""Bounded growth: expiry and decay for every reputation table (a housekeeping task)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.reputation import mta, oneway, peers
from portcullis.store.clock import upkeep_time

if TYPE_CHECKING:
    from portcullis.services import Services

DAY = 86400.0


def reputation_upkeep(services: Services) -> str:
    settings = services.config.reputation
    store = services.store
    now = upkeep_time(store, "reputation")
    # Each in batches (Store.purge), not one transaction: gateway writes get in between.
    forgotten_peers = peers.expire(store, now - settings.peer_days * DAY)
    forgotten_one_way = oneway.expire(store, now - settings.one_way_days * DAY)
    dropped = mta.decay(store, settings.mta_days, now)
    # MTAs silent for four half-lives are gone whatever their counts.
    dropped += store.purge("mta_reputation", "last_seen < ?",
                           (now - 4 * settings.mta_days * DAY,))
    return (f"reputation: {forgotten_peers} peer, {forgotten_one_way} one-way and "
            f"{dropped} MTA record(s) expired")
