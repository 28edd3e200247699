"""A configuration bundle is built for one appliance and installs on no other.

The threat: someone holding the vendor's SSH key and a copy of appliance A's configuration
bundle (genuine, signed) pushes it to appliance B, whose configuration version is lower;
B would take A's domains, relays and secrets.  The bundle's signed manifest names A by its
SSH host key fingerprint (the one the vendor's known_hosts pins), and B compares it with its
own host keys: root's installer always, the unprivileged agent too when it may read them
(the image's first-boot unit makes them root's alone)."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portcullis.update import transfer
from portcullis.update.bundle import Manifest, file_entry, write_bundle
from tests.integration.updates.lab import VENDOR_IP, Lab

pytestmark = pytest.mark.updates


def openssh_fingerprint(public_key: Path) -> str:
    """The fingerprint as OpenSSH prints it (``ssh-keygen -l``)."""
    listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
                            capture_output=True, text=True, check=True, timeout=30)
    return listed.stdout.split()[1]


def new_configuration(appliance: Lab) -> bytes:
    old = 'hostname = "appliance.test"'
    assert old in appliance.portcullis_toml
    return appliance.portcullis_toml.replace(old, 'hostname = "appliance-2.test"').encode()


@pytest.mark.parametrize(("mode", "refused_by"), [
    (0o600, "installer"),     # root's alone (as the first-boot unit made them before)
    (0o644, "agent"),         # as the first-boot unit and Debian make them: the agent first
])
def test_config_bundle_built_for_another_appliance_is_refused_and_nothing_changes(
        appliance: Lab, builds, mode: int, refused_by: str):
    os.chmod(appliance.host_public_key, mode)
    theirs = openssh_fingerprint(builds.keys.other_appliance_host.with_suffix(".pub"))
    mine = openssh_fingerprint(builds.keys.host.with_suffix(".pub"))
    # Appliance 2's configuration, genuine and signed; its version is above this one's.
    bundle = builds.files("config", "2", {"portcullis.toml": new_configuration(appliance)},
                          "k1", extra=appliance.bound_to("appliance-2"))
    before = appliance.snapshot()
    logged = appliance.installer_log.stat().st_size

    result = appliance.push_one(bundle)

    reason = f"bundle is for another appliance (SSH host key {theirs}), not this one ({mine})"
    assert (result["result"], result["reason"]) == ("rejected", reason), result
    assert appliance.snapshot() == before          # configuration, state, same gateway
    assert appliance.smtp_banner().startswith("220 appliance.test")
    (attempt,) = appliance.history()
    assert (attempt.outcome, attempt.reason, attempt.target, attempt.version,
            attempt.client) == ("rejected", reason, "config", "2", VENDOR_IP)
    with appliance.installer_log.open() as log:
        log.seek(logged)
        installer_saw = log.read()
    assert (f"config 2 -: rejected {reason}" in installer_saw) == (refused_by == "installer")


def test_config_bundle_built_for_this_appliance_is_applied(appliance: Lab, builds):
    mine = openssh_fingerprint(builds.keys.host.with_suffix(".pub"))
    changed = new_configuration(appliance)
    bundle = builds.files("config", "2", {"portcullis.toml": changed}, "k1",
                          extra=appliance.bound_to("appliance-1"))
    verified = appliance.appliance.run(
        str(appliance.current / "bin" / "portcullis-update-agent"), "--config",
        str(appliance.agent_toml), "verify", str(bundle))

    result = appliance.push_one(bundle)

    assert verified.stdout.decode().startswith(f"ok: config 2 for this appliance ({mine})")
    assert result["result"] == "applied", result
    assert (appliance.etc / "portcullis.toml").read_bytes() == changed
    assert appliance.wait_for_gateway().startswith("220 appliance-2.test")
    (attempt,) = appliance.history()
    assert (attempt.outcome, attempt.target, attempt.version) == ("applied", "config", "2")


def unbound_config_bundle(builds, content: bytes) -> Path:
    """A config bundle naming no appliance, as one made before audiences existed (the
    vendor's tool no longer makes them), signed by the trusted key."""
    source = builds.path("portcullis.toml")
    source.write_bytes(content)
    now = datetime.now(UTC).replace(microsecond=0)
    manifest = Manifest("config", "2", now, now + timedelta(days=1),
                        (file_entry("portcullis.toml", source),))
    out = builds.path("config-2-unbound.bundle")
    write_bundle(out, manifest, {"portcullis.toml": source})
    return builds.sign(out, "k1")


def test_config_bundle_naming_no_appliance_is_refused_and_recorded(appliance: Lab, builds):
    bundle = unbound_config_bundle(builds, new_configuration(appliance))
    before = appliance.snapshot()

    result = appliance.push_one(bundle)

    reason = ("config bundle names no appliance (no audience): a config bundle must be "
              "built for one appliance")
    assert (result["result"], result["reason"]) == ("rejected", reason), result
    assert appliance.snapshot() == before
    (attempt,) = appliance.history()
    assert (attempt.outcome, attempt.reason, attempt.target) == ("rejected", reason, "config")


def test_root_installer_refuses_a_bundle_for_another_appliance_on_its_own(appliance: Lab,
                                                                          builds):
    # Handed straight to root's installer, past the agent's checks: it repeats them all.
    bundle = builds.files("config", "2", {"portcullis.toml": new_configuration(appliance)},
                          "k1", extra=appliance.bound_to("appliance-2"))
    before = appliance.snapshot()

    with socket.socket(socket.AF_UNIX) as sock, bundle.open("rb") as handle:
        sock.settimeout(60)
        sock.connect(str(appliance.run_dir / "install.sock"))
        transfer.send(handle, bundle.stat().st_size, sock.sendall)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk

    result = transfer.parse_result(reply.decode())
    assert result["outcome"] == "rejected", result
    assert result["reason"].startswith("bundle is for another appliance")
    assert (result["target"], result["version"]) == ("config", "2")
    assert appliance.snapshot() == before
