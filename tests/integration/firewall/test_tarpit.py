"""Scanners' connections to closed ports are held by the userspace tarpit."""

from __future__ import annotations

import json
import sys

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    ATTACKER6,
    HERE,
    OUTSIDER,
    addresses_of_the_same_64,
)

pytestmark = pytest.mark.firewall

PER_SOURCE = 2
ATTACKER6_64 = "2001:db8:66::/64"        # an IPv6 scanner is its /64


@pytest.fixture
def tarpit(site):
    site.apply(tarpit_per_source=PER_SOURCE, tarpit_trickle_seconds=0.2)
    # At debug level it logs each connection it holds, with the port the client asked for.
    process = site.start(site.appliance, *site.portcullis("tarpit", "--log-level", "debug"),
                         ready="tarpit ready")
    yield process
    site.stop(process)


def caught(site, ns, src: str, dst: str, port: int, connections: int) -> dict:
    result = ns.run(sys.executable, str(HERE / "tarpit_client.py"), src, dst, str(port),
                    str(connections), timeout=60)
    return json.loads(result.stdout)


def scanners(site) -> set[str]:
    return {e["address"] for e in site.status()["scanners"]}


def test_closed_port_is_silent_until_the_source_scans(site, tarpit):
    assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 2323, timeout=0.5)
    assert scanners(site) == set()
    assert site.counters()["tarpit_redirected"] == 0


def test_scanner_is_held_by_the_tarpit_with_a_zero_window(site, tarpit):
    site.nmap(site.attacker, "-sS", "-p", "3000-3009", APPLIANCE)
    assert ATTACKER in scanners(site)
    report = caught(site, site.attacker, ATTACKER, APPLIANCE, 2323, 1)
    assert report["connected"] == [True]
    # The tarpit offers a tiny window and never reads: it closes to zero, writes stall.
    assert 0 < report["window_at_start"] <= 4096
    assert report["window_after"] == 0
    assert report["acknowledged"] <= report["window_at_start"]
    assert report["unacknowledged"] > 0
    assert report["trickled"].startswith("220-")           # bytes trickle out meanwhile
    assert report["open"] == [True]
    # SO_ORIGINAL_DST told the tarpit which port the scanner asked for.
    assert "asked for port 2323" in site.log_of(tarpit)
    assert site.counters()["tarpit_accepted"] >= 1


def test_scanner_reaches_the_public_ports_through_the_syn_proxy(site, tarpit):
    """The tarpit needs conntrack (a scanner's first SYN to a closed port is redirected);
    the SYN proxy takes the SYNs to 25 and 80 out of it.  A scanner's connection to 25
    still reaches the real service, through the proxy, and its next one to a closed port
    the tarpit."""
    site.nmap(site.attacker, "-sS", "-p", "3000-3009", APPLIANCE)
    assert ATTACKER in scanners(site)
    smtp = site.probe(site.attacker, [{"src": ATTACKER, "dst": APPLIANCE, "port": 25,
                                       "timeout": 2.0}])[0]
    assert smtp["banner"].startswith("220 gw.test"), smtp
    report = caught(site, site.attacker, ATTACKER, APPLIANCE, 2323, 1)
    assert report["window_after"] == 0
    assert report["open"] == [True]
    counters = site.counters()
    assert counters["syn_proxied"] == 1
    assert counters["public_accepted"] == 1
    assert counters["tarpit_accepted"] >= 1


def test_tarpit_caps_connections_per_source(site, tarpit):
    site.nmap(site.attacker, "-sS", "-p", "3000-3009", APPLIANCE)
    site.nmap(site.vendor, "-S", OUTSIDER, "-sS", "-p", "3000-3009", APPLIANCE)
    report = caught(site, site.attacker, ATTACKER, APPLIANCE, 2323, PER_SOURCE + 1)
    # The connection over the cap is accepted by the kernel, then reset by the tarpit.
    assert report["open"] == [True] * PER_SOURCE + [False]
    # The cap is per source: another scanner is still held.
    other = caught(site, site.vendor, OUTSIDER, APPLIANCE, 2424, 1)
    assert other["open"] == [True]


def test_ipv6_scanner_is_held_too(site, tarpit):
    site.nmap(site.attacker, "-6", "-sS", "-p", "3000-3009", APPLIANCE6)
    assert ATTACKER6_64 in scanners(site)
    report = caught(site, site.attacker, ATTACKER6, APPLIANCE6, 2525, 1)
    assert report["window_after"] == 0
    assert report["open"] == [True]
    assert "asked for port 2525" in site.log_of(tarpit)


@pytest.fixture
def attacker_addresses(site):
    """Further addresses of the attacker's own /64 (one host may use them all)."""
    with addresses_of_the_same_64(site.attacker, ATTACKER6, "2001:db8:66::", 12) as added:
        yield added


def test_ipv6_scanner_with_a_fresh_address_per_knock_is_found_and_held_as_its_64(
        site, tarpit, attacker_addresses):
    knockers = attacker_addresses[:8]
    site.probe(site.attacker, [{"src": src, "dst": APPLIANCE6, "port": 3000 + n,
                                "timeout": 0.3} for n, src in enumerate(knockers)])
    # Each address knocked once: only as one /64 is this source seen to scan.
    assert scanners(site) == {ATTACKER6_64}
    # Other addresses of the /64 are held, and the tarpit's per-source cap counts the /64.
    fresh = attacker_addresses[8:8 + PER_SOURCE + 1]
    report = caught(site, site.attacker, ",".join(fresh), APPLIANCE6, 2626, PER_SOURCE + 1)
    assert report["connected"] == [True] * (PER_SOURCE + 1)
    assert report["window_after"] == 0
    assert report["open"] == [True] * PER_SOURCE + [False]
    assert "asked for port 2626" in site.log_of(tarpit)
    # Unblocking the /64 (as status lists it) or one of its addresses lifts it.
    site.cli("firewall", "unblock", ATTACKER6_64)
    assert scanners(site) == set()


def test_https_is_answered_with_a_reset_even_for_a_scanner(site, tarpit):
    """443 is reset so that a browser trying HTTPS first falls back to the web UI on 80 at
    once; a source marked as a scanner (anyone can forge a few knocks in an office's name)
    must get that reset too, not a tarpit trickling bytes its TLS stack cannot read."""
    site.nmap(site.attacker, "-sS", "-p", "3000-3009", APPLIANCE)
    assert ATTACKER in scanners(site)
    result = site.probe(site.attacker, [{"src": ATTACKER, "dst": APPLIANCE, "port": 443,
                                         "timeout": 2.0}])[0]
    assert result == {"connected": False, "banner": "", "error": "ConnectionRefusedError"}
    assert site.counters()["https_reset"] >= 1
