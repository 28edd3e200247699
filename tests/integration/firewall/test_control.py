"""``portcullis firewall status|block|unblock|push-black-list``, directly and through the
monitor's control socket (the web UI's way: no CAP_NET_ADMIN)."""

from __future__ import annotations

import ipaddress
import json
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from portcullis.firewall import control, monitor
from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    HERE,
    OUTSIDER,
    OUTSIDER6,
    REPO,
    VENDOR_A,
    VENDOR_A6,
    VENDOR_B,
)

pytestmark = pytest.mark.firewall


def unprivileged(site, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``portcullis`` in the appliance namespace without CAP_NET_ADMIN, as the web UI runs."""
    command = site.appliance.cmd("setpriv", "--bounding-set=-net_admin", "--inh-caps=-all",
                                 *site.portcullis(*args))
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"portcullis {' '.join(args)}: {result.stderr}")
    return result


@pytest.fixture
def start_monitor(site):
    """Start ``portcullis firewall monitor`` (after ``apply``: it reads that configuration)."""
    started = []

    def start() -> subprocess.Popen:
        started.append(site.start(site.appliance, *site.portcullis("firewall", "monitor"),
                                  ready="firewall monitor ready"))
        return started[-1]

    yield start
    for process in started:
        site.stop(process)


# Run in the appliance namespace: a large black list pushed through control, then the
# table's handle, with what nft answered to table_handle measured.
TABLE_HANDLE_WITH_A_LARGE_SET = """
import ipaddress, json, sys
from portcullis.firewall import control
from portcullis.firewall.nft import Nft

def elements(objects):
    return sum(len(o["set"].get("elem", [])) for o in objects if "set" in o)

class Measured(Nft):
    size = listed = 0
    def query(self, command):
        objects = super().query(command)
        self.size += len(json.dumps(objects))
        self.listed += elements(objects)
        return objects

first = int(ipaddress.ip_address("100.64.0.0"))
# Every other address: no two merge into one interval.
control.push_black_list(Nft(), [ipaddress.ip_network(first + 2 * n)
                                for n in range(int(sys.argv[1]))])
whole = Nft().query(f"list table {control.TABLE}")
measured = Measured()
print(json.dumps({"handle": control.table_handle(measured),
                  "expected": next(o["table"]["handle"] for o in whole if "table" in o),
                  "in_table": elements(whole), "size": measured.size,
                  "listed": measured.listed}))
"""


def test_table_handle_does_not_list_the_elements_of_the_sets(site):
    """The monitor asks for the handle every 30 seconds; it listed the whole table, every
    element of every set with it (the black list alone may hold tens of thousands)."""
    site.apply(drop_black_list=True)
    many = 50_000
    result = site.appliance.run(sys.executable, "-c", TABLE_HANDLE_WITH_A_LARGE_SET,
                                str(many), timeout=120)
    report = json.loads(result.stdout)
    assert report["in_table"] >= many
    assert report["handle"] == report["expected"]
    assert report["listed"] == 0
    assert report["size"] < 1000


def test_block_and_unblock_from_the_cli(site):
    site.apply(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"])
    result = site.cli("firewall", "block", VENDOR_B, "--minutes", "5")
    assert f"{VENDOR_B} blocked from SSH" in result.stdout
    assert not site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)
    assert site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)
    blocked = {e["address"]: e["expires"] for e in site.status()["ssh_blocked"]}
    assert 240 < blocked[VENDOR_B] <= 300
    text = site.cli("firewall", "status").stdout
    assert VENDOR_B in text and "ssh_blocked" in text
    site.cli("firewall", "unblock", VENDOR_B)
    assert site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)
    assert site.status()["ssh_blocked"] == []


def test_cli_refuses_bad_addresses_and_unknown_blocks(site):
    site.apply()
    bad = site.cli("firewall", "block", "not-an-address", check=False)
    assert bad.returncode == 1 and "'not-an-address' is not an IP address" in bad.stderr
    missing = site.cli("firewall", "unblock", VENDOR_A6, check=False)
    assert missing.returncode == 1 and f"{VENDOR_A6} is not blocked" in missing.stderr
    assert site.status()["ssh_blocked"] == []


def test_status_says_when_the_firewall_is_not_loaded(site):
    site.apply()
    site.appliance.run("nft", "delete", "table", "inet", "portcullis")
    assert site.status()["loaded"] is False
    assert "not loaded" in site.cli("firewall", "status").stdout
    refused = site.cli("firewall", "block", VENDOR_A, check=False)
    assert refused.returncode == 1 and "not loaded" in refused.stderr


def test_reapplying_keeps_blocked_sources_with_their_remaining_time(site):
    site.apply()
    site.cli("firewall", "block", VENDOR_B, "--minutes", "5")
    site.cli("firewall", "apply")
    blocked = {e["address"]: e["expires"] for e in site.status()["ssh_blocked"]}
    assert 0 < blocked[VENDOR_B] <= 300
    assert not site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)


def test_web_ui_without_net_admin_uses_the_control_socket(site, start_monitor):
    site.apply(vendor_netblocks=["207.219.44.0/24"])
    monitor = start_monitor()
    # The premise: this process may not touch nftables itself.
    denied = subprocess.run(site.appliance.cmd("setpriv", "--bounding-set=-net_admin",
                                               "nft", "list", "ruleset"),
                            capture_output=True, text=True, check=False)
    assert denied.returncode != 0
    unprivileged(site, "firewall", "block", VENDOR_B, "--minutes", "2")
    assert not site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)
    status = json.loads(unprivileged(site, "firewall", "status", "--json").stdout)
    assert [e["address"] for e in status["ssh_blocked"]] == [VENDOR_B]
    assert {c["name"] for c in status["counters"]} >= {"ssh_blocked", "public_accepted"}
    unprivileged(site, "firewall", "unblock", VENDOR_B)
    assert site.connects(site.vendor, VENDOR_B, APPLIANCE, 22)
    refused = unprivileged(site, "firewall", "unblock", VENDOR_B, check=False)
    assert refused.returncode == 1 and "is not blocked" in refused.stderr
    assert f"unblocked {VENDOR_B}" in site.log_of(monitor)


def test_control_socket_answers_nothing_without_the_monitor(site):
    site.apply()
    result = unprivileged(site, "firewall", "status", check=False)
    assert result.returncode == 1
    assert "is portcullis-firewall-monitor running?" in result.stderr


def test_black_list_is_pushed_into_the_drop_set(site, start_monitor):
    site.apply(drop_black_list=True)
    site.cli("list", "black", "add", "203.0.113.0/24")
    site.cli("list", "black", "add", "spammer.example")     # not an IP: not pushed
    start_monitor()
    try:
        assert "1 networks" in site.cli("firewall", "push-black-list").stdout
        assert site.status()["black_list"] == ["203.0.113.0/24"]
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        assert site.counters()["blacklisted"] >= 1
        # Re-applying the ruleset (a new table) keeps the pushed black list.
        site.cli("firewall", "apply")
        assert site.status()["black_list"] == ["203.0.113.0/24"]
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        site.cli("list", "black", "remove", "203.0.113.0/24")
        assert "0 networks" in site.cli("firewall", "push-black-list").stdout
        assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
    finally:
        site.cli("list", "black", "remove", "spammer.example")


def test_black_list_stays_off_the_firewall_unless_enabled(site, start_monitor):
    site.apply()
    start_monitor()
    site.cli("list", "black", "add", "203.0.113.0/24")
    try:
        assert "drop_black_list is off" in site.cli("firewall", "push-black-list").stdout
        assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
    finally:
        site.cli("list", "black", "remove", "203.0.113.0/24")


def control_request(site, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(site.state / "control.sock"))
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def test_control_socket_refuses_malformed_requests_and_changes_nothing(site, start_monitor):
    site.apply()
    start_monitor()
    assert control_request(site, b"not json\n") == {"ok": False,
                                                     "error": "request is not valid JSON"}
    assert "unknown request" in control_request(site, b'{"op": "flush"}\n')["error"]
    assert control_request(site, b'{"op": "block", "address": 7}\n')["error"] == \
        "address must be a string"
    reply = control_request(site, b'{"op": "block", "address": "1.2.3.4; flush ruleset"}\n')
    assert reply["ok"] is False and "is not an IP address" in reply["error"]
    reply = control_request(site, b'{"op": "block", "address": "1.2.3.4", "minutes": "x"}\n')
    assert reply["error"] == "minutes must be a number"
    reply = control_request(site, b'{"op": "block", "address": "2001:db8::1%x } flush"}\n')
    assert reply["ok"] is False and "zone" in reply["error"]
    deep = b'{"op": ' + b"[" * 5_000 + b"]" * 5_000 + b"}\n"
    assert control_request(site, deep) == {"ok": False, "error": "request is not valid JSON"}
    assert site.status()["ssh_blocked"] == []
    assert site.status()["loaded"] is True


def test_status_with_many_scanners_still_reaches_the_web_ui(site, start_monitor):
    """Anyone can make scanners of many addresses; the status over the control socket
    must stay within its answer limit (it listed every one and the web UI got an error)."""
    site.apply()
    many = 30_000
    first = int(ipaddress.ip_address("100.64.0.0"))
    elements = ", ".join(str(ipaddress.ip_address(first + i)) for i in range(many))
    site.appliance.run("nft", "-f", "-", input=f"add element inet portcullis scanners_v4 "
                                               f"{{ {elements} }}\n".encode())
    site.cli("firewall", "block", VENDOR_B, "--minutes", "5")
    start_monitor()
    status = json.loads(unprivileged(site, "firewall", "status", "--json").stdout)
    assert status["scanners_total"] == many
    assert len(status["scanners"]) == control.STATUS_LIMIT
    assert [e["address"] for e in status["ssh_blocked"]] == [VENDOR_B]
    assert status["ssh_blocked_total"] == 1


def test_black_list_drops_new_traffic_only_and_never_the_vendors_ssh(site, start_monitor):
    """The black list is dropped after connection tracking: replies to the appliance's own
    connections (delivery, DNS, callouts) to a listed network still arrive, and a listed
    network covering a vendor netblock does not cut the update channel."""
    site.apply(drop_black_list=True, vendor_netblocks=["207.219.44.0/24"])
    server = site.start(site.attacker, sys.executable, str(HERE / "listeners.py"), "2525",
                        ready="ready")
    listed = ("203.0.113.0/24", "207.219.0.0/16")
    for network in listed:
        site.cli("list", "black", "add", network)
    start_monitor()
    try:
        assert "2 networks" in site.cli("firewall", "push-black-list").stdout
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        assert not site.connects(site.vendor, VENDOR_A, APPLIANCE, 25)
        assert site.connects(site.appliance, APPLIANCE, ATTACKER, 2525)
        assert site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)
        assert not site.connects(site.vendor, OUTSIDER, APPLIANCE, 22)
        assert site.counters()["blacklisted"] >= 2
    finally:
        site.stop(server)
        for network in listed:
            site.cli("list", "black", "remove", network)


def test_control_socket_bounds_what_callers_make_the_monitor_hold(site, start_monitor):
    """Every caller could have the privileged monitor buffer a megabyte for ten seconds,
    and any number of callers at once: now a request is short, and the callers served at
    once are few (the others told to retry)."""
    site.apply()
    start_monitor()
    huge = b'{"op": "status", "pad": "' + b"x" * 200_000 + b'"}\n'
    assert control_request(site, huge) == {"ok": False, "error": "request too large"}
    idle = []
    try:
        for _ in range(monitor.MAX_CLIENTS):
            idle.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            idle[-1].connect(str(site.state / "control.sock"))
        time.sleep(0.5)
        busy = control_request(site, b'{"op": "status"}\n')
        assert busy == {"ok": False, "error": "firewall control is busy; try again"}
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.5)
    assert control_request(site, b'{"op": "status"}\n')["ok"] is True


def test_black_list_entry_with_a_zone_does_not_stop_the_others_being_dropped(
        site, start_monitor):
    site.apply(drop_black_list=True)
    listed = ("203.0.113.0/24", "2001:db8::%x/64")
    site.cli("list", "black", "add", listed[0])
    # Refused today (addresses.parse_network); an older release stored it as written.
    with sqlite3.connect(site.state / "portcullis.db") as db:
        db.execute("INSERT INTO bwlist (kind, entry, note, created) VALUES (?, ?, '', 0)",
                   ("black", listed[1]))
    assert "zone" in site.cli("list", "black", "add", listed[1], check=False).stderr
    monitor = start_monitor()
    try:
        assert "networks" in site.cli("firewall", "push-black-list").stdout
        assert site.status()["black_list"] == ["203.0.113.0/24"]
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        assert "black list entry '2001:db8::%x/64' is left out" in site.log_of(monitor)
    finally:
        for network in listed:
            site.cli("list", "black", "remove", network)


def test_black_list_entry_wider_than_lists_take_is_not_dropped(site, start_monitor):
    """Lists took any prefix before (an older release stored '1.2.3.4/0' as 0.0.0.0/0);
    pushed, such an entry dropped every new connection to 25 and 80 from everywhere, the
    web UI's included, so nobody could reach the appliance to take it off."""
    site.apply(drop_black_list=True)
    listed = ("203.0.113.0/24", "0.0.0.0/0", "::/0")
    site.cli("list", "black", "add", listed[0])
    with sqlite3.connect(site.state / "portcullis.db") as db:
        for network in listed[1:]:
            db.execute("INSERT INTO bwlist (kind, entry, note, created) VALUES (?, ?, '', 0)",
                       ("black", network))
    monitor = start_monitor()
    try:
        assert "1 networks" in site.cli("firewall", "push-black-list").stdout
        assert site.status()["black_list"] == ["203.0.113.0/24"]
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        assert site.connects(site.vendor, OUTSIDER, APPLIANCE, 25)
        assert site.connects(site.vendor, OUTSIDER6, APPLIANCE6, 80)
        assert "black list entry '0.0.0.0/0' is left out" in site.log_of(monitor)
    finally:
        for network in listed:
            site.cli("list", "black", "remove", network)


def test_turning_the_black_list_drop_off_stops_dropping(site, start_monitor):
    """The monitor stopped touching the drop sets and apply carried them into the new
    table, so the networks pushed while it was on stayed dropped until a reboot."""
    site.apply(drop_black_list=True)
    site.cli("list", "black", "add", "203.0.113.0/24")
    try:
        monitor = start_monitor()
        assert "1 networks" in site.cli("firewall", "push-black-list").stdout
        site.stop(monitor)
        site.write_config(drop_black_list=False)
        site.cli("firewall", "apply")
        assert site.status()["black_list"] == []
        assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        # Turned off without a re-apply: the monitor takes them off when it starts.
        site.apply(drop_black_list=True)
        monitor = start_monitor()
        assert "1 networks" in site.cli("firewall", "push-black-list").stdout
        site.stop(monitor)
        site.write_config(drop_black_list=False)
        start_monitor()
        assert "drop_black_list is off" in site.cli("firewall", "push-black-list").stdout
        assert site.status()["black_list"] == []
        assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
    finally:
        site.cli("list", "black", "remove", "203.0.113.0/24")
