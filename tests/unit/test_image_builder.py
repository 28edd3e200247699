"""The image builder's pure parts: apt sources, role packages, first-boot network settings,
the ESP writer, make flash's refusals, requirements.lock and the wheelhouse (no image build
needed)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image"))

from builder import aptsources, disk, flash, hostdeps, lock, paths, roles, wheelhouse  # noqa: E402
from builder.progress import BuildError, Progress  # noqa: E402

pytestmark = pytest.mark.image


def load_script(path: Path):
    loader = importlib.machinery.SourceFileLoader(path.name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


network_config = load_script(REPO / "overlay/usr/lib/portcullis/network-config")


# -- apt sources -------------------------------------------------------------------------------

DEB822 = """\
Types: deb
# a snapshot comment
URIs: http://mirror.internal.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.internal.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://security.internal.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources_give_the_archive_and_security_mirrors():
    sources = aptsources.parse_deb822(DEB822)
    mirrors = aptsources.find_mirrors(sources, "bookworm")
    assert mirrors == aptsources.Mirrors("http://mirror.internal.example/debian",
                                         "http://security.internal.example/debian-security")


def test_disabled_deb822_stanzas_and_source_only_entries_are_ignored():
    text = DEB822.replace("Types: deb\n# a snapshot", "Enabled: no\nTypes: deb\n# a snapshot")
    sources = aptsources.parse_deb822(text)
    assert [s.uri for s in sources] == ["http://security.internal.example/debian-security"]
    with pytest.raises(aptsources.SourcesError, match="bookworm"):
        aptsources.find_mirrors(sources, "bookworm")


def test_one_line_sources_with_options_and_comments():
    text = ("# deb http://old.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
            "deb-src http://mirror.example/debian bookworm main\n"
            "deb http://mirror.example/debian-security bookworm-security main # security\n")
    sources = aptsources.parse_one_line(text)
    assert [(s.uri, s.suites) for s in sources] == [
        ("http://mirror.example/debian", ("bookworm",)),
        ("http://mirror.example/debian-security", ("bookworm-security",))]
    assert sources[0].options == {"arch": "amd64", "signed-by": "/k.gpg"}


def test_unparsable_one_line_source_names_file_and_line():
    with pytest.raises(aptsources.SourcesError, match=r"host\.list:2"):
        aptsources.parse_one_line("deb http://a.example/debian bookworm main\nnonsense\n",
                                  "host.list")


