"""SSH exhaustion: too many new connections from one source block that source for a while."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    HERE,
    VENDOR_A,
    VENDOR_A6,
    VENDOR_B,
    VENDOR_B6,
    addresses_of_the_same_64,
)

pytestmark = pytest.mark.firewall

BLOCK_MINUTES = 0.1      # 6 seconds: short enough to see the block end within the test
VENDOR_64 = "2001:db8:44::/64"     # VENDOR_A6's /64: an IPv6 source is its /64
SILENT_VENDOR = "207.219.44.77"      # a vendor address no host answers from
CLIENT_BANNER = "SSH-2.0-probe\r\n"
# Handshakes raced against their first data: about 1 in 150 was metered twice, so 1,000
# found it all but always.
RACES = 1000
# Four rapid connections at ssh_rate 3: sshd greets three, the guard resets the fourth.
OVER_THE_RATE = ["sshd", "sshd", "sshd", "reset"]


def blocked_sources(site) -> dict[str, int]:
    return {e["address"]: e["expires"] for e in site.status()["ssh_blocked"]}


def rapid_ssh(site, src: str | list[str], dst: str, count: int) -> list[str]:
    """How each of ``count`` rapid connections (from ``src``, or from each address of a
    list in turn), each sending its banner at once as an SSH client does, ended: "sshd"
    (it got sshd's banner), "reset" (the guard's reset: the one over the rate completes
    its handshake, sshd's side is reset, and so is the client's banner), or the error.

    The guard meters a connection at its handshake, before sshd greets it, so a
    connection that timed out waiting for the banner (a lost packet, a busy host) was
    still counted; with a short wait the next one was blocked and the vendor seemed
    blocked a connection early.  The wait costs nothing when all goes well: sshd greets
    at once and the guard resets at once."""
    sources = [src] if isinstance(src, str) else src
    results = site.probe(site.vendor, [{"src": sources[n % len(sources)], "dst": dst,
                                        "port": 22, "timeout": 10.0, "send": CLIENT_BANNER}
                                       for n in range(count)])
    return ["sshd" if r["banner"].startswith("SSH-2.0-")
            else "reset" if r["error"] == "ConnectionResetError" else r["error"] or "closed"
            for r in results]


def test_fourth_rapid_ssh_connection_blocks_the_source_but_not_other_vendor_addresses(site):
    site.apply(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"], ssh_rate=3,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 4) == OVER_THE_RATE
    # Another vendor address is not affected, nor is the same vendor over IPv6.
    assert site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)
    assert site.connects(site.vendor, VENDOR_A6, APPLIANCE6, 22)
    blocked = blocked_sources(site)
    assert set(blocked) == {VENDOR_A}
    assert 0 < blocked[VENDOR_A] <= BLOCK_MINUTES * 60
    counters = site.counters()
    assert counters["ssh_exhaustion"] == 1
    assert counters["ssh_accepted"] == 5
    # While blocked, further attempts are dropped by the block set.
    assert not site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)
    assert site.counters()["ssh_blocked"] > counters["ssh_blocked"]


def wait_for_the_block_to_end(site, source: str) -> None:
    deadline = time.monotonic() + 60
    while source in blocked_sources(site):
        assert time.monotonic() < deadline, "the block never expired"
        time.sleep(0.5)


def test_blocked_ssh_source_is_unblocked_after_the_timeout(site):
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 4)[-1] == "reset"
    over_the_rate = time.monotonic()
    wait_for_the_block_to_end(site, VENDOR_A)
    # Off the block set; the rate (3 a minute) gives it its next connection 20 s after
    # its burst, and the one after that is over the rate again.
    time.sleep(max(0.0, over_the_rate + 22 - time.monotonic()))
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 2) == ["sshd", "reset"]


def test_a_block_shorter_than_a_minute_does_not_restart_the_count(site):
    """The meter forgot a source after ssh_block_minutes of quiet when that was under a
    minute: with a 6 s block, 3 connections every 7 s (30 a minute) were never over a
    rate of 3 a minute."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 3) == ["sshd"] * 3
    time.sleep(BLOCK_MINUTES * 60 + 1)
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 1) == ["reset"]
    assert set(blocked_sources(site)) == {VENDOR_A}


def test_exhaustion_over_ipv6_blocks_the_ipv6_source(site):
    site.apply(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"], ssh_rate=3,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, VENDOR_A6, APPLIANCE6, 4) == OVER_THE_RATE
    assert set(blocked_sources(site)) == {VENDOR_64}
    assert site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)


def test_ssh_rate_is_a_site_value(site):
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=5,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 6) == ["sshd"] * 5 + ["reset"]


