"""Test-wide rules: every test belongs to an area marker, and real parts need root."""

from __future__ import annotations

import os

import pytest

AREAS = {"gateway", "reputation", "defenses", "antivirus", "webui", "firewall", "updates",
         "image", "reliability", "cluster"}


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
