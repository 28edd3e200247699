"""Who reaches which port: 25 and 80 for everyone, 22 only from the vendor netblocks."""

from __future__ import annotations

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    ATTACKER6,
    LAN_SPOOF,
    LAN_SPOOF6,
    OUTSIDER,
    OUTSIDER6,
    RULESET,
    VENDOR_A,
    VENDOR_A6,
)

pytestmark = pytest.mark.firewall


def test_ruleset_file_loads_as_it_is_and_admits_ssh_only_from_default_vendor_netblocks(site):
    site.appliance.run("nft", "-f", str(RULESET))
    checks = site.probe(site.vendor, [
        {"src": VENDOR_A, "dst": APPLIANCE, "port": 22},
        {"src": OUTSIDER, "dst": APPLIANCE, "port": 22},
        # The default vendor list is IPv4 only: no IPv6 source may reach SSH.
        {"src": VENDOR_A6, "dst": APPLIANCE6, "port": 22},
        {"src": OUTSIDER, "dst": APPLIANCE, "port": 25},
    ])
    assert [c["connected"] for c in checks] == [True, False, False, True]
    assert checks[0]["banner"].startswith("SSH-2.0-")


def test_smtp_and_http_are_open_to_everyone_over_ipv4_and_ipv6(site):
    site.apply(vendor_netblocks=["207.219.44.0/24"])
    results = site.probe(site.attacker, [
        {"src": ATTACKER, "dst": APPLIANCE, "port": 25},
        {"src": ATTACKER, "dst": APPLIANCE, "port": 80},
        {"src": ATTACKER6, "dst": APPLIANCE6, "port": 25},
        {"src": ATTACKER6, "dst": APPLIANCE6, "port": 80},
    ])
    assert all(r["connected"] for r in results), results
    assert results[0]["banner"].startswith("220 ")
    assert site.counters()["public_accepted"] >= 4


def test_ssh_is_open_only_from_vendor_netblocks_over_ipv4_and_ipv6(site):
    site.apply(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"])
    results = site.probe(site.vendor, [
        {"src": VENDOR_A, "dst": APPLIANCE, "port": 22},
        {"src": VENDOR_A6, "dst": APPLIANCE6, "port": 22},
        {"src": OUTSIDER, "dst": APPLIANCE, "port": 22},
        {"src": OUTSIDER6, "dst": APPLIANCE6, "port": 22},
    ])
    assert [r["connected"] for r in results] == [True, True, False, False]
    assert not site.connects(site.attacker, ATTACKER6, APPLIANCE6, 22)
    counters = site.counters()
    assert counters["ssh_accepted"] == 2
    assert counters["ssh_not_vendor"] >= 3


def test_ipv4_only_vendor_list_lets_no_ipv6_source_reach_ssh(site):
    site.apply(vendor_netblocks=["207.219.44.0/24"])
    assert site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)
    assert not site.connects(site.vendor, VENDOR_A6, APPLIANCE6, 22)
    assert site.status()["vendor_netblocks"] == ["207.219.44.0/24"]


def test_spoofed_sources_from_the_appliance_lan_are_dropped(site):
    site.apply()
    before = site.counters()["spoofed"]
    # The attacker sends from addresses that belong behind the appliance's LAN interface.
    assert not site.connects(site.attacker, LAN_SPOOF, APPLIANCE, 25)
    assert not site.connects(site.attacker, LAN_SPOOF6, APPLIANCE6, 25)
    counters = site.counters()
    assert counters["spoofed"] - before >= 2
    assert counters["public_accepted"] == 0
    # The same port from the attacker's own address works: only the lie was dropped.
    assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
