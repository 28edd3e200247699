"""The ssh role's first-boot unit that makes the host keys, its commands run for real (with
ssh-keygen, under the unit's UMask) in a directory standing in for /etc/ssh."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import jinja2
import pytest

pytestmark = pytest.mark.updates

ROLE = Path(__file__).resolve().parents[2] / "roles" / "ssh"


def service_settings(types: list[str]) -> list[tuple[str, str]]:
    """The [Service] settings of the rendered unit, in order (as Ansible renders it)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     keep_trailing_newline=True, autoescape=False)
    text = environment.get_template("ssh-hostkeys.service.j2").render(
        ansible_managed="managed", ssh_host_key_types=types)
    settings, section = [], ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.append((key, value))
    return settings


def make_keys(settings: list[tuple[str, str]], etc_ssh: Path) -> None:
    umask = int(dict(settings)["UMask"], 8)
    old = os.umask(umask)
    try:
        for key, value in settings:
            if key == "ExecStart":
                argv = [arg.replace("/etc/ssh/", f"{etc_ssh}/") for arg in shlex.split(value)]
                subprocess.run(argv, check=True, timeout=120, capture_output=True)
    finally:
        os.umask(old)


def test_host_keys_are_private_and_their_public_halves_readable(tmp_path):
    settings = service_settings(["ed25519", "ecdsa"])
    # The sandbox stays: the unit writes /etc/ssh and nothing else.
    assert ("ProtectSystem", "strict") in settings
    assert ("ReadWritePaths", "/etc/ssh") in settings
    assert ("PrivateNetwork", "yes") in settings

    make_keys(settings, tmp_path)

    for kind in ("ed25519", "ecdsa"):
        private = tmp_path / f"ssh_host_{kind}_key"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(private.with_suffix(".pub").stat().st_mode) == 0o644
        assert private.with_suffix(".pub").read_text().startswith(
            "ssh-ed25519 " if kind == "ed25519" else "ecdsa-sha2-nistp256 ")


def test_existing_host_keys_are_left_alone(tmp_path):
    settings = service_settings(["ed25519"])
    make_keys(settings, tmp_path)
    private = tmp_path / "ssh_host_ed25519_key"
    before = private.read_bytes()

    make_keys(settings, tmp_path)

    assert private.read_bytes() == before
