"""Forged SYNs the firewall lets through (to vendor SSH, to 25 and 80 over IPv6, to the
tarpit) each make a conntrack entry: those entries go soon, and the tarpit's are capped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.firewall.conftest import APPLIANCE, APPLIANCE6, ATTACKER6, HERE

pytestmark = pytest.mark.firewall

HANDSHAKE_TIMEOUT = 5       # the ruleset's ct timeout "handshake", seconds
ESTABLISHED_TIMEOUT = 7440  # and its timeout once they are established
TARPIT_CAP = 4096           # the ruleset's cap on connections redirected to the tarpit
SOURCES = 150
# Addresses nobody holds (nothing answers the SYN-ACKs sent to them): in the vendor's
# netblock, of the attacker's link, of the attacker's IPv6 network.
FORGED_VENDOR, FORGED, FORGED6 = "207.219.44.100", "203.0.113.100", "2001:db8:66::1:0"


def forge(site, first: str, target: str, port: int, count: int) -> None:
    site.attacker.run(sys.executable, str(HERE / "spoof.py"), first, target, str(port),
                      str(count), str(SOURCES), timeout=120)


def half_open(site, port: int) -> list[int]:
    """Seconds left of each entry to ``port`` in the appliance's conntrack table whose
    handshake is not done."""
    return entries(site, port, ("SYN_SENT", "SYN_RECV"))


def entries(site, port: int, states: tuple[str, ...]) -> list[int]:
    """Seconds left of each entry to ``port`` in the appliance's conntrack table in one of
    these TCP states."""
    left = []
    for line in site.appliance.run("cat", "/proc/net/nf_conntrack").stdout.decode().splitlines():
        fields = line.split()
        if fields[2] == "tcp" and fields[5] in states and f"dport={port}" in fields:
            left.append(int(fields[4]))
    return left


@pytest.fixture
def tarpit_listener(site):
    process = site.start(site.appliance, sys.executable, str(HERE / "listeners.py"), "7999",
                         ready="ready")
    yield
    site.stop(process)


def make_scanners(site) -> None:
    """Forged knocks on a closed port make each of the forged sources a scanner."""
    forge(site, FORGED, APPLIANCE, 3333, SOURCES * 6)
    assert site.counters()["scanner_marked"] >= SOURCES


def test_entries_of_forged_syns_expire_soon(site, tarpit_listener):
    """A forged SYN's entry was kept about 90 s (60 s after each SYN-ACK sent again): a
    flood of them to vendor SSH (which takes no SYN proxy) filled the conntrack table, and
    one to 25 over IPv6 kept its cap full, every IPv6 sender refused, long after."""
    site.apply(vendor_netblocks=["207.219.44.0/24"])
    # Entries of earlier tests' floods (from the same forged addresses) are not this one's.
    site.appliance.run(sys.executable, str(HERE / "conntrack_flush.py"))
    make_scanners(site)
    for first, target, port in ((FORGED_VENDOR, APPLIANCE, 22), (FORGED6, APPLIANCE6, 25),
                                (FORGED, APPLIANCE, 3334)):
        forge(site, first, target, port, 100)
        left = half_open(site, port)
        assert left, f"no entries for the SYNs forged to {port}"
        assert max(left) <= HANDSHAKE_TIMEOUT, (port, left)
    counters = site.counters()
    assert counters["tarpit_accepted"] >= 1
    assert counters["ssh_opening"] >= 1


def test_forged_syns_redirected_to_the_tarpit_are_capped(site, tarpit_listener):
    """Forged knocks make any address a scanner; forged SYNs from those addresses to
    closed ports were all redirected to the tarpit, a conntrack entry each."""
    site.apply(ruleset=site.lasting_handshakes())
    make_scanners(site)
    before = site.conntrack_count()
    forge(site, FORGED, APPLIANCE, 3334, TARPIT_CAP + 3000)
    grown = site.conntrack_count() - before
    assert grown <= TARPIT_CAP + 50, f"{grown} conntrack entries"
    assert site.counters()["tarpit_capped"] > 0


def test_established_entries_of_connections_taken_from_their_syn_go_within_hours(site):
    """conntrack takes a handshake's ACK whose acknowledgement is anywhere within 66,000 of
    the appliance's: a blind attacker sweeping forged ACKs after a SYN forged to 25 over
    IPv6 "completed" the handshake, and the entry (about one sweep in three here; the
    appliance's reset does not always close it) was kept established 5 days, counted
    against a /64's share of the cap and the cap itself.  The entries of connections
    taken from their SYN on now go after ESTABLISHED_TIMEOUT of quiet (a real one, held
    open, shows the timeout even when no sweep left an entry)."""
    site.apply()
    site.appliance.run(sys.executable, str(HERE / "conntrack_flush.py"))
    site.attacker.run(sys.executable, str(HERE / "blind_ack.py"), FORGED6, APPLIANCE6, "25",
                      "3", timeout=300)
    holder = site.attacker.popen(
        sys.executable, "-c", "import socket, sys; "
        f"s = socket.create_connection(({APPLIANCE6!r}, 25), source_address=({ATTACKER6!r}, 0));"
        " print(s.recv(100) and 'open', flush=True); sys.stdin.read()",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        left = entries(site, 25, ("ESTABLISHED",))
    finally:
        holder.kill()
        holder.wait()
    assert left
    assert max(left) <= ESTABLISHED_TIMEOUT, left
