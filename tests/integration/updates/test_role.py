"""The update_agent role's files, checked by the programs that read them (no daemons)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.updates.lab import (
    ROGUE_IP,
    ROLE,
    VENDOR_IP,
    VENV_BIN,
    render,
    role_defaults,
)
from tests.support.sshd import effective_settings

pytestmark = pytest.mark.updates

UNITS = ("portcullis-update-install.socket", "portcullis-update-install@.service",
         "portcullis-update-recover.service")


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    # As while an update is judged: the link to the release it replaced.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "fallback").symlink_to(VENV_BIN.parent)
    variables = {**role_defaults(), "update_agent_current_link": str(VENV_BIN.parent),
                 "update_agent_state_dir": str(tmp_path / "state"),
                 "update_agent_vendor_ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBj"
                                                  "d0Ww2Xk9s0k2Hq8zJ0eLZ1q4C1w2dA4nFv2m4qG0 v"]}
    for name in (*UNITS, "sshd-update-agent.conf", "authorized_keys", "agent.toml"):
        (tmp_path / name).write_text(render(f"{name}.j2", variables))
    return tmp_path


def test_installer_units_load_and_the_installer_is_sandboxed(rendered: Path):
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             *(str(rendered / u) for u in UNITS)],
                            capture_output=True, text=True, timeout=120)
    # The threshold is in tenths of the displayed exposure: 30 means "3.0 or better".
    security = [subprocess.run(["systemd-analyze", "security", "--offline=true",
                                "--threshold=30", str(rendered / unit)],
                               capture_output=True, text=True, timeout=120)
                for unit in UNITS[1:]]

    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    for result in security:
        assert result.returncode == 0, result.stdout[-400:]


def sshd_settings(rendered: Path, user: str, address: str) -> dict[str, str]:
    # Debian's sshd_config includes the drop-ins first; the ssh role's settings follow.
    return effective_settings(rendered, f"Include {rendered / 'sshd-update-agent.conf'}\n"
                                        "AllowUsers admin\n", user, address)


def test_sshd_settings_confine_only_the_update_account(rendered: Path):
    vendor = sshd_settings(rendered, "pcupdate", VENDOR_IP)
    rogue = sshd_settings(rendered, "pcupdate", ROGUE_IP)
    admin = sshd_settings(rendered, "admin", ROGUE_IP)

    assert "denyusers" not in vendor
    assert rogue["denyusers"] == "pcupdate"
    assert vendor["allowusers"].split() == ["pcupdate@207.219.44.0/24",
                                            "pcupdate@209.89.117.0/24",
                                            "pcupdate@204.225.114.0/24", "admin"]
    assert vendor["forcecommand"] == "portcullis-update-agent receive"
    assert (vendor["permittty"], vendor["disableforwarding"]) == ("no", "yes")
    assert vendor["authenticationmethods"] == "publickey"
    assert vendor["authorizedkeysfile"] == "/etc/portcullis/update/authorized_keys"
    assert (admin["forcecommand"], admin["permittty"]) == ("none", "yes")


def test_authorized_keys_entry_forces_the_agent_from_the_vendor_netblocks(rendered: Path):
    entries = [line for line in (rendered / "authorized_keys").read_text().splitlines()
               if line and not line.startswith("#")]

    assert entries == ['restrict,command="portcullis-update-agent receive",'
                       'from="207.219.44.0/24,209.89.117.0/24,204.225.114.0/24" '
                       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBjd0Ww2Xk9s0k2Hq8zJ0eLZ1q4C1w2dA4"
                       "nFv2m4qG0 v"]


def test_agent_configuration_is_validated_by_the_agent_before_it_is_installed(
        rendered: Path, tmp_path: Path):
    # the task's validate command, as Ansible runs it on a host with a release
    tasks = (ROLE / "tasks" / "main.yml").read_text()
    assert "--config %s check" in tasks
    check = [str(VENV_BIN / "portcullis-update-agent"), "--config"]
    assert subprocess.run([*check, str(rendered / "agent.toml"), "check"],
                          capture_output=True, timeout=60).returncode == 0
    wide = tmp_path / "wide.toml"
    wide.write_text(render("agent.toml.j2", {**role_defaults(),
                                             "update_agent_vendor_netblocks": ["0.0.0.0/0"]}))
    refused = subprocess.run([*check, str(wide), "check"], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1
    assert "[agent] netblocks: '0.0.0.0/0' is too broad" in refused.stderr


@pytest.mark.parametrize("netblock,complaint", [
    ("207.219.44.1/24", "invalid AllowUsers pattern"),
    ("207.219.44.0/24 209.89.117.0/24", "Bad Match condition"),
    ('207.219.44.0/24"', "invalid quotes"),
])
def test_an_sshd_drop_in_sshd_cannot_read_is_not_installed(tmp_path: Path, netblock,
                                                           complaint):
    # the task's validate command, as Ansible runs it on the rendered file (also in an
    # image tree, where agent.toml's check stands aside)
    if not list(Path("/etc/ssh").glob("ssh_host_*_key")) or not Path("/run/sshd").is_dir():
        pytest.skip("sshd -t needs this machine's host keys and /run/sshd")
    task = next(t for t in yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
                if t["name"] == "sshd settings for the update account")
    validate = task["ansible.builtin.template"]["validate"]

    def validated(netblocks: list[str]) -> subprocess.CompletedProcess[str]:
        drop_in = tmp_path / "60-portcullis-update-agent.conf"
        drop_in.write_text(render("sshd-update-agent.conf.j2", {
            **role_defaults(), "update_agent_vendor_netblocks": netblocks}))
        argv = [str(drop_in) if arg == "%s" else arg for arg in validate.split()]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert validated(role_defaults()["update_agent_vendor_netblocks"]).returncode == 0
    refused = validated(["209.89.117.0/24", netblock])
    assert refused.returncode != 0
    assert complaint in refused.stderr


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            settings.setdefault(key.strip(), []).extend(value.split())
    return settings


def test_the_boot_undo_precedes_every_service_without_an_ordering_cycle(rendered: Path):
    # The firewall loader is part of sysinit.target: a unit with default dependencies
    # (after sysinit.target) ordered before it makes a cycle, which systemd breaks by
    # dropping one of the two units from the boot.
    recover = unit_settings((rendered / "portcullis-update-recover.service").read_text())
    services = role_defaults()["update_agent_services"]
    early = [name for name in services
             for template in ROLE.parent.glob(f"*/templates/{name}.j2")
             if "sysinit.target" in unit_settings(template.read_text()).get("WantedBy", [])]

    assert early == ["portcullis-firewall.service"]
    assert set(services) <= set(recover["Before"])
    assert recover["DefaultDependencies"] == ["no"]
    assert "sysinit.target" in recover["Before"]
    assert recover["WantedBy"] == ["sysinit.target"]
    assert not {"sysinit.target", "basic.target"} & set(recover.get("After", []))


def test_the_boot_undo_may_write_everything_the_installer_writes(rendered: Path):
    # ProtectSystem=strict: a directory not listed is read-only to it, so the release,
    # configuration files or signature files an update cut off replaced could not be put
    # back (portcullis.toml's directory was missing: a config update was never undone).
    recover = unit_settings((rendered / "portcullis-update-recover.service").read_text())
    install = unit_settings((rendered / "portcullis-update-install@.service").read_text())

    assert set(install["ReadWritePaths"]) <= set(recover["ReadWritePaths"])
    # ... as the installer does: a configuration file is put back with its owner (chown)
    health_checks = {"CAP_SETUID", "CAP_SETGID"}   # the one thing the boot undo never runs
    assert set(install["CapabilityBoundingSet"]) - health_checks \
        == set(recover["CapabilityBoundingSet"])
