"""Periodic upkeep: retention, cache expiry, counter flushing.

Run by the gateway (first worker) every ``INTERVAL`` seconds and by
``portcullis maintenance`` on demand.  Components with tables that grow add a task here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from portcullis import refusallog
from portcullis.accounts.upkeep import purge_web_state
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, GreylistPolicy
from portcullis.directory.settings import get_settings
from portcullis.services import Services
from portcullis.smtp.recipients import CalloutCache
from portcullis.stats import purge_traffic
from portcullis.store.clock import restamp_future, upkeep_time

log = logging.getLogger(__name__)

INTERVAL = 3600.0


def purge_archive(services: Services) -> str:
    days = get_settings(services.store, services.config)["archive_retention_days"]
    removed = services.archive.purge(days, upkeep_time(services.store, "archive"))
    return f"archive: {removed} message(s) older than {days} days removed"


def purge_callouts(services: Services) -> str:
    removed = CalloutCache(services.store, services.config.callout).purge_expired()
    return f"callout cache: {removed} expired entr(y/ies) removed"


def purge_counters(services: Services) -> str:
    return f"traffic counters: {purge_traffic(services.store)} old bucket(s) removed"


def purge_greylist(services: Services) -> str:
    store = services.store
    policy = GreylistPolicy.from_settings(get_settings(store, services.config))
    # Stamped ahead of the clock (store/clock.py), a triplet stayed deferred.
    restamp_future(store, "greylist", dict.fromkeys(("first_seen", "last_seen", "passed"), 0))
    restamp_future(store, "greylist_awl", {"first_seen": 0, "last_seen": 0})
    removed = Greylist(store).purge(policy, upkeep_time(store, "greylist"))
    return f"greylist: {removed} expired entr(y/ies) removed"


def purge_harvest(services: Services) -> str:
    store = services.store
    policy = harvest.HarvestPolicy.from_settings(get_settings(store, services.config))
    # Stamped ahead of the clock (store/clock.py), a client stayed blocked.
    restamp_future(store, "harvest", {"window_start": 0, "blocked_until": policy.block})
    removed = harvest.purge(store, policy, upkeep_time(store, "harvest"))
    return f"harvest detection: {removed} old client(s) removed"


def expire_bayes_tokens(services: Services) -> str:
    from portcullis.bayes.database import TokenDatabase

    settings = services.config.bayes
    removed = TokenDatabase(services.store).expire(
        hapax_days=settings.hapax_days, max_days=settings.token_days,
        max_tokens=settings.max_tokens, now=upkeep_time(services.store, "bayes"))
    return f"bayes: {removed} stale token(s) forgotten"


def expire_reputation(services: Services) -> str:
    from portcullis.reputation.upkeep import reputation_upkeep

    return reputation_upkeep(services)


def purge_refusals(services: Services) -> str:
    days = get_settings(services.store, services.config)["archive_retention_days"]
    removed = refusallog.purge(services.store, days)
    return f"RCPT refusals: {removed} older than {days} days removed"


# One per line: areas add theirs at the end (the file merges with git's union driver).
TASKS: list[Callable[[Services], str]] = [
    purge_archive,
    purge_callouts,
    purge_counters,
    purge_greylist,
    purge_harvest,
    purge_web_state,
    expire_bayes_tokens,
    expire_reputation,
    purge_refusals,
]


def run(services: Services) -> list[str]:
    """Run every task; one failing task does not stop the others."""
    results = []
    for task in TASKS:
        try:
            results.append(task(services))
        except Exception as exc:
            log.exception("housekeeping task %s failed", task.__name__)
            results.append(f"{task.__name__}: failed: {exc}")
    return results


