"""Building a release from an app bundle's wheels with real pip (Debian's pip wheel, as the
appliance's) into a real venv: exactly the bundle's wheels, each checked by pip against its
sha256 from the signed manifest (--require-hashes)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from portcullis.update import agent, agentconfig
from portcullis.update.releases import InstallError, Releases, Wheel
from portcullis.update.targets import AppTarget

pytestmark = pytest.mark.updates

SYSTEM_PYTHON = "/usr/bin/python3.11"
PIP_WHEELS = sorted(Path("/usr/share/python-wheels").glob("pip-*-py3-none-any.whl"))


def make_wheel(directory: Path, name: str, version: str, *, code: str = "",
               requires: tuple[str, ...] = ()) -> Wheel:
    """A small, complete pure-Python wheel of package ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code or f'__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return Wheel(path, name, version, hashlib.sha256(path.read_bytes()).hexdigest())


def installed(venv: Path, name: str) -> str:
    return subprocess.run([str(venv / "bin/python"), "-I", "-c",
                           f"import importlib.metadata as m; print(m.version({name!r}))"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def releases(tmp_path: Path) -> Releases:
    """Release 1.0 running: portcullis 1.0 with its dependency pcdep 1.0, no pip."""
    if not PIP_WHEELS or not Path(SYSTEM_PYTHON).exists():
        pytest.fail("needs Debian's python3.11 and python3-pip-whl")
    base = tmp_path / "releases" / "1.0"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(base)], check=True)
    first = [make_wheel(tmp_path / "base", "pcdep", "1.0"),
             make_wheel(tmp_path / "base", "portcullis", "1.0", requires=("pcdep>=1.0",))]
    subprocess.run([str(base / "bin/python"), f"{PIP_WHEELS[-1]}/pip", "install", "--quiet",
                    "--no-index", "--disable-pip-version-check", *(str(w.path) for w in first)],
                   check=True)
    made = Releases(tmp_path / "releases", tmp_path / "current")
    made.switch("1.0")
    return made


def test_a_dependency_wheel_the_bundle_carries_is_the_one_installed(releases, tmp_path):
    # pcdep 1.0 already satisfies portcullis 1.1's "pcdep>=1.0": the carried 1.1 (say, a
    # security fix) must still be what the release gets, not be skipped.
    wheels = [make_wheel(tmp_path / "payload", "portcullis", "1.1", requires=("pcdep>=1.0",)),
              make_wheel(tmp_path / "payload", "pcdep", "1.1")]

    release = releases.prepare("1.1", wheels, PIP_WHEELS[-1])

    assert (installed(release, "portcullis"), installed(release, "pcdep")) == ("1.1", "1.1")
    assert installed(releases.path("1.0"), "pcdep") == "1.0"     # the running one untouched


def test_a_wheel_whose_bytes_are_not_the_signed_ones_is_not_installed(releases, tmp_path):
    app = make_wheel(tmp_path / "payload", "portcullis", "1.1", requires=("pcdep>=1.0",))
    dependency = make_wheel(tmp_path / "payload", "pcdep", "1.1")
    swapped = Wheel(dependency.path, "pcdep", "1.1", hashlib.sha256(b"other").hexdigest())

    with pytest.raises(InstallError, match=r"Expected sha256 [0-9a-f]{64}"):
        releases.prepare("1.1", [app, swapped], PIP_WHEELS[-1])
    assert releases.versions() == ["1.0"]


def test_a_dependency_neither_installed_nor_carried_fails_the_build(releases, tmp_path):
    wheels = [make_wheel(tmp_path / "payload", "portcullis", "1.1", requires=("newdep",))]

    with pytest.raises(InstallError, match="installing the wheels failed"):
        releases.prepare("1.1", wheels, PIP_WHEELS[-1])
    assert releases.versions() == ["1.0"]


# Root's installer applying an app bundle of one wheel, in a process of its own.
APPLY = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from portcullis.update import agentconfig
from portcullis.update.bundle import FileEntry, Manifest, VerifiedBundle
from portcullis.update.targets import AppTarget

config, wheel, sha256 = agentconfig.load(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
now = datetime.now(UTC)
manifest = Manifest("app", "1.1", now, now + timedelta(days=1),
                    (FileEntry(wheel.name, sha256, wheel.stat().st_size),))
AppTarget(config).apply(VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"],
                                       {wheel.name: wheel}))
"""


def test_an_app_update_cut_off_before_its_health_check_is_undone_at_the_next_boot(
        releases, tmp_path):
    wheel = make_wheel(tmp_path / "payload", "portcullis", "1.1", requires=("pcdep>=1.0",))
    config = tmp_path / "agent.toml"
    (tmp_path / "state").mkdir()
    # The installer dies (as in a power cut) once the new release is current, while the
    # services restart: before any health check has judged it.
    config.write_text(f"""[agent]
releases_dir = "{releases.releases_dir}"
current_link = "{releases.current_link}"
state_dir = "{tmp_path / 'state'}"
pip_wheel = "{PIP_WHEELS[-1]}"
restart_command = ["sh", "-c", "kill -KILL $PPID", "sh"]
""")
    killed = subprocess.run([sys.executable, "-c", APPLY, str(config), str(wheel.path),
                             wheel.sha256], capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    assert releases.current() == "1.1"       # what the services would start on, unchecked
    # Until it is undone, the unchecked release is no floor: the same bundle passes the
    # agent's checks and reaches the installer, which undoes it first.
    assert AppTarget(agentconfig.load(config)).installed_version() == "1.0"

    assert agent.main(["--config", str(config), "recover"]) == 0   # the boot unit

    assert releases.current() == "1.0"
    assert releases.versions() == ["1.0"]
    # Not a floor either: once repaired, the same bundle may be pushed again.
    assert AppTarget(agentconfig.load(config)).installed_version() == "1.0"
    assert agent.main(["--config", str(config), "recover"]) == 0   # nothing left to undo
    assert releases.current() == "1.0"
