"""Counting invalid recipients per client, with a clock the test controls."""

from __future__ import annotations

import pytest

from portcullis.checks.harvest import HarvestPolicy, blocked_until, purge, record_refusal
from portcullis.store import open_store

pytestmark = pytest.mark.defenses

POLICY = HarvestPolicy(threshold=3, window=600, block=3600, reject=False)
T0 = 1_000_000.0


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path)


def test_client_is_blocked_when_it_reaches_the_threshold(store) -> None:
    assert not record_refusal(store, "192.0.2.1", POLICY, T0)
    assert not record_refusal(store, "192.0.2.1", POLICY, T0 + 1)
    assert record_refusal(store, "192.0.2.1", POLICY, T0 + 2)
    assert blocked_until(store, "192.0.2.1", T0 + 3) == T0 + 2 + 3600
    assert blocked_until(store, "192.0.2.2", T0 + 3) is None


def test_attempts_spread_beyond_the_window_do_not_add_up(store) -> None:
    for n in range(5):
        assert not record_refusal(store, "192.0.2.1", POLICY, T0 + n * 601)


def test_block_ends_after_its_time(store) -> None:
    for n in range(3):
        record_refusal(store, "192.0.2.1", POLICY, T0 + n)
    assert blocked_until(store, "192.0.2.1", T0 + 3603) is None
    assert purge(store, POLICY, T0 + 3603) == 1


def test_threshold_zero_turns_detection_off(store) -> None:
    off = HarvestPolicy(threshold=0, window=600, block=3600, reject=False)
    assert not any(record_refusal(store, "192.0.2.1", off, T0 + n) for n in range(50))


def test_ipv6_clients_are_counted_by_their_slash_64(store) -> None:
    for n in range(3):
        record_refusal(store, f"2001:db8:1:2::{n + 1}", POLICY, T0 + n)
    assert blocked_until(store, "2001:db8:1:2:ffff::9", T0 + 3) is not None
    assert blocked_until(store, "2001:db8:1:3::1", T0 + 3) is None