def test_forged_vendor_syns_do_not_lock_the_vendor_out(site):
    """Anyone can put a vendor address on a SYN; only completed handshakes count, or four
    forged packets would shut the update channel for ssh_block_minutes."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3, ssh_block_minutes=10)
    site.attacker.run(sys.executable, str(HERE / "spoof.py"), VENDOR_A, APPLIANCE, "22", "10")
    assert blocked_sources(site) == {}
    # The vendor host's resets to the SYN-ACKs pass, and end those half-open connections.
    assert site.counters()["ssh_early_close"] == 0
    assert rapid_ssh(site, VENDOR_A, APPLIANCE, 4) == OVER_THE_RATE
    assert set(blocked_sources(site)) == {VENDOR_A}


def test_blind_forged_handshakes_do_not_lock_the_vendor_out(site):
    """conntrack takes a handshake's ACK whose acknowledgement is anywhere within 66,000 of
    the appliance's: a blind attacker forging a vendor address (one that does not answer
    the SYN-ACK with a reset, like a host behind a stateful firewall) swept 65,000 ACKs a
    SYN, and four such "handshakes" in a few seconds blocked that vendor address for
    ssh_block_minutes.  Only handshakes the appliance's own TCP accepted count."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3, ssh_block_minutes=10)
    site.attacker.run(sys.executable, str(HERE / "blind_ack.py"), SILENT_VENDOR, APPLIANCE,
                      "22", "4", timeout=300)
    counters = site.counters()
    assert counters["ssh_opening"] == 4
    assert counters["ssh_exhaustion"] == 0
    assert counters["ssh_accepted"] == 0
    assert blocked_sources(site) == {}


def test_handshakes_reset_before_sshd_answers_are_metered(site):
    """The guard meters a connection at sshd's first packet; a vendor host resetting each
    connection right after its handshake (sshd has taken and forked for it) had sshd
    answer none of them, so none was metered: the client's reset is dropped until sshd
    has answered, and sshd's answer is metered (and the one over the rate reset)."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3, ssh_block_minutes=10)
    completed = int(site.vendor.run(sys.executable, str(HERE / "reset_after_handshake.py"),
                                    VENDOR_A, APPLIANCE, "4", timeout=60).stdout)
    assert completed == 4
    deadline = time.monotonic() + 10
    while (metered := site.counters())["ssh_exhaustion"] == 0:
        assert time.monotonic() < deadline, metered
        time.sleep(0.2)
    assert metered["ssh_accepted"] == 3
    assert set(blocked_sources(site)) == {VENDOR_A}


def test_handshake_racing_the_clients_first_data_is_metered_once(site):
    """An SSH client sends its banner right after the handshake's ACK; handled on two CPUs
    at once, both saw the handshake's mark before either cleared it, so a connection was
    metered twice now and then and the vendor blocked a connection early."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=10000, ssh_block_minutes=10)
    completed = int(site.vendor.run(sys.executable, str(HERE / "handshake_race.py"), VENDOR_A,
                                    APPLIANCE, str(RACES), timeout=300).stdout)
    assert completed > RACES // 2
    counters = site.counters()
    assert counters["ssh_accepted"] == completed
    assert counters["ssh_exhaustion"] == 0


def test_new_syn_on_a_lingering_connection_goes_through_the_guard(site):
    """conntrack takes a bare SYN on the addresses and ports of a connection it still holds
    (sshd's side gone, the entry lingering) as part of that connection: accepted as
    established, it opened a new connection past the block sets and the meter."""
    site.apply(vendor_netblocks=["207.219.44.0/24"], ssh_rate=3, ssh_block_minutes=10)
    client = site.vendor.popen(sys.executable, str(HERE / "lingering.py"), VENDOR_A,
                               APPLIANCE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert client.stdout.readline().strip() == "lingering"
        site.cli("firewall", "block", VENDOR_A)
        blocked = site.counters()["ssh_blocked"]
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "sent"
        assert site.counters()["ssh_blocked"] == blocked + 1
    finally:
        client.kill()
        client.wait()


@pytest.fixture
def vendor_addresses(site):
    """Further addresses of VENDOR_A6's own /64 (one host may use them all)."""
    with addresses_of_the_same_64(site.vendor, VENDOR_A6, "2001:db8:44::", 4) as added:
        yield added


def test_ipv6_source_taking_a_fresh_address_per_connection_is_metered_as_its_64(
        site, vendor_addresses):
    """Per address, a host of an IPv6 vendor network had 2**64 times the rate."""
    site.apply(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"], ssh_rate=3,
               ssh_block_minutes=BLOCK_MINUTES)
    assert rapid_ssh(site, vendor_addresses, APPLIANCE6, 4) == OVER_THE_RATE
    assert set(blocked_sources(site)) == {VENDOR_64}
    assert not site.connects(site.vendor, VENDOR_B6, APPLIANCE6, 22)
    site.cli("firewall", "unblock", VENDOR_B6)
    assert site.connects(site.vendor, VENDOR_B6, APPLIANCE6, 22)
