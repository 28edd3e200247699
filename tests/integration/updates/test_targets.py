"""Bundles for the other targets: ClamAV signatures (into clamd's database, then RELOAD)
and configuration (portcullis.toml, then a restart), with the same checks and undo."""

from __future__ import annotations

import time

import pytest

from tests.integration.updates.lab import Lab
from tests.support.clamd import WORM_MARKER, WORM_NAME

pytestmark = pytest.mark.updates

PUSHED_MARKER = b"PORTCULLIS-PUSHED-TEST-SIGNATURE"
PUSHED_SIGNATURE = f"Portcullis.Test.Pushed-1:0:*:{PUSHED_MARKER.hex()}\n".encode()


def wait_for_verdict(appliance: Lab, data: bytes, expected: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        verdict = appliance.clamd_scan(data)
        if expected in verdict or time.monotonic() > deadline:
            return verdict
        time.sleep(0.2)


@pytest.fixture
def clamd(appliance: Lab) -> Lab:
    appliance.start_clamd()
    yield appliance
    appliance.stop_clamd()


def detects_the_test_worm(appliance: Lab) -> bool:
    return f"{WORM_NAME}.UNOFFICIAL FOUND" in appliance.clamd_scan(b"x " + WORM_MARKER)


def test_signature_bundle_is_installed_and_clamd_detects_with_it(clamd: Lab, builds):
    sample = b"harmless text " + PUSHED_MARKER + b" more text"
    assert clamd.clamd_scan(sample) == "stream: OK"
    bundle = builds.files("clamav", "27100", {"portcullis-test.ndb": PUSHED_SIGNATURE}, "k1")

    result = clamd.push_one(bundle)

    assert result["result"] == "applied", result
    assert (clamd.clamav_db / "portcullis-test.ndb").read_bytes() == PUSHED_SIGNATURE
    verdict = wait_for_verdict(clamd, sample, "FOUND")
    assert verdict == "stream: Portcullis.Test.Pushed-1.UNOFFICIAL FOUND"
    assert detects_the_test_worm(clamd)                 # what was there before still counts
    assert (clamd.clamav_db / "portcullis-test.ndb").owner() == "clamav"
    assert clamd.running_version() == "0.1.0"          # the application was left alone
    (attempt,) = clamd.history()
    assert (attempt.target, attempt.version, attempt.outcome) == ("clamav", "27100",
                                                                 "applied")


def test_signature_bundle_that_does_not_load_is_refused(clamd: Lab, builds):
    before = clamd.snapshot()
    bundle = builds.files("clamav", "27101", {"broken.ndb": b"this is not a signature\n"},
                          "k1")

    result = clamd.push_one(bundle)

    assert result["result"] == "rejected"
    assert result["reason"].startswith("signature files do not load")
    assert clamd.snapshot() == before
    assert detects_the_test_worm(clamd)


def test_signature_bundle_clamd_would_not_load_with_the_installed_files_is_not_applied(
        clamd: Lab, builds):
    # A file clamd cannot load already sits in its directory (a download cut short, say):
    # clamd refuses every RELOAD from now on, keeps its previous database and still
    # answers PING, and would not start again.  The bundle alone loads.
    (clamd.clamav_db / "local.ndb").write_bytes(b"Portcullis.Local-1:0:*:6162\ncut sh")
    bundle = builds.files("clamav", "27103", {"portcullis-test.ndb": PUSHED_SIGNATURE},
                          "k1")

    result = clamd.push_one(bundle)

    assert result["result"] == "failed", result
    assert result["reason"].startswith(f"with the signature files in {clamd.clamav_db}: "
                                       "signature files do not load")
    assert not (clamd.clamav_db / "portcullis-test.ndb").exists()
    assert clamd.history()[0].outcome == "failed"
    assert detects_the_test_worm(clamd)


def test_signature_bundle_may_only_hold_database_files(appliance: Lab, builds):
    result = appliance.push_one(builds.files("clamav", "27102",
                                             {"clamd.conf": b"LocalSocket /tmp/x\n"}, "k1"))

    assert result["result"] == "rejected"
    assert "'clamd.conf' is not a ClamAV database file name" in result["reason"]


def config_with(appliance: Lab, old: str, new: str) -> bytes:
    assert old in appliance.portcullis_toml
    return appliance.portcullis_toml.replace(old, new).encode()


def test_configuration_bundle_replaces_the_configuration_and_restarts(appliance: Lab,
                                                                      builds):
    old_pid = appliance.gateway_pid()
    changed = config_with(appliance, 'hostname = "appliance.test"',
                          'hostname = "gateway-2.test"')
    bundle = builds.files("config", "2", {"portcullis.toml": changed}, "k1",
                          extra=appliance.bound_to("appliance-1"))

    result = appliance.push_one(bundle)

    assert result["result"] == "applied", result
    assert (appliance.etc / "portcullis.toml").read_bytes() == changed
    assert appliance.gateway_pid() != old_pid
    assert appliance.wait_for_gateway().startswith("220 gateway-2.test")


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("portcullis.toml", b'[smtp]\nlisten = "127.0.0.1:25"\ncolour = "red"\n',
     "[smtp] colour: unknown key"),
    ("agent.toml", b"[agent]\nnetblocks = ['0.0.0.0/0']\n",
     "config bundle may not replace 'agent.toml'"),
])
def test_configuration_bundle_that_is_invalid_or_not_allowed_is_refused(
        appliance: Lab, builds, name: str, content: bytes, reason: str):
    before = appliance.snapshot()

    result = appliance.push_one(builds.files("config", "3", {name: content}, "k1",
                                             extra=appliance.bound_to("appliance-1")))

    assert result["result"] == "rejected"
    assert reason in result["reason"]
    assert appliance.snapshot() == before


def test_configuration_the_gateway_cannot_run_with_is_rolled_back(appliance: Lab, builds):
    broken = config_with(appliance, 'listen = "127.0.0.1:25"', 'listen = "192.0.2.99:25"')

    result = appliance.push_one(builds.files("config", "4", {"portcullis.toml": broken},
                                             "k1", extra=appliance.bound_to("appliance-1")))

    assert result["result"] == "rolled-back", result
    assert result["reason"].startswith("health check failed")
    assert (appliance.etc / "portcullis.toml").read_text() == appliance.portcullis_toml
    assert appliance.wait_for_gateway().startswith("220 appliance.test")
