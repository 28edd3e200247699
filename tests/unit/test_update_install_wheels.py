"""Building a release from an app bundle's wheels with real pip (Debian's pip wheel, as the
appliance's) into a real venv: exactly the bundle's wheels, each checked by pip against its
sha256 from the signed manifest (--require-hashes)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from portcullis.update.releases import InstallError, Releases, Wheel

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
