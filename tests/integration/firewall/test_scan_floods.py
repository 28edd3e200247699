"""Forged sources cost an attacker nothing: a flood of them must not fill the sets that
find real scanners (the scan log's meter, the closed-port meter, the scanner sets), or
real scanners go unlogged, unmarked and untarpitted while the sets stay full."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    ATTACKER6,
    HERE,
)

pytestmark = pytest.mark.firewall

SET_SIZE = 65536            # what each per-source set of the ruleset holds
FORGED = SET_SIZE + 4000    # one knock each, more sources than a set holds
ATTACKER6_64 = "2001:db8:66::/64"
MARKS_PER_MINUTE = 500      # new scanners a minute (and burst) with scanner_minutes 60
# First forged source and the step between them: IPv4 addresses of the benchmark range,
# IPv6 ones each of its own /64 (a set holds a /64 once).
FLOODS = {4: ("198.18.0.1", 1, APPLIANCE, ATTACKER, ATTACKER, []),
          6: ("2001:db8:1000::1", 1 << 64, APPLIANCE6, ATTACKER6, ATTACKER6_64, ["-6"])}


def elements(site, name: str) -> int:
    """How many sources a set of the loaded ruleset holds."""
    listed = json.loads(site.appliance.run("nft", "-j", "list", "set", "inet", "portcullis",
                                           name).stdout)
    return sum(len(o["set"].get("elem", [])) for o in listed["nftables"] if "set" in o)


@pytest.mark.parametrize("family", [4, 6])
def test_a_flood_of_forged_knocks_does_not_blind_scanner_detection(site, family):
    first, step, target, scanner, shown, options = FLOODS[family]
    site.apply()
    site.attacker.run(sys.executable, str(HERE / "spoof.py"), first, target, "3333",
                      str(FORGED), str(FORGED), str(step), timeout=300)
    assert site.counters()["closed_port"] >= SET_SIZE     # more sources than a set holds
    for meter in (f"closed_meter_v{family}", f"scan_log_meter_v{family}"):
        assert elements(site, meter) < SET_SIZE * 0.95, meter
    logged = site.counters()["scan_logged"]
    # A real scanner right after the flood: logged, marked, and sent to the tarpit.
    site.nmap(site.attacker, *options, "-sS", "-p", "3000-3009", target)
    assert shown in {e["address"] for e in site.status()["scanners"]}
    assert site.counters()["scan_logged"] > logged
    redirected = site.counters()["tarpit_redirected"]
    assert not site.connects(site.attacker, scanner, target, 2323, timeout=0.5)
    assert site.counters()["tarpit_redirected"] == redirected + 1


def test_forged_scanners_are_marked_no_faster_than_the_scanner_sets_can_hold(site):
    """Six forged knocks make any address a scanner, marked for scanner_timeout (an hour):
    65,536 forged sources filled the scanner set for that hour (every new mark renewed
    it, too), and no real scanner was marked meanwhile.  Marks now come at most at 500 a
    minute (scanner_minutes 60), and a real scanner is still marked after such a flood."""
    site.apply()
    sources = 2000
    started = time.monotonic()
    # Twelve knocks each: sources the meter took late still knock more than six times.
    site.attacker.run(sys.executable, str(HERE / "spoof.py"), "198.18.0.1", APPLIANCE,
                      "3333", str(sources * 12), str(sources), timeout=300)
    elapsed = time.monotonic() - started
    assert site.counters()["scanner_mark_capped"] > 0
    assert site.status()["scanners_total"] <= MARKS_PER_MINUTE * (1 + elapsed / 60) + 1
    time.sleep(1)      # the rate gives a mark every 0.12 s
    site.nmap(site.attacker, "-sS", "-p", "3000-3009", APPLIANCE)
    assert ATTACKER in {e["address"] for e in site.status()["scanners"]}
