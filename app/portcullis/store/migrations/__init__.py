"""Schema migrations, one list per component, each applied once and in order.

A component's list only ever grows: append a step, never edit one that has shipped.
Versions are tracked per component so areas of the product evolve independently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from portcullis.store.base import StoreError
from portcullis.store.migrations import (
    bayes,
    core,
    defenses,
    reputation,
    stats,
    updates,
    web,
)

if TYPE_CHECKING:
    from portcullis.store.base import Store

# A step is SQL text (may hold several statements) or a callable taking the store.
Step = str | Callable[["Store"], None]

COMPONENTS: dict[str, list[Step]] = {
    "core": core.STEPS,
    "defenses": defenses.STEPS,
    "web": web.STEPS,
    "bayes": bayes.STEPS,
    "reputation": reputation.STEPS,
    "updates": updates.STEPS,
    "stats": stats.STEPS,
}


def apply(store: Store) -> None:
    """Bring every component's schema up to date.

    A component already current is only read: opening the store takes no write lock
    then, so a process starting while another writes at length (the housekeeping
    thread's purge, bulk training) opens it at once.  One behind is migrated in a
    transaction that reads its version again, as another process may have migrated it
    meanwhile (the gateway, the web UI and the firewall monitor all start at boot).
    """
    store.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    for component, steps in COMPONENTS.items():
        if _version(store, component) >= len(steps):
            continue
        with store.transaction():
            done = _version(store, component)
            for number, step in enumerate(steps[done:], start=done + 1):
                try:
                    _run(store, step)
                except Exception as exc:    # whatever the step raised; rolled back
                    raise StoreError(f"migration {component} {number} failed: {exc}") from exc
                store.execute(
                    "INSERT INTO schema_version (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, number))


def _run(store: Store, step: Step) -> None:
    if callable(step):
        step(store)
    else:
        for statement in _statements(step):
            store.execute(statement)


def _version(store: Store, component: str) -> int:
    return int(store.scalar("SELECT version FROM schema_version WHERE component = ?",
                            (component,), default=0))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