def test_host_sources_are_read_from_both_formats(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://one.example/debian bookworm main\n")
    (tmp_path / "sources.list.d/extra.sources").write_text(DEB822)
    (tmp_path / "sources.list.d/ignored.list.disabled").write_text("deb http://x.example/ x main\n")
    sources = aptsources.read_host_sources(tmp_path)
    assert [s.uri for s in sources][:2] == ["http://one.example/debian",
                                             "http://mirror.internal.example/debian"]
    assert "http://x.example" not in [s.uri for s in sources]


def test_repositories_for_another_release_use_the_same_mirrors():
    mirrors = aptsources.Mirrors("http://mirror.example/debian", None)
    text = mirrors.repositories("trixie")
    assert "URIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n" in text
    assert "security" not in text
    assert "deb.debian.org" not in text


# -- packages the roles declare ----------------------------------------------------------------

def test_role_packages_are_read_from_inline_and_block_lists(tmp_path):
    (tmp_path / "alpha/defaults").mkdir(parents=True)
    (tmp_path / "alpha/defaults/main.yml").write_text(
        "---\n# comment\nalpha_packages: [one, 'two']  # why\nalpha_other: [x]\n")
    (tmp_path / "beta/vars").mkdir(parents=True)
    (tmp_path / "beta/vars/main.yml").write_text(
        "beta_packages:\n  - three\n  - libfour1\nbeta_next: 1\n  - not-a-package\n")
    (tmp_path / "gamma/defaults").mkdir(parents=True)
    (tmp_path / "gamma/defaults/main.yml").write_text("gamma_enabled: true\n")
    assert roles.role_packages(tmp_path) == ["libfour1", "one", "three", "two"]


# -- network.conf on the ESP -------------------------------------------------------------------

def test_static_settings_become_a_networkd_unit():
    values = network_config.parse("\ufeffADDRESS=192.0.2.10/24\r\nGATEWAY=192.0.2.1\r\n"
                                  "# comment\r\nHOSTNAME=MX1.Example.com\r\n")
    unit = network_config.unit_text(values)
    assert "Address=192.0.2.10/24\nGateway=192.0.2.1\n" in unit
    assert "DHCP=no" in unit and "Name=en* eth*" in unit
    assert network_config.hostname(values) == "mx1.example.com"


def test_empty_address_means_dhcp():
    assert network_config.unit_text(network_config.parse("ADDRESS=\nGATEWAY=\n")) is None


@pytest.mark.parametrize(("text", "message"), [
    ("ADDRESS=192.0.2.300/24\n", "ADDRESS"),
    ("ADDRESS=192.0.2.10\n", "prefix length"),
    ("ADDRESS=192.0.2.10/24\nGATEWAY=router\n", "GATEWAY"),
    ("ADDRESS=192.0.2.10/24\nINTERFACE=eth0;rm\n", "INTERFACE"),
    ("ADRESS=192.0.2.10/24\n", "line 1"),
    ("ADDRESS=192.0.2.10/255.255.255.0\n", "prefix length"),
    ("ADDRESS=192.0.2.10/0.0.0.255\n", "prefix length"),
    ("ADDRESS=2001:db8::10%eth0/64\n", "scope"),
    ("ADDRESS=2001:db8::10/64\nGATEWAY=fe80::1%eth0\n", "scope"),
])
def test_bad_network_settings_are_refused_with_the_reason(text, message):
    with pytest.raises(network_config.Invalid, match=message):
        network_config.unit_text(network_config.parse(text))


def test_bad_hostname_is_refused():
    with pytest.raises(network_config.Invalid, match="HOSTNAME"):
        network_config.hostname({"HOSTNAME": "bad_name.example"})


# -- the ESP of a disk image -------------------------------------------------------------------

def make_gpt_image(path: Path, esp_sectors: int = 8192) -> None:
    """A minimal GPT disk image with one ESP (what partitions() reads: header and entries)."""
    sectors = 2048 + esp_sectors + 64
    entry = (disk.ESP_TYPE.bytes_le + uuid.uuid4().bytes_le
             + struct.pack("<QQQ", 2048, 2048 + esp_sectors - 1, 0)
             + "esp".encode("utf-16-le").ljust(72, b"\0"))
    header = (b"EFI PART" + struct.pack("<IIIIQQQQ", 0x10000, 92, 0, 0, 1, sectors - 1, 34,
                                        sectors - 34)
              + uuid.uuid4().bytes_le + struct.pack("<QIII", 2, 128, 128, 0))
    with path.open("wb") as image:
        image.truncate(sectors * disk.SECTOR)
        image.seek(disk.SECTOR)
        image.write(header)
        image.seek(2 * disk.SECTOR)
        image.write(entry.ljust(128, b"\0"))
    subprocess.run(["mformat", "-i", f"{path}@@{2048 * disk.SECTOR}", "-T", str(esp_sectors),
                    "-h", "1", "-s", "32", "::"], check=True)


def test_files_are_written_to_and_read_from_the_esp(tmp_path):
    image = tmp_path / "disk.raw"
    make_gpt_image(image)
    (esp,) = disk.partitions(image)
    assert (esp.type, esp.offset, esp.name) == (disk.ESP_TYPE, 2048 * 512, "esp")
    subprocess.run(["mmd", "-i", f"{image}@@{esp.offset}", "::portcullis"], check=True)
    disk.write_esp_file(image, "portcullis/network.conf", "ADDRESS=192.0.2.10/24\n")
    disk.write_esp_file(image, "portcullis/network.conf", "ADDRESS=\n")
    assert disk.read_esp_file(image, "portcullis/network.conf") == "ADDRESS=\n"


def test_a_file_without_gpt_is_refused(tmp_path):
    image = tmp_path / "blank.raw"
    image.write_bytes(b"\0" * 4096)
    with pytest.raises(disk.DiskError, match="no GPT"):
        disk.esp(image)


# -- make flash --------------------------------------------------------------------------------

def test_flash_refuses_a_regular_file(tmp_path):
    target = tmp_path / "not-a-disk"
    target.write_bytes(b"")
    with pytest.raises(BuildError, match="not a block device"):
        flash.check_target(target, 1)


def test_flash_refuses_the_disk_holding_the_running_system():
    number = os.stat("/").st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(number)}:{os.minor(number)}").resolve()
    if (sysfs / "partition").exists():
        sysfs = sysfs.parent
    device = Path("/dev", sysfs.name)
    if not device.exists():
        pytest.skip("the root file system is not on a block device here")
    with pytest.raises(BuildError, match="running system"):
        flash.check_target(device, 1)


