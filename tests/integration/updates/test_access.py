"""Who may push: only the vendor's netblocks, only with the vendor's key, only the agent.

Two layers each refuse a push from elsewhere: sshd (AllowUsers / Match Address from the
update_agent role) and the agent itself (SSH_CLIENT against the netblocks)."""

from __future__ import annotations

import fcntl
import json
import subprocess

import pytest

from portcullis.update import transfer
from tests.integration.updates.lab import APPLIANCE_IP, KEYS_ONLY_PORT, ROGUE_IP, VENDOR_IP, Lab

pytestmark = pytest.mark.updates


def test_push_from_outside_the_vendor_netblocks_is_refused_by_sshd(appliance: Lab, builds):
    bundle = builds.app("0.2.0", "k1")   # stolen: the right SSH key and a genuine bundle
    before = appliance.snapshot()

    result = appliance.push_one(bundle, ns=appliance.rogue)

    assert result["result"] == "unreachable"
    assert "login refused" in result["reason"]
    log = appliance.sshd_log.read_text()
    assert f"User pcupdate from {ROGUE_IP} not allowed because" in log
    assert appliance.snapshot() == before
    assert appliance.history() == []    # the agent never even ran


def test_authorized_keys_entry_alone_refuses_other_addresses(appliance: Lab, builds):
    # An sshd without the role's AllowUsers/Match: the key's from= still says no.
    inventory = appliance.inventory_file("keys-only.toml", [
        ("appliance-1", f"{APPLIANCE_IP}:{KEYS_ONLY_PORT}")])
    bundle = builds.app("0.2.0", "k1")
    before = appliance.snapshot()

    result = appliance.push_one(bundle, ns=appliance.rogue, inventory=inventory)

    assert result["result"] == "unreachable"
    assert "login refused" in result["reason"]
    log = (appliance.ssh_dir / "sshd-keys-only.log").read_text()
    assert f"not from a permitted host (host={ROGUE_IP}, ip={ROGUE_IP}" in log
    assert appliance.snapshot() == before
    assert appliance.push_one(bundle, inventory=inventory)["result"] == "applied"


def test_agent_refuses_a_client_outside_the_vendor_netblocks(appliance: Lab, builds):
    bundle = builds.app("0.2.0", "k1").read_bytes()
    before = appliance.snapshot()

    status, result = appliance.run_agent(transfer.header(len(bundle)) + bundle,
                                         client=ROGUE_IP)

    assert status == 1
    assert result["outcome"] == "rejected"
    assert result["reason"] == f"client {ROGUE_IP} is outside the vendor netblocks"
    assert appliance.snapshot() == before
    (attempt,) = appliance.history()
    assert (attempt.client, attempt.outcome) == (ROGUE_IP, "rejected")


def test_agent_shows_its_status_only_to_the_vendor_netblocks(appliance: Lab):
    refused = appliance.agent_process(b"", ROGUE_IP, "status")
    shown = appliance.agent_process(b"", VENDOR_IP, "status")

    assert (refused.returncode, refused.stdout) == (1, b"")
    assert b"outside the vendor netblocks" in refused.stderr
    assert shown.returncode == 0 and "trusted_keys" in json.loads(shown.stdout)


def test_a_second_push_while_one_is_received_is_turned_away(appliance: Lab, builds):
    bundle = builds.app("0.2.0", "k1").read_bytes()
    with (appliance.spool_dir / ".receiving").open("a") as busy:
        fcntl.flock(busy, fcntl.LOCK_EX)   # as a receive in progress holds it
        status, result = appliance.run_agent(transfer.header(len(bundle)) + bundle,
                                             client=VENDOR_IP)
    assert (status, result["outcome"]) == (1, "failed"), result
    assert "another bundle is being received" in result["reason"]
    assert list(appliance.spool_dir.glob("bundle-*")) == []

    status, result = appliance.run_agent(transfer.header(len(bundle)) + bundle,
                                         client=VENDOR_IP)
    assert (status, result["outcome"]) == (0, "applied"), result


def test_agent_accepts_the_same_bundle_from_a_vendor_address(appliance: Lab, builds):
    bundle = builds.app("0.2.0", "k1").read_bytes()

    status, result = appliance.run_agent(transfer.header(len(bundle)) + bundle,
                                         client=VENDOR_IP)

    assert (status, result["outcome"]) == (0, "applied"), result
    assert appliance.running_version() == "0.2.0"


def test_vendor_login_runs_only_the_agent(appliance: Lab):
    shell = subprocess.run(appliance.ssh_command(command="id; cat /etc/shadow"),
                           capture_output=True, text=True, timeout=60)
    tty = subprocess.run(appliance.ssh_command("-tt", command="status"),
                         capture_output=True, text=True, input="", timeout=60)

    assert shell.returncode == 2
    assert "unknown request" in shell.stderr
    assert "uid=" not in shell.stdout
    assert "PTY allocation request failed" in tty.stderr
