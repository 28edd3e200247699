"""Bundles the appliance must refuse, updates that must undo themselves, and transfers
that break off: in every case the old version keeps running and the reason is recorded."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from portcullis.update import transfer
from portcullis.update.bundle import BundleReader, Manifest, write_bundle
from tests.integration.updates.lab import Lab

pytestmark = pytest.mark.updates


def tampered_file(bundle: Path, out: Path) -> Path:
    """The bundle with one byte of its payload flipped (the manifest is untouched)."""
    shutil.copy(bundle, out)
    with tarfile.open(out) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("files/"))
        offset = member.offset_data + member.size // 2
    with out.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return out


def altered_manifest(bundle: Path, out: Path) -> Path:
    """The bundle with its signatures kept but its manifest changed after signing."""
    with BundleReader(bundle) as reader:
        document = json.loads(reader.manifest_bytes)
        document["description"] = "altered"  # any change; a far expiry is refused anyway
        manifest = Manifest.from_bytes(json.dumps(document).encode())
        sources = {f.path: reader.open_payload(f.path) for f in manifest.files}
        write_bundle(out, manifest, sources, reader.signatures)
    return out


BAD_BUNDLES = {
    "unsigned": (lambda b: b.app("0.2.0"), "bundle is not signed"),
    "signed-by-unknown-key": (lambda b: b.app("0.2.0", "rogue"),
                              "not signed by a trusted key"),
    "tampered-file": (lambda b: tampered_file(b.app("0.2.0", "k1"), b.path("tampered")),
                      "SHA-256 differs from the signed manifest: tampered"),
    "manifest-altered-after-signing": (
        lambda b: altered_manifest(b.app("0.2.0", "k1"), b.path("altered")),
        "does not match the manifest (manifest altered after signing)"),
    "expired": (lambda b: b.expired_app("0.2.0", "k1"), "bundle expired at"),
    "same-version-as-running": (lambda b: b.app("0.1.0", "k1"),
                                "app version 0.1.0 is not newer than the installed 0.1.0"),
}


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_bad_bundle_is_refused_with_its_reason_and_nothing_changes(appliance: Lab, builds,
                                                                   case: str):
    make, reason = BAD_BUNDLES[case]
    bundle = make(builds)
    before = appliance.snapshot()

    result = appliance.push_one(bundle)

    assert result["result"] == "rejected", result
    assert reason in result["reason"]
    assert appliance.snapshot() == before
    assert appliance.running_version() == "0.1.0"
    assert appliance.smtp_banner().startswith("220")
    (attempt,) = appliance.history()
    assert attempt.outcome == "rejected"
    assert reason in attempt.reason
    assert attempt.client == "207.219.44.10"


def test_replayed_and_older_bundles_are_refused_once_a_newer_version_runs(appliance: Lab,
                                                                          builds):
    assert appliance.push_one(builds.app("0.3.0", "k1"))["result"] == "applied"
    before = appliance.snapshot()

    replay = appliance.push_one(builds.app("0.3.0", "k1"))
    older = appliance.push_one(builds.app("0.2.0", "k1"))

    assert (replay["result"], older["result"]) == ("rejected", "rejected")
    assert "app version 0.3.0 is not newer than the installed 0.3.0" in replay["reason"]
    assert "app version 0.2.0 is not newer than the installed 0.3.0" in older["reason"]
    assert appliance.snapshot() == before
    assert appliance.running_version() == "0.3.0"
    assert [a.outcome for a in appliance.history()] == ["rejected", "rejected", "applied"]


def test_release_failing_its_health_check_is_rolled_back_and_the_old_version_runs(
        appliance: Lab, builds):
    bundle = builds.app("0.2.1", "k1", broken=True)

    result = appliance.push_one(bundle)

    assert result["result"] == "rolled-back", result
    assert result["reason"].startswith("health check failed")
    assert "unhealthy too" not in result["reason"]
    assert appliance.current_version() == "0.1.0"
    assert appliance.running_version() == "0.1.0"
    assert appliance.wait_for_gateway().startswith("220")
    assert sorted(p.name for p in appliance.releases_dir.iterdir()) == ["0.1.0"]
    assert not (appliance.state_dir / "state.json").exists()
    (attempt,) = appliance.history()
    assert (attempt.outcome, attempt.version, attempt.previous) == ("rolled-back", "0.2.1",
                                                                    "0.1.0")
    # A rolled-back version is not burnt: once fixed it can come again.
    assert appliance.push_one(builds.app("0.2.0", "k1"))["result"] == "applied"


def test_interrupted_transfer_leaves_the_old_version_running(appliance: Lab, builds):
    bundle = builds.app("0.2.0", "k1").read_bytes()
    before = appliance.snapshot()
    client = subprocess.Popen(appliance.ssh_command(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client.stdin.write(transfer.header(len(bundle)) + bundle[:len(bundle) // 2])
    client.stdin.flush()
    # Cut the connection once the agent is busy receiving (its spool file grows).
    deadline = time.monotonic() + 20
    while not any(p.stat().st_size for p in appliance.spool_dir.iterdir()):
        assert time.monotonic() < deadline, "the agent never started receiving"
        time.sleep(0.05)
    client.send_signal(signal.SIGKILL)
    client.communicate()

    (attempt,) = appliance.wait_for_history(1)

    assert attempt.outcome == "rejected"
    assert attempt.reason == (f"transfer interrupted: received {len(bundle) // 2} of "
                              f"{len(bundle)} bytes")
    assert appliance.snapshot() == before
    assert appliance.running_version() == "0.1.0"
    assert list(appliance.spool_dir.glob("bundle-*")) == []  # (.receiving is the lock)