def test_flash_without_a_device_says_how_to_name_one():
    with pytest.raises(BuildError, match="DEV=/dev/sdX"):
        flash.flash("")


# -- the wheelhouse and requirements.lock ------------------------------------------------------

def installed_requirements(name: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """What the dev venv's distribution ``name`` (with ``extras``) needs on this platform."""
    needed = []
    for text in importlib.metadata.requires(name) or ():
        requirement = Requirement(text)
        if requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            needed.append(requirement)
    return needed


def test_every_runtime_dependency_is_pinned_with_a_hash():
    pins = lock.read(lock.LOCK)
    for text in lock.runtime_requirements():
        requirement = Requirement(text)
        pin = pins.get(lock.normalize(requirement.name))
        assert pin is not None, f"{requirement.name} is not in requirements.lock"
        assert pin.hashes, f"{pin.name} has no --hash=sha256: in requirements.lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (text, pin)
    assert lock.unpinned(lock.runtime_requirements(), pins) == []
    assert lock.check(lock.LOCK) == pins
    # Transitively: whatever a pinned distribution needs is pinned too.
    for name, extras in [("portcullis", lock.EXTRAS), *((p, ()) for p in pins)]:
        for requirement in installed_requirements(name, extras):
            needed = pins.get(lock.normalize(requirement.name))
            assert needed is not None, f"{name} needs {requirement}, not in the lock"
            assert requirement.specifier.contains(needed.version, prereleases=True)


def test_lock_pins_the_versions_the_tests_run_with():
    for pin in lock.read(lock.LOCK).values():
        assert importlib.metadata.version(pin.name) == pin.version, \
            f"the dev venv has another {pin.name} than requirements.lock: run `make lock`"


def test_a_lock_missing_a_dependency_is_refused(tmp_path):
    stale = tmp_path / "requirements.lock"
    pins = lock.read(lock.LOCK)
    del pins["waitress"]
    lock.write(stale, list(pins.values()))
    with pytest.raises(BuildError, match="does not pin waitress"):
        lock.check(stale)
    unhashed = tmp_path / "unhashed.lock"
    unhashed.write_text("waitress==3.0.2\n")
    assert lock.unpinned(["waitress>=3.0"], lock.read(unhashed)) == ["waitress>=3.0"]


FAKE_PIP = """#!{python}
# Stands in for the build venv's pip: records its arguments, makes the files pip would.
import json, os, pathlib, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
def option(flag):
    return pathlib.Path(args[args.index(flag) + 1])
if "--version" in args:
    print("pip 23.0.1 from /fake/pip (python 3.11)")
elif "wheel" in args and "-r" in args:
    for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\\S+)", option("-r").read_text(), re.M):
        name = re.sub(r"[-.]+", "_", m[1])
        (option("--wheel-dir") / f"{{name}}-{{m[2]}}-py3-none-any.whl").write_text(m[0])
elif "wheel" in args:
    version = os.environ["FAKE_PIP_VERSION"]
    (option("--wheel-dir") / f"portcullis-{{version}}-py3-none-any.whl").write_text("app")
elif "download" in args:
    (option("--dest") / "pip-23.0.1-py3-none-any.whl").write_text("pip")
"""


def fake_pip_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A build venv whose pip is FAKE_PIP (it logs its commands to pip.log); returns the
    project's version."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    (venv / "bin/pip").write_text(FAKE_PIP.format(python=sys.executable))
    (venv / "bin/pip").chmod(0o755)
    version = paths.portcullis_version()
    monkeypatch.setattr(paths, "VENV", venv)
    monkeypatch.setattr(paths, "WHEELHOUSE", tmp_path / "wheelhouse")
    monkeypatch.setenv("FAKE_PIP_LOG", str(tmp_path / "pip.log"))
    monkeypatch.setenv("FAKE_PIP_VERSION", version)
    return version


def test_wheelhouse_takes_the_dependencies_from_the_lock_with_require_hashes(tmp_path,
                                                                             monkeypatch):
    version = fake_pip_build(tmp_path, monkeypatch)
    # The fake pip's "wheel" of pip holds b"pip": pinned here as the real one is in PIP.
    monkeypatch.setattr(wheelhouse, "PIP", lock.Pin("pip", "23.0.1",
                                                    (hashlib.sha256(b"pip").hexdigest(),)))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if os.uname().machine != "x86_64":
        pytest.skip("the wheelhouse is built on x86-64 only")

    target = wheelhouse.build(Progress(1, tmp_path / "build.log"), version, python)

    commands = [json.loads(line) for line in (tmp_path / "pip.log").read_text().splitlines()]
    fetches = [c for c in commands if {"wheel", "download"} & set(c)]
    locked = [c for c in fetches if str(lock.LOCK) in c]
    assert len(locked) == 1 and "--require-hashes" in locked[0]
    assert locked[0][locked[0].index("-r") + 1] == str(lock.LOCK)
    # Nothing else may bring in a dependency: the project and pip come without theirs.
    for command in fetches:
        assert command in locked or "--no-deps" in command, command
    # What builds the project and the locked sdists is the build venv's pinned setuptools
    # and wheel: no isolated build environment fetching them from the index unchecked.
    for command in fetches:
        if "wheel" in command:
            assert "--no-build-isolation" in command, command
    # The target's pip gets the hash of every dependency wheel in the wheelhouse.
    shipped = lock.read(target / "requirements.lock")
    assert {(p.name, p.version) for p in shipped.values()} == \
        {(p.name, p.version) for p in lock.read(lock.LOCK).values()}
    for wheel in target.glob("*.whl"):
        name, _ = lock.distribution_of(wheel.name)
        if name not in ("portcullis", "pip"):
            assert shipped[name].hashes == (hashlib.sha256(wheel.read_bytes()).hexdigest(),)
    # pip is pinned too: fetched with --require-hashes against pip.lock, which the role
    # checks the wheel it keeps on the appliance against.
    (pip_fetch,) = [c for c in fetches if "download" in c]
    assert "--require-hashes" in pip_fetch
    assert pip_fetch[pip_fetch.index("-r") + 1] == str(target / wheelhouse.PIP_LOCK)
    assert lock.read(target / wheelhouse.PIP_LOCK) == {"pip": wheelhouse.PIP}
    (pip_wheel,) = target.glob("pip-*.whl")
    assert hashlib.sha256(pip_wheel.read_bytes()).hexdigest() in wheelhouse.PIP.hashes


def test_wheelhouse_refuses_a_pip_wheel_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    version = fake_pip_build(tmp_path, monkeypatch)
    if os.uname().machine != "x86_64":
        pytest.skip("the wheelhouse is built on x86-64 only")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"

    # The fake pip's wheel of pip is b"pip", not the real pip 23.0.1 PIP pins.
    with pytest.raises(BuildError, match=r"not pip 23\.0\.1 with sha256 236bcb61"):
        wheelhouse.build(Progress(1, tmp_path / "build.log"), version, python)


# -- the build venv and image/build-tools.lock ---------------------------------------------

def test_every_build_tool_is_pinned_with_a_hash():
    pins = lock.check_build_tools()
    assert pins["ansible"].version == paths.ANSIBLE_VERSION
    # The project's build requirements (setuptools, wheel) too: the wheelhouse builds with them.
    for text in lock.build_tools():
        requirement = Requirement(text)
        pin = pins[lock.normalize(requirement.name)]
        assert requirement.specifier.contains(pin.version, prereleases=True), (text, pin)
    assert {"setuptools", "wheel", "ansible-core"} <= set(pins)
    for pin in pins.values():
        assert len(pin.hashes) == 1, pin


def test_a_build_tools_lock_without_ansible_or_at_another_version_is_refused(tmp_path):
    pins = lock.read(lock.BUILD_TOOLS_LOCK)
    other = tmp_path / "other.lock"
    lock.write(other, [p for p in pins.values() if p.name != "ansible"])
    with pytest.raises(BuildError, match=r"does not pin ansible==.* with a hash"):
        lock.check_build_tools(other)
    lock.write(other, [lock.Pin("ansible", "2.9.0", pins["ansible"].hashes),
                       *(p for p in pins.values() if p.name != "ansible")])
    with pytest.raises(BuildError, match=r"ansible==.* \(it pins 2\.9\.0\)"):
        lock.check_build_tools(other)
    with pytest.raises(BuildError, match="missing: run `make lock`"):
        lock.check_build_tools(tmp_path / "none.lock")


class RecordingProgress(Progress):
    """Runs nothing: records each command; `python -m venv` leaves an ansible that answers
    --version, as the real venv has once pip installed it."""

    def __init__(self, log_path: Path) -> None:
        super().__init__(1, log_path)
        self.commands: list[list[str]] = []

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.commands.append(argv)
        if argv[1:3] == ["-m", "venv"]:
            ansible = Path(argv[3]) / "bin/ansible"
            ansible.parent.mkdir(parents=True)
            ansible.write_text("#!/bin/sh\necho 'ansible [core 2.18.19]'\n")
            ansible.chmod(0o755)


def test_build_venv_installs_only_the_locked_build_tools_by_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "VENV", tmp_path / "venv")
    progress = RecordingProgress(tmp_path / "build.log")

    hostdeps.ensure_ansible(progress)

    venv, install = progress.commands
    assert venv[1:] == ["-m", "venv", str(tmp_path / "venv")]
    assert install[:2] == [str(tmp_path / "venv/bin/pip"), "install"]
    assert {"--require-hashes", "--only-binary=:all:"} <= set(install)
    assert install[install.index("-r") + 1] == str(lock.BUILD_TOOLS_LOCK)
    # Nothing named outside the lock (a bare ansible==X would be taken unhashed).
    assert [a for a in install if "==" in a] == []
    # Built once per lock: the same lock again finds it; a changed lock builds it anew.
    hostdeps.ensure_ansible(progress)
    assert len(progress.commands) == 2
    changed = tmp_path / "build-tools.lock"
    changed.write_text(lock.BUILD_TOOLS_LOCK.read_text() + "# changed\n")
    monkeypatch.setattr(lock, "BUILD_TOOLS_LOCK", changed)
    hostdeps.ensure_ansible(progress)
    assert len(progress.commands) == 4
    assert progress.commands[-1][progress.commands[-1].index("-r") + 1] == str(changed)


