"""SYN floods: the SYN proxy answers IPv4 SYNs to 25 and 80 with SYN cookies, so forged SYNs
fill no conntrack table, and real senders still get through."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    ATTACKER6,
    HERE,
    OUTSIDER,
    OUTSIDER6,
)

pytestmark = pytest.mark.firewall

FLOOD = 40_000          # forged SYNs, from SOURCES addresses nobody holds
SOURCES = 150
# The first of SOURCES addresses of the attacker's own link that no host holds: nothing
# answers the cookies sent to them.
FORGED = "203.0.113.100"
MESSAGE = 256 * 1024    # several windows' worth: the proxied connection carries real data
CAP = 16_384            # the ruleset's cap on connections to 25 and 80 the proxy does not take
PER_64 = 1024           # the part of it one IPv6 /64 may hold
NEXT_64 = 2**64         # the step from an address to the same one of the next /64


def start_flood(site, count: int = FLOOD, first: str = FORGED, target: str = APPLIANCE,
                step: int = 1) -> subprocess.Popen:
    """Forged SYNs to 25 from SOURCES addresses ``step`` apart."""
    return site.attacker.popen(sys.executable, str(HERE / "spoof.py"), first, target, "25",
                               str(count), str(SOURCES), str(step))


def smtp(site, src: str, dst: str) -> dict:
    result = site.vendor.run(sys.executable, str(HERE / "smtp_client.py"), src, dst,
                             str(MESSAGE), timeout=60)
    return json.loads(result.stdout)


def received(site) -> int:
    """IP packets the appliance has received (its namespace's count)."""
    lines = [line.split() for line in site.appliance.run("cat", "/proc/net/snmp").stdout
             .decode().splitlines() if line.startswith("Ip:")]
    return int(lines[1][lines[0].index("InReceives")])


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_syn_flood_takes_no_conntrack_entries_and_mail_still_gets_through(site):
    """Every forged SYN to 25 was a conntrack entry (60 s in SYN_RECV): a flood could fill
    nf_conntrack_max and the appliance refused everyone.  The proxy answers them from a
    cookie and keeps nothing; a real sender completes its handshake and delivers."""
    site.apply()
    before, proxy_before, packets = (site.conntrack_count(), site.syn_proxy_stats(),
                                     received(site))
    flood = start_flood(site)
    try:
        wait_until(lambda: received(site) > packets + 1000)     # the flood is on
        during = smtp(site, OUTSIDER, APPLIANCE)
        still_flooding = flood.poll() is None
    finally:
        flood.wait(120)
    assert flood.returncode == 0
    grown = site.conntrack_count() - before
    assert grown < 50, f"{grown} conntrack entries for {FLOOD} forged SYNs"
    answered = site.syn_proxy_stats()["syn_received"] - proxy_before["syn_received"]
    assert answered > FLOOD // 2          # most reached the appliance, and were answered
    assert still_flooding, "the flood ended before the real exchange did"
    for exchange in (during, smtp(site, OUTSIDER, APPLIANCE)):
        assert exchange.get("code") == 250, exchange
        assert exchange["answer"].startswith("accepted ")
        # The service sees the sender's own address (its per-source limits still work).
        assert f"[{OUTSIDER}]" in exchange["ehlo"]
    counters = site.counters()
    assert counters["syn_proxied"] >= answered
    assert counters["public_accepted"] == 2


def test_syn_proxy_can_be_turned_off(site):
    """[firewall] syn_proxy = false: SYNs to 25 are tracked again (each forged one an
    entry), and connections work as before."""
    site.apply(syn_proxy=False, ruleset=site.lasting_handshakes())
    before = site.conntrack_count()
    flood = start_flood(site, count=2000)
    assert flood.wait(60) == 0
    assert site.conntrack_count() - before > 1000
    assert site.connects(site.vendor, OUTSIDER, APPLIANCE, 25)
    counters = site.counters()
    assert counters["syn_proxied"] == 0
    assert counters["public_accepted"] >= 1


def test_black_listed_source_is_dropped_not_answered_by_the_syn_proxy(site):
    """The proxy answers before any service sees a connection, and its connection to the
    service comes through loopback: a black-listed sender must be dropped before it, or it
    would get a handshake and its mail past the firewall's black list."""
    site.apply(drop_black_list=True)
    for family, network in (("v4", "203.0.113.0/24"), ("v6", "2001:db8:66::/64")):
        site.appliance.run("nft", f"add element inet portcullis blacklist_{family} "
                                  f"{{ {network} }}")
    before = site.syn_proxy_stats()
    results = site.probe(site.attacker, [{"src": ATTACKER, "dst": APPLIANCE, "port": 25},
                                         {"src": ATTACKER6, "dst": APPLIANCE6, "port": 80}])
    assert [r["connected"] for r in results] == [False, False]
    assert site.syn_proxy_stats()["syn_received"] == before["syn_received"]
    counters = site.counters()
    assert counters["blacklisted"] >= 2
    assert counters["syn_proxied"] == 0
    # Others still come through the proxy.
    assert site.connects(site.vendor, OUTSIDER, APPLIANCE, 25)
    assert site.counters()["syn_proxied"] == 1


def test_ipv6_syn_flood_is_capped_and_ipv4_mail_still_gets_through(site):
    """IPv6 SYNs do not go through the proxy: each is a conntrack entry, in the table IPv4
    shares.  A flood of them (from many /64s) stops at the cap, and IPv4 senders keep
    getting through."""
    site.apply(ruleset=site.lasting_handshakes())
    before = site.conntrack_count()
    flood = start_flood(site, CAP + 8000, "2001:db8:66::1:0", APPLIANCE6, NEXT_64)
    assert flood.wait(120) == 0
    grown = site.conntrack_count() - before
    assert grown <= CAP + 50, f"{grown} conntrack entries"
    assert site.counters()["public_capped"] > 1000
    exchange = smtp(site, OUTSIDER, APPLIANCE)
    assert exchange.get("code") == 250, exchange
    # The price: while the cap is full, IPv6 senders are refused (and retry, or use IPv4),
    # for as long as the forged entries live: about 12 s (test_half_open), not 90.


def test_one_ipv6_64_cannot_fill_the_cap_alone(site):
    """A host that does not forge its source, flooding from the addresses of its /64, filled
    the cap by itself: every other IPv6 sender was refused."""
    site.apply(ruleset=site.lasting_handshakes())
    before = site.conntrack_count()
    flood = start_flood(site, CAP + 8000, "2001:db8:66::1:0", APPLIANCE6)
    assert flood.wait(120) == 0
    grown = site.conntrack_count() - before
    assert grown <= PER_64 + 50, f"{grown} conntrack entries"
    assert site.counters()["public_capped_64"] > 0
    assert site.connects(site.vendor, OUTSIDER6, APPLIANCE6, 25)


@pytest.fixture
def attacker_checksums_in_software(site):
    """The attacker's packets arrive as from a network card without receive checksum
    offload (checksums not yet verified), as many do."""
    listed = site.attacker.run("ip", "-o", "-6", "addr", "show").stdout.decode()
    device = next(line.split()[1] for line in listed.splitlines() if ATTACKER6 + "/" in line)
    offload = [sys.executable, str(HERE / "checksum_offload.py"), device]
    site.attacker.run(*offload, "off")
    yield
    site.attacker.run(*offload, "on")


def test_ipv6_senders_are_not_handed_to_the_syn_proxy(site, attacker_checksums_in_software):
    """nft's synproxy checks a packet's TCP checksum the IPv4 way: it dropped every IPv6 SYN
    whose checksum the card had not verified, so IPv6 senders could not connect at all."""
    site.apply()
    smtp_v6, smtp_v4 = site.probe(site.attacker, [
        {"src": ATTACKER6, "dst": APPLIANCE6, "port": 25, "timeout": 3.0},
        {"src": ATTACKER, "dst": APPLIANCE, "port": 25, "timeout": 3.0}])
    assert smtp_v6["banner"].startswith("220 "), smtp_v6
    assert smtp_v4["banner"].startswith("220 "), smtp_v4
    counters = site.counters()
    assert counters["syn_proxied"] == 1            # the IPv4 one
    assert counters["public_accepted"] == 2
