"""Port scans are logged through an nflog group, rate-limited per source."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    HERE,
    OUTSIDER6,
    VENDOR_A,
)

pytestmark = pytest.mark.firewall

LOG_RATE = 3


def scan_lines(site, monitor) -> list[str]:
    return [line for line in site.log_of(monitor).splitlines() if "scan attempt from" in line]


def wait_for_lines(site, monitor, count: int) -> list[str]:
    deadline = time.monotonic() + 20
    while len(lines := scan_lines(site, monitor)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return lines


@pytest.fixture
def monitor(site):
    site.apply(scan_log_rate=LOG_RATE)
    process = site.start(site.appliance, *site.portcullis("firewall", "monitor"),
                         ready="firewall monitor ready")
    yield process
    site.stop(process)


def test_scan_attempts_are_logged_at_most_at_the_per_source_rate(site, monitor):
    # 100 closed UDP ports from the attacker, 20 from a vendor address.
    site.nmap(site.attacker, "-sU", "-p", "1000-1099", APPLIANCE)
    site.nmap(site.vendor, "-sU", "-p", "2000-2019", APPLIANCE)
    counters = site.counters()
    assert counters["closed_port"] == 120
    logged = counters["scan_logged"]
    lines = wait_for_lines(site, monitor, logged)
    assert len(lines) == logged
    by_source = {source: [line for line in lines if f"from {source} " in line]
                 for source in (ATTACKER, VENDOR_A)}
    # Every source gets its own allowance, and no more than it (one token may refill).
    for source, found in by_source.items():
        assert LOG_RATE <= len(found) <= LOG_RATE + 1, (source, found)
    first = by_source[ATTACKER][0]
    match = re.search(rf"scan attempt from {ATTACKER} to {APPLIANCE} udp/(\d+) on \S+", first)
    assert match and 1000 <= int(match.group(1)) <= 1099


def test_malformed_probes_are_logged_as_scans(site, monitor):
    site.nmap(site.attacker, "-sX", "-p", "4000-4001", APPLIANCE)
    lines = wait_for_lines(site, monitor, 2)
    assert len(lines) == 2
    assert all("tcp/400" in line and "flags FPU" in line for line in lines), lines


def test_forged_sources_cannot_flood_the_scan_log(site, monitor):
    """The per-source rate does not bound sources an attacker forges: 3,000 knocks from
    3,000 addresses were 3,000 log lines (up to 6,500 a second with the meters full), past
    what the journal keeps of the monitor (600 lines a minute), so it dropped the monitor's
    other messages too.  Now a burst of 60, then 2 a second."""
    site.attacker.run(sys.executable, str(HERE / "spoof.py"), "198.18.0.1", APPLIANCE,
                      "3333", "3000", "3000", timeout=120)
    counters = site.counters()
    assert counters["closed_port"] == 3000
    assert counters["scan_logged"] <= 80


def test_one_busy_scanner_does_not_use_up_the_log_for_others(site, monitor):
    """The cap for all sources together applies to what each source may log: a scanner
    knocking as fast as it can, from two addresses, must not silence everyone else.  (On
    22, which is never sent to the tarpit, so every knock is a closed-port attempt.)"""
    flood = site.attacker.popen(sys.executable, str(HERE / "spoof.py"), ATTACKER, APPLIANCE,
                                "22", "200000", "2")
    try:
        time.sleep(0.3)
        site.probe(site.vendor, [{"src": VENDOR_A, "dst": APPLIANCE, "port": 2000 + n,
                                  "timeout": 0.2} for n in range(2)])
        assert flood.poll() is None, "the flood ended before the other source knocked"
    finally:
        flood.wait(120)
    lines = wait_for_lines(site, monitor, 2 * LOG_RATE + 2)
    assert len([line for line in lines if f"from {VENDOR_A} " in line]) == 2


def test_late_packets_of_expired_connections_are_not_logged_as_scans(site):
    """With nf_conntrack_tcp_loose = 0 (as the SYN proxy needs) a packet of a connection
    whose conntrack entry has expired is invalid, and its ACK or data was taken for a lone
    ACK probe and written to the scan log: the vendor, or a mail server whose connection
    had idled out, showed up as a scanner.  They are still dropped, but not logged."""
    site.apply()
    targets = [[VENDOR_A, APPLIANCE, 22], [OUTSIDER6, APPLIANCE6, 25]]
    sender = site.vendor.popen(sys.executable, str(HERE / "late_sender.py"),
                               json.dumps(targets), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout.readline().strip() == "open"
        site.appliance.run(sys.executable, str(HERE / "conntrack_flush.py"))
        sender.stdin.write("\n")
        sender.stdin.flush()
        assert sender.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 20
        while site.counters()["tcp_new_not_syn"] < len(targets):
            assert time.monotonic() < deadline, "the late packets never arrived"
            time.sleep(0.2)
    finally:
        sender.kill()
        sender.wait()
    counters = site.counters()
    assert counters["scan_logged"] == 0
    assert counters["established"] > 0
