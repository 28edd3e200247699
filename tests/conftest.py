"""Test-wide rules: every test belongs to an area marker, and real parts need root."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.soak import SCALE

AREAS = {"gateway", "reputation", "defenses", "antivirus", "webui", "firewall", "updates",
         "image", "reliability", "cluster"}


# Property tests: make test draws the same examples every run, so a CI result means the
# same thing twice; make soak draws fresh random ones each time, to find what is new.
# No per-example deadline and no "too slow" health check: those would be timing assertions
# on a noisy machine.
NO_TIMING = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("repeatable", derandomize=True, **NO_TIMING)
settings.register_profile("exploring", derandomize=False, **NO_TIMING)
settings.load_profile("exploring" if SCALE > 1 else "repeatable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if not AREAS & {m.name for m in item.iter_markers()}]
    if unmarked:
        raise pytest.UsageError("tests without an area marker ("
                                + ", ".join(sorted(AREAS)) + "):\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def root_required() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test drives real daemons and network namespaces: run as root")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support import dirs

    dirs.cleanup()
