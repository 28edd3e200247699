"""requirements.lock: the appliance's Python dependencies, each at one version with hashes.

The wheelhouse (`make image`) fetches exactly these files with ``pip --require-hashes``, so
two builds of one release ship the same code and an index cannot substitute a package.
`make lock` writes the file: every runtime dependency of portcullis and its appliance extras
(transitively, as pip resolves them here) at the version the dev venv has, so the tests test
what ships, with the sha256 of the file pip picks from its configured index for this
platform (Debian 12, CPython 3.11, x86-64: a wheel, or the sdist if there is none).
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from builder import paths
from builder.progress import BuildError
from portcullis_vendor import pins as _pins
from portcullis_vendor.pins import Pin, distribution_of, normalize, sha256

__all__ = ["Pin", "distribution_of", "normalize", "sha256"]

LOCK = paths.REPO / "requirements.lock"
# What `make image` installs into its build venv, pinned the same way (see build_tools()).
BUILD_TOOLS_LOCK = paths.IMAGE_DIR / "build-tools.lock"
# The extras the appliance installs (the mailfilter role's mailfilter_release_extras).
EXTRAS = ("firewall",)
PLATFORM = ("3.11", "x86_64")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def runtime_requirements(pyproject: Path = paths.REPO / "pyproject.toml",
                         extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """The requirement strings of portcullis and the given extras, as pyproject.toml has them."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return requirements


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    if not match:
        raise BuildError(f"cannot read a project name from requirement {requirement!r}")
    return normalize(match.group())


def read(path: Path = LOCK) -> dict[str, Pin]:
    """The pins of a lock file (pip's requirements format, continued lines joined)."""
    try:
        return _pins.read(path)
    except _pins.PinsError as exc:
        raise BuildError(str(exc)) from None


def unpinned(requirements: list[str], pins: dict[str, Pin]) -> list[str]:
    """The requirements with no pin carrying a hash in ``pins`` (by project name)."""
    return [r for r in requirements
            if not pins.get(requirement_name(r), Pin("", "", ())).hashes]


def check(path: Path = LOCK) -> dict[str, Pin]:
    """The lock's pins, refused if a runtime dependency of pyproject.toml is not among them."""
    if not path.is_file():
        raise BuildError(f"{path} is missing: run `make lock`")
    pins = read(path)
    missing = unpinned(runtime_requirements(), pins)
    if missing:
        raise BuildError(f"{path.name} does not pin {', '.join(missing)} with a hash "
                         "(pyproject.toml changed?): run `make lock`")
    return pins


def _check_platform() -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if (python, platform.machine()) != PLATFORM or not Path("/etc/debian_version").exists():
        raise BuildError(f"make lock runs where the appliance's wheels fit (Debian 12, Python "
                         f"{PLATFORM[0]}, {PLATFORM[1]}), not Python {python} on "
                         f"{platform.machine()}")


def generate(out: Path = LOCK) -> list[Pin]:
    """`make lock`: resolve with pip at the running (dev venv) Python's versions, hash, write."""
    _check_platform()
    installed = {normalize(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions()}
    installed.pop("portcullis", None)
    with tempfile.TemporaryDirectory(prefix="portcullis-lock-") as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
        files = Path(scratch) / "files"
        # --prefer-binary: the sdist only where a version has no wheel for this platform.
        subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "download",
                        "--quiet", "--prefer-binary", "--dest", str(files),
                        "--constraint", str(constraints), *runtime_requirements()], check=True)
        pins = []
        for file in sorted(files.iterdir()):
            name, version = distribution_of(file.name)
            if installed.get(name) != version:
                raise BuildError(f"pip chose {file.name}, the dev venv has "
                                 f"{installed.get(name, 'no ' + name)}: run `make venv` first")
            pins.append(Pin(name, version, (sha256(file),)))
    pins.sort(key=lambda p: p.name)
    missing = unpinned(runtime_requirements(), {p.name: p for p in pins})
    if missing:
        raise BuildError(f"pip resolved no file for {', '.join(missing)}")
    write(out, pins)
    return pins


HEADER = ("The appliance's Python dependencies: portcullis[" + ",".join(EXTRAS) + "] from "
          "pyproject.toml, resolved\ntransitively, at the dev venv's versions, with the sha256 "
          "of the file pip takes\nfor Debian 12 / CPython 3.11 / x86-64.  Written by `make "
          "lock`; do not edit.\n`make image` fetches exactly these (pip --require-hashes).")


def write(out: Path, pins: list[Pin], header: str = HEADER) -> None:
    _pins.write(out, pins, header)


def build_tools(pyproject: Path = paths.REPO / "pyproject.toml") -> list[str]:
    """What the build venv runs: Ansible (the roles) and the project's build requirements
    (pyproject.toml's build-system), which build the portcullis wheel and the locked
    sdists there without build isolation: an isolated build would fetch them from the
    index with no hash checked."""
    build_system = tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]
    return [f"ansible=={paths.ANSIBLE_VERSION}", *build_system["requires"]]


BUILD_TOOLS_HEADER = (
    "The build tools `make image` installs into its build venv (Ansible, and the build\n"
    "requirements of pyproject.toml), resolved transitively, wheels only, with the sha256 of\n"
    "the file pip takes for Debian 12 / CPython 3.11 / x86-64.  Written by `make lock`; do\n"
    "not edit.  `make image` installs exactly these (pip --require-hashes).")


def generate_build_tools(out: Path = BUILD_TOOLS_LOCK) -> list[Pin]:
    """`make lock`: resolve the build tools with pip from its configured index, hash, write."""
    _check_platform()
    with tempfile.TemporaryDirectory(prefix="portcullis-lock-") as scratch:
        files = Path(scratch) / "files"
        # Wheels only: installing an sdist would build it in an isolated environment whose
        # setuptools comes from the index unpinned.
        subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "download",
                        "--quiet", "--only-binary=:all:", "--dest", str(files),
                        *build_tools()], check=True)
        pins = sorted((Pin(*distribution_of(f.name), (sha256(f),))
                       for f in files.iterdir()), key=lambda p: p.name)
    missing = unpinned(build_tools(), {p.name: p for p in pins})
    if missing:
        raise BuildError(f"pip resolved no file for {', '.join(missing)}")
    write(out, pins, BUILD_TOOLS_HEADER)
    return pins


def check_build_tools(path: Path = BUILD_TOOLS_LOCK) -> dict[str, Pin]:
    """The build tools' pins, refused if one of build_tools() is not among them."""
    if not path.is_file():
        raise BuildError(f"{path} is missing: run `make lock`")
    pins = read(path)
    missing = unpinned(build_tools(), pins)
    ansible = pins.get("ansible")
    if not missing and ansible is not None and ansible.version != paths.ANSIBLE_VERSION:
        missing = [f"ansible=={paths.ANSIBLE_VERSION} (it pins {ansible.version})"]
    if missing:
        raise BuildError(f"{path.name} does not pin {', '.join(missing)} with a hash: run "
                         "`make lock`")
    return pins
