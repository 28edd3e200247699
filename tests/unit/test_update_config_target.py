"""Configuration bundles going live: whatever fails after the new files are written, the
old configuration comes back and is restarted."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portcullis.update import agent, targets
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import (
    BundleRejected,
    FileEntry,
    HealthCheck,
    Manifest,
    VerifiedBundle,
)
from portcullis.update.restart import CheckResult
from portcullis.update.state import UpdateState

pytestmark = pytest.mark.updates

NOW = datetime.now(UTC)


def config_bundle(tmp_path: Path, content: bytes) -> VerifiedBundle:
    source = tmp_path / "bundle" / "extra.conf"
    source.parent.mkdir()
    source.write_bytes(content)
    manifest = Manifest("config", "7", NOW, NOW + timedelta(days=1),
                        (FileEntry("extra.conf", "0" * 64, len(content)),),
                        HealthCheck(("portcullis-update-agent", "health")))
    return VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"], {"extra.conf": source})


@pytest.fixture
def target(tmp_path: Path) -> targets.ConfigTarget:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extra.conf").write_bytes(b"old\n")
    return targets.ConfigTarget(AgentConfig(
        portcullis_config=etc / "portcullis.toml", config_files=("extra.conf",),
        state_dir=tmp_path / "state", services=("portcullis-gateway.service",)))


def test_a_health_check_that_raises_rolls_the_old_configuration_back(target, tmp_path,
                                                                      monkeypatch):
    live = target.config.portcullis_config.parent / "extra.conf"
    restarted_with: list[bytes] = []

    def restart(command: object, services: object, env: object) -> CheckResult:
        restarted_with.append(live.read_bytes())
        return CheckResult(True, "")

    def health_check(check: HealthCheck, **kwargs: object) -> CheckResult:
        if live.read_bytes() == b"new\n":
            raise PermissionError(13, "Permission denied", "portcullis-update-agent")
        return CheckResult(True, "healthy")

    monkeypatch.setattr(targets, "restart_services", restart)
    monkeypatch.setattr(targets, "run_health_check", health_check)

    outcome = target.apply(config_bundle(tmp_path, b"new\n"))

    assert outcome.outcome == "rolled-back"
    assert "health check failed: internal error:" in outcome.reason
    assert "Permission denied" in outcome.reason
    assert live.read_bytes() == b"old\n"
    assert restarted_with == [b"new\n", b"old\n"]   # the old configuration restarted
    assert UpdateState(target.config.state_dir).installed("config") is None


def test_a_restart_that_raises_rolls_back_too(target, tmp_path, monkeypatch):
    live = target.config.portcullis_config.parent / "extra.conf"

    def restart(command: object, services: object, env: object) -> CheckResult:
        if live.read_bytes() == b"new\n":
            raise RuntimeError("systemd went away")
        return CheckResult(True, "")

    monkeypatch.setattr(targets, "restart_services", restart)
    monkeypatch.setattr(targets, "run_health_check",
                        lambda check, **kwargs: CheckResult(True, "healthy"))

    outcome = target.apply(config_bundle(tmp_path, b"new\n"))

    assert (outcome.outcome, live.read_bytes()) == ("rolled-back", b"old\n")
    assert "systemd went away" in outcome.reason


def test_a_write_that_fails_half_way_is_undone_like_a_failed_check(target, tmp_path,
                                                                   monkeypatch):
    live = target.config.portcullis_config.parent / "extra.conf"
    real_write = targets.write_atomically

    def write(path: Path, data: bytes, mode: int, **kwargs: object) -> None:
        real_write(path, data, mode, **kwargs)
        if data == b"new\n":  # written, then the disk filled up (a second file, say)
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(targets, "write_atomically", write)
    monkeypatch.setattr(targets, "restart_services", lambda *args: CheckResult(True, ""))
    monkeypatch.setattr(targets, "run_health_check",
                        lambda check, **kwargs: CheckResult(True, "healthy"))

    outcome = target.apply(config_bundle(tmp_path, b"new\n"))

    assert (outcome.outcome, live.read_bytes()) == ("rolled-back", b"old\n")
    assert "writing the configuration: [Errno 28] No space left" in outcome.reason


@pytest.mark.parametrize("netblock,why", [
    ("0.0.0.0/0", "is too broad"),
    ("198.51.100.1/24", "has host bits set"),
])
def test_a_portcullis_toml_whose_firewall_values_the_firewall_refuses_is_rejected(
        tmp_path, netblock, why):
    etc = tmp_path / "etc"
    etc.mkdir()
    live = etc / "portcullis.toml"
    live.write_bytes(b"old\n")
    # (the old code went live: nothing here may restart a real service)
    target = targets.ConfigTarget(AgentConfig(portcullis_config=live,
                                              state_dir=tmp_path / "state",
                                              restart_command=("false",), services=()))
    new = (f'[smtp]\nlisten = "127.0.0.1:2525"\n[web]\nlisten = "127.0.0.1:8080"\n'
           f'[store]\ndir = "{tmp_path}"\n[firewall]\nvendor_netblocks = ["{netblock}"]\n')
    source = tmp_path / "bundle" / "portcullis.toml"
    source.parent.mkdir()
    source.write_text(new)
    manifest = Manifest("config", "7", NOW, NOW + timedelta(days=1),
                        (FileEntry("portcullis.toml", "0" * 64, len(new)),), None)
    bundle = VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"],
                            {"portcullis.toml": source})

    with pytest.raises(BundleRejected, match=f"portcullis.toml: .*vendor_netblocks.*{why}"):
        target.apply(bundle)

    # refused before anything was written or restarted
    assert live.read_bytes() == b"old\n"
    assert UpdateState(tmp_path / "state").installed("config") is None


def test_a_config_update_cut_off_before_its_health_check_is_undone_at_the_next_boot(
        tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extra.conf").write_bytes(b"old\n")
    source = tmp_path / "new.conf"
    source.write_bytes(b"new\n")
    config = tmp_path / "agent.toml"
    # The installer dies (as in a power cut) while the services restart on the new file.
    config.write_text(f"""[agent]
portcullis_config = "{etc / 'portcullis.toml'}"
config_files = ["extra.conf"]
state_dir = "{tmp_path / 'state'}"
releases_dir = "{tmp_path / 'releases'}"
current_link = "{tmp_path / 'current'}"
restart_command = ["sh", "-c", "kill -KILL $PPID", "sh"]
""")
    apply = f"""
from datetime import UTC, datetime, timedelta
from pathlib import Path
from portcullis.update import agentconfig
from portcullis.update.bundle import FileEntry, Manifest, VerifiedBundle
from portcullis.update.targets import ConfigTarget

now = datetime.now(UTC)
manifest = Manifest("config", "7", now, now + timedelta(days=1),
                    (FileEntry("extra.conf", "0" * 64, 4),))
ConfigTarget(agentconfig.load("{config}")).apply(VerifiedBundle(
    manifest, manifest.to_bytes(), [], ["k1"], {{"extra.conf": Path("{source}")}}))
"""
    killed = subprocess.run([sys.executable, "-c", apply], capture_output=True, text=True,
                            check=False)
    assert killed.returncode == -9, killed.stderr
    assert (etc / "extra.conf").read_bytes() == b"new\n"   # what the services would read

    assert agent.main(["--config", str(config), "recover"]) == 0   # the boot unit

    assert (etc / "extra.conf").read_bytes() == b"old\n"
    assert UpdateState(tmp_path / "state").installed("config") is None   # may come again
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == []  # nothing kept
