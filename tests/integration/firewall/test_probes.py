"""Badly formed packets: NULL, XMAS and FIN probes and lone ACKs are dropped and counted;
stealth probes make their source a scanner."""

from __future__ import annotations

import pytest

from tests.integration.firewall.conftest import APPLIANCE, APPLIANCE6, ATTACKER

pytestmark = pytest.mark.firewall

PORTS = "22,25,80,443,3000-3005"
PORT_COUNT = 10
PROXIED = 2         # 25 and 80: the SYN proxy's
ATTACKER6_64 = "2001:db8:66::/64"        # an IPv6 scanner is its /64


@pytest.mark.parametrize(("scan", "counter"), [
    ("-sN", "tcp_null"),
    ("-sX", "tcp_xmas"),
    ("-sF", "tcp_fin_without_ack"),
])
def test_stealth_probes_are_dropped_even_on_open_ports(site, scan, counter):
    site.apply()
    states = site.nmap(site.attacker, scan, "-p", PORTS, APPLIANCE)
    # A closed port would answer these with a reset; nothing answers at all.
    assert len(states) == PORT_COUNT
    assert set(states.values()) == {"open|filtered"}
    counters = site.counters()
    assert counters[counter] == PORT_COUNT
    assert counters["probe_dropped"] == PORT_COUNT


def test_lone_ack_probes_are_dropped_so_no_port_looks_unfiltered(site):
    site.apply()
    refused = site.syn_proxy_stats()["cookie_invalid"]
    states = site.nmap(site.attacker, "-sA", "-p", PORTS, APPLIANCE)
    # conntrack takes a lone ACK for a new connection (tcp_loose on) or for an invalid
    # packet (off, as the SYN proxy needs); the ruleset must let it through either way.
    assert set(states.values()) == {"filtered"}
    assert site.counters()["tcp_new_not_syn"] == PORT_COUNT - PROXIED
    # On the SYN proxy's ports it is an ACK without a cookie of the proxy's: dropped by it.
    assert site.syn_proxy_stats()["cookie_invalid"] - refused == PROXIED


def test_ipv6_null_probes_are_dropped_too(site):
    site.apply()
    states = site.nmap(site.attacker, "-6", "-sN", "-p", PORTS, APPLIANCE6)
    assert set(states.values()) == {"open|filtered"}
    assert site.counters()["tcp_null"] == PORT_COUNT


def scanners(site) -> set[str]:
    return {e["address"] for e in site.status()["scanners"]}


@pytest.mark.parametrize("scan", [["-sN"], ["-sX"], ["-sF"], ["-sS", "--scanflags", "SYNFIN"]])
def test_stealth_probes_mark_their_source_as_a_scanner(site, scan):
    """Stealth scans were dropped without a trace in the scanner sets: a scanner could
    sweep every port with them and never meet the tarpit."""
    site.apply()
    site.nmap(site.attacker, *scan, "-p", PORTS, APPLIANCE)
    assert scanners(site) == {ATTACKER}
    assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 2323, timeout=0.5)
    assert site.counters()["tarpit_redirected"] == 1


def test_ipv6_stealth_probes_mark_their_source_64(site):
    site.apply()
    site.nmap(site.attacker, "-6", "-sX", "-p", PORTS, APPLIANCE6)
    assert scanners(site) == {ATTACKER6_64}
