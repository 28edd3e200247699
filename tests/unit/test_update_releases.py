"""Release directories, the current symlink, and the agent's configuration file."""

from __future__ import annotations

import os
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portcullis import addresses
from portcullis.addresses import AddressError
from portcullis.config import ConfigError
from portcullis.update import agent, agentconfig
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import BundleRejected, FileEntry, Manifest
from portcullis.update.releases import (
    InstallError,
    Releases,
    Wheel,
    choose_pip,
    copy_release,
    pip_version,
)
from portcullis.update.targets import AppTarget
from tests.support.smalldisk import run_on_small_disk

pytestmark = pytest.mark.updates


def fake_release(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "portcullis").write_text(f"#!{path}/bin/python\nprint('hi')\n")
    (path / "bin" / "portcullis").chmod(0o755)
    (path / "bin" / "python").symlink_to("/usr/bin/python3")
    (path / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python -m venv {path}\n")
    (path / "lib").mkdir()
    (path / "lib" / "data.bin").write_bytes(b"\0" + str(path).encode())
    return path


def test_copied_release_points_at_itself_and_leaves_the_original_alone(tmp_path):
    old = fake_release(tmp_path / "releases" / "1.0")
    new = tmp_path / "releases" / "1.1"

    copy_release(old, new)

    assert (new / "bin" / "portcullis").read_text().startswith(f"#!{new}/bin/python\n")
    assert os.access(new / "bin" / "portcullis", os.X_OK)
    assert str(new) in (new / "pyvenv.cfg").read_text()
    assert os.readlink(new / "bin" / "python") == "/usr/bin/python3"
    assert (old / "bin" / "portcullis").read_text().startswith(f"#!{old}/bin/python\n")
    assert (new / "lib" / "data.bin").read_bytes() == (old / "lib" / "data.bin").read_bytes()


def test_switch_replaces_the_current_link_and_prune_keeps_what_matters(tmp_path):
    releases = Releases(tmp_path / "releases", tmp_path / "current")
    for version in ("1.0", "1.1", "1.2", "1.10"):
        fake_release(tmp_path / "releases" / version)

    releases.switch("1.1")
    assert releases.current() == "1.1"
    assert os.readlink(tmp_path / "current") == "releases/1.1"
    releases.switch("1.10")
    removed = releases.prune(2, protect={"1.0"})

    assert releases.current() == "1.10"
    assert removed == ["1.1"]
    assert releases.versions() == ["1.0", "1.2", "1.10"]


def test_current_outside_the_releases_directory_is_not_a_release(tmp_path):
    fake_release(tmp_path / "elsewhere" / "9.9")
    (tmp_path / "releases").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "elsewhere" / "9.9")

    assert Releases(tmp_path / "releases", tmp_path / "current").current() is None


@pytest.mark.parametrize(("text", "error"), [
    ("[agent]\nnetblocks = ['207.219.44.0/33']\n", "netblocks: '207.219.44.0/33' is not"),
    ("[agent]\nnetblock = ['207.219.44.0/24']\n", "[agent] netblock: unknown key"),
    ("[agent]\nconfig_files = ['../passwd']\n", "config_files: '../passwd' must be a plain"),
    ("[agent]\nkeep_releases = 'three'\n", "[agent] keep_releases: expected an integer"),
    ("[updates]\n", "[updates]: unknown section"),
])
def test_agent_configuration_errors_name_the_key(tmp_path, text, error):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        agentconfig.load(path)


@pytest.mark.parametrize(("netblock", "why"), [
    ("0.0.0.0/0", "is too broad"),                  # pushes accepted from anywhere
    ("::/0", "is too broad"),
    ("207.219.44.7/24", "has host bits set"),       # sshd's from= would shut the vendor out
    ("vendor.example", "is not an IP network"),
    ("207.219.44.0/24 ", "is not an IP network"),   # would split sshd's patterns
    ("127.0.0.0/8", "is not a network the vendor can connect from"),
])
def test_agent_netblocks_follow_the_one_vendor_network_rule(tmp_path, capsys, netblock, why):
    path = tmp_path / "agent.toml"
    path.write_text(f"[agent]\nnetblocks = ['207.219.44.0/24', '{netblock}']\n")
    message = f"[agent] netblocks: {netblock!r} {why}"
    assert why in addresses.vendor_network_problem(netblock)

    with pytest.raises(ConfigError, match=re.escape(message)):
        agentconfig.load(path)
    # the same file through the command the role validates agent.toml with
    assert agent.main(["--config", str(path), "check"]) == 1
    assert message in capsys.readouterr().err
    # and a configuration built in code cannot slip past the load
    with pytest.raises(AddressError, match=re.escape(f"{netblock!r} {why}")):
        AgentConfig(netblocks=("207.219.44.0/24", netblock)).networks()


def test_agent_check_accepts_the_default_netblocks(tmp_path, capsys):
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\n")
    assert agent.main(["--config", str(path), "check"]) == 0
    assert "is valid; vendor netblocks: 207.219.44.0/24" in capsys.readouterr().out