def test_mailfilter_role_installs_with_require_hashes_and_no_index():
    tasks = yaml.safe_load((REPO / "roles/mailfilter/tasks/release.yml").read_text())
    block = next(t for t in tasks if t.get("name") == "Install the release")["block"]
    install = next(t for t in block if t["name"].startswith("Install portcullis"))
    argv = install["ansible.builtin.command"]["argv"]
    assert {"--require-hashes", "--no-index", "--requirement"} <= set(argv)


def test_mailfilter_role_keeps_the_pinned_pip_wheel_and_runs_pip_from_it():
    tasks = yaml.safe_load((REPO / "roles/mailfilter/tasks/release.yml").read_text())
    fixed = yaml.safe_load((REPO / "roles/mailfilter/vars/main.yml").read_text())
    agent = yaml.safe_load((REPO / "roles/update_agent/defaults/main.yml").read_text())
    # Where the role keeps it is where the update installer looks by default.
    assert fixed["mailfilter_pip_wheel"] == agent["update_agent_pip_wheel"] == \
        "/usr/lib/portcullis/pip.whl"
    names = [t["name"] for t in tasks]
    pinned = tasks[names.index("Check the pip wheel against its pin")]
    assert "pip.lock" in pinned["vars"]["mailfilter_pip_pins"]
    assert "sha256sum" in pinned["vars"]["mailfilter_pip_sha256"]
    kept = tasks[names.index("Keep the pip wheel (root's)")]
    assert names.index("Check the pip wheel against its pin") < names.index(kept["name"])
    assert kept["ansible.builtin.copy"] | {"src": None} == {
        "src": None, "dest": "{{ mailfilter_pip_wheel }}", "owner": "root", "group": "root",
        "mode": "0644"}
    block = next(t for t in tasks if t.get("name") == "Install the release")["block"]
    venv = next(t for t in block if t["name"] == "Create the release venv")
    assert "--without-pip" in venv["ansible.builtin.command"]["argv"]
    install = next(t for t in block if t["name"].startswith("Install portcullis"))
    assert install["ansible.builtin.command"]["argv"][1] == "{{ mailfilter_pip_wheel }}/pip"
