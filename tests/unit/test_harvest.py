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


def _block(store, client: str) -> None:
    for n in range(POLICY.threshold):
        record_refusal(store, client, POLICY, T0 + n)


@pytest.mark.parametrize(("blocked", "typed"), [
    ("2001:db8:1:2::9", "2001:DB8:1:2:0:0:0:9"),        # the address, spelled otherwise
    ("2001:db8:1:2::9", "2001:db8:1:2::/64"),           # as `harvest show` lists it
    ("2001:db8:1:2::9", "2001:DB8:0001:0002::/64"),
    ("2001:db8:1:2::9", "2001:db8:1:2::77"),            # another address of its /64
    ("192.0.2.7", " 192.0.2.7 "),
    ("192.0.2.7", "192.0.2.7/32"),
    ("192.0.2.7", "::ffff:192.0.2.7"),                  # as a dual-stack listener saw it
])
def test_unblock_takes_a_client_however_it_is_written(store, blocked: str, typed: str) -> None:
    # Only the stored text matched: the /64 listed by `harvest show` written with its
    # zeros, an address in capitals or with /32 found nothing, and the block stayed.
    from portcullis.checks.harvest import unblock

    _block(store, blocked)
    assert unblock(store, typed) == 1
    assert blocked_until(store, blocked, T0 + 10) is None


def test_unblock_of_a_network_lifts_every_client_in_it(store) -> None:
    from portcullis.checks.harvest import unblock

    for client in ("192.0.2.7", "192.0.2.200", "198.51.100.1", "2001:db8:1:2::9",
                   "2001:db8:1:3::9", "2001:db8:2::9"):
        _block(store, client)
    assert unblock(store, "192.0.2.0/24") == 2
    assert unblock(store, "2001:db8:1::/48") == 2
    assert [blocked_until(store, c, T0 + 10) is None for c in
            ("192.0.2.7", "198.51.100.1", "2001:db8:1:3::1", "2001:db8:2::9")] == \
        [True, False, True, False]


@pytest.mark.parametrize("typed", ["", "bot.example", "192.0.2.7/33", "192.0.2.0/24; DROP"])
def test_unblock_of_no_address_lifts_nothing(store, typed: str) -> None:
    from portcullis.checks.harvest import unblock

    _block(store, "192.0.2.7")
    assert unblock(store, typed) == 0
    assert blocked_until(store, "192.0.2.7", T0 + 10) is not None