def test_agent_configuration_defaults_are_the_appliance_paths(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\n")

    config = agentconfig.load(path)

    assert config.netblocks == agentconfig.DEFAULT_NETBLOCKS
    assert config.current_link == Path("/opt/portcullis/current")
    assert config.installer_user == "pcupdate"
    assert config.pip_wheel == Path("/usr/lib/portcullis/pip.whl")


def app_manifest(*names: str) -> Manifest:
    now = datetime.now(UTC)
    return Manifest("app", "0.2.0", now, now + timedelta(days=1),
                    tuple(FileEntry(name, "0" * 64, 1) for name in names))


def test_an_app_bundle_may_carry_one_pip_wheel_to_build_the_release_with(tmp_path):
    target = AppTarget(AgentConfig(state_dir=tmp_path / "state"))
    app = "portcullis-0.2.0-py3-none-any.whl"

    assert target.bundle_pip_wheel(app_manifest(app, "pip_nftables-1.0-py3-none-any.whl")) \
        is None
    assert target.bundle_pip_wheel(app_manifest(app, "pip-26.3-py3-none-any.whl")) == \
        "pip-26.3-py3-none-any.whl"
    with pytest.raises(BundleRejected, match="may hold one pip wheel"):
        target.check(app_manifest(app, "pip-26.3-py3-none-any.whl", "pip-25.0-py3-none-any.whl"))


def test_without_its_pip_wheel_no_release_is_built(tmp_path):
    releases = Releases(tmp_path / "releases", tmp_path / "current")
    fake_release(tmp_path / "releases" / "1.0")
    releases.switch("1.0")

    with pytest.raises(InstallError, match=f"no pip to install with: {tmp_path}/pip.whl"):
        releases.prepare("1.1", [Wheel(tmp_path / "portcullis-1.1-py3-none-any.whl",
                                       "portcullis", "1.1", "0" * 64)], tmp_path / "pip.whl")
    assert releases.versions() == ["1.0"]


# Builds release 1.1 from 1.0 (a copy of argv[2] with a 600 KiB file added) in argv[1]'s
# releases, on a 1 MiB file system.
BUILD_ON_A_FULL_DISK = """
import json, shutil, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import FileEntry, Manifest, VerifiedBundle
from portcullis.update.targets import AppTarget
from tests.support.smalldisk import run_on_small_disk

root = Path(sys.argv[1])
shutil.copytree(sys.argv[2], root / "releases" / "1.0", symlinks=True)
(root / "releases" / "1.0" / "lib" / "big.bin").write_bytes(bytes(600 * 1024))
now = datetime.now(UTC)
wheel = "portcullis-1.1-py3-none-any.whl"
manifest = Manifest("app", "1.1", now, now + timedelta(days=1), (FileEntry(wheel, "0" * 64, 1),))
target = AppTarget(AgentConfig(state_dir=root / "state", releases_dir=root / "releases",
                               current_link=root / "current"))
outcome = target.apply(VerifiedBundle(manifest, b"", [], ["k1"], {wheel: root / wheel}))
print(json.dumps({"outcome": outcome.as_dict(), "releases": target.releases.versions(),
                  "left": sorted(p.name for p in (root / "releases").iterdir())}))
"""


def test_a_disk_filling_while_the_release_is_copied_fails_the_update_cleanly(tmp_path):
    (tmp_path / "releases").mkdir()
    (tmp_path / "current").symlink_to("releases/1.0")
    base = fake_release(tmp_path / "base")

    result = run_on_small_disk(tmp_path / "releases", "1m", BUILD_ON_A_FULL_DISK,
                               str(tmp_path), str(base))

    assert result["outcome"]["outcome"] == "failed"
    assert result["outcome"]["reason"].startswith(
        "appliance disk full while copying the release 1.0 to build 1.1: ")
    assert "No space left on device" in result["outcome"]["reason"]
    assert result["releases"] == ["1.0"] and result["left"] == ["1.0"]  # no partial 1.1


def pip_wheel(path: Path, version: str | None) -> Path:
    """A wheel holding a pip of ``version`` (None: no dist-info), as pip's wheels are laid
    out; its file name says nothing (as the appliance's pip.whl does not)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pip/__init__.py", "")
        if version is not None:
            archive.writestr(f"pip-{version}.dist-info/METADATA",
                             f"Metadata-Version: 2.1\nName: pip\nVersion: {version}\n\nText\n")
    return path


def test_pip_version_is_read_from_the_wheels_metadata(tmp_path):
    assert pip_version(pip_wheel(tmp_path / "pip.whl", "23.0.1")) == "23.0.1"
    assert pip_version(pip_wheel(tmp_path / "bare.whl", None)) is None
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    assert pip_version(tmp_path / "junk.whl") is None


def test_a_bundles_pip_is_used_only_when_newer_than_the_appliances(tmp_path):
    own = pip_wheel(tmp_path / "pip.whl", "23.0.1")
    newer = pip_wheel(tmp_path / "pip-24.0-py3-none-any.whl", "24.0")
    older = pip_wheel(tmp_path / "pip-99.0-py3-none-any.whl", "22.3")   # the name lies
    same = pip_wheel(tmp_path / "pip-23.0.1-py3-none-any.whl", "23.0.1")

    assert choose_pip(None, own) == (own, "")
    assert choose_pip(newer, own) == (newer, "built with the bundle's pip 24.0")
    assert choose_pip(older, own) == (own, "built with the appliance's pip 23.0.1: the "
                                           "bundle's pip 22.3 is not newer")
    assert choose_pip(same, own)[0] == own
    # No pip of its own (or none readable): the bundle's is all there is.
    assert choose_pip(older, tmp_path / "missing.whl")[0] == older
    with pytest.raises(InstallError, match=r"the bundle.s pip wheel bare\.whl holds no pip"):
        choose_pip(pip_wheel(tmp_path / "bare.whl", None), own)
