"""Counting invalid recipients per client, with a clock the test controls."""

from __future__ import annotations

import asyncio

import pytest

from portcullis.checks.harvest import (
    HarvestPolicy,
    blocked_until,
    clients,
    purge,
    record_refusal,
    unblock,
)
from portcullis.directory.relays import add_relay
from portcullis.directory.settings import set_settings
from portcullis.services import Services
from portcullis.store import open_store
from tests.unit.test_smtp_session import ENVELOPE, Sink, answer, gateway, gateway_config

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
    _block(store, blocked)
    assert unblock(store, typed) == 1
    assert blocked_until(store, blocked, T0 + 10) is None


def test_unblock_of_a_network_lifts_every_client_in_it(store) -> None:
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
    _block(store, "192.0.2.7")
    assert unblock(store, typed) == 0
    assert blocked_until(store, "192.0.2.7", T0 + 10) is not None


class RefusingHost(Sink):
    """An internal host without the recipient: 550 5.1.1 at RCPT."""

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


def counted_after_refused_rcpt(state, relays: list[str]) -> list[str]:
    """The clients harvest detection counts after one RCPT the internal host refuses as
    unknown, the client (127.0.0.1) being one of ``relays`` or from the Internet."""
    async def main() -> None:
        async with gateway(state, sink=RefusingHost()) as port:
            admin = Services.open(gateway_config(state))
            set_settings(admin.store, admin.config, {"harvest_threshold": 5})
            for network in relays:
                add_relay(admin.store, network)
            admin.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answer(reader, b"220")
            writer.write(ENVELOPE)
            for _ in range(2):                  # EHLO, MAIL
                await answer(reader, b"250")
            assert (await answer(reader, b"550")).startswith(b"550 5.1.1")
            writer.close()

    asyncio.run(main())
    services = Services.open(gateway_config(state))
    try:
        return [c["client"] for c in clients(services.store)]
    finally:
        services.close()


def test_the_internal_hosts_user_unknown_counts_for_internet_clients_only(tmp_path) -> None:
    # An Internet client's recipient the internal host does not have is a guessed address
    # (for a domain validated by callout, the internal host's answer is the only word on
    # it), but a relay is the organisation's own mail server: a user's typo sent through
    # it was counted, and the relay listed among the harvesters.
    assert counted_after_refused_rcpt(tmp_path / "internet", []) == ["127.0.0.1"]
    assert counted_after_refused_rcpt(tmp_path / "relay", ["127.0.0.1"]) == []
