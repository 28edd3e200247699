"""Application releases: ``<releases>/<version>/`` venvs and the ``current`` symlink.

A new release is built beside the running one and only then made current by replacing the
symlink in one ``rename``: at every instant ``current`` names a complete release, so a
power cut or a dropped connection mid-update leaves the old version running.

Building needs no network: the running release's venv is copied (its dependencies come
along), the bundle's wheels are installed into the copy with ``pip --no-index
--require-hashes``, each pinned to its version and its sha256 from the signed manifest (a
new dependency, or a new version of one, travels in the bundle as a wheel of its own, and
is what the release gets), and the copy's scripts are pointed at their new home.

pip is not installed in any release (the mailfilter role builds the first one without it):
it runs from a pip wheel, ``python <wheel>/pip``: the appliance's own (agent.toml
``pip_wheel``), or the one an app bundle carries if that is newer (``choose_pip``).
"""

from __future__ import annotations

import email.parser
import errno
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from portcullis.update.state import fsync_dir
from portcullis.update.versions import VersionError, parse_version

PIP_TIMEOUT = 600
_SCRIPT_MAX = 1024 * 1024
_PIP_METADATA = re.compile(r"pip-[^/]+\.dist-info/METADATA")


class InstallError(Exception):
    """A verified bundle that could not be installed; nothing was switched."""


@dataclass(frozen=True)
class Wheel:
    """A wheel to install: its file, project, version and sha256 (the signed manifest's)."""

    path: Path
    name: str
    version: str
    sha256: str

    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


class Releases:
    def __init__(self, releases_dir: Path, current_link: Path) -> None:
        self.releases_dir = releases_dir
        self.current_link = current_link

    def path(self, version: str) -> Path:
        parse_version(version)  # a version is also a directory name: never "..", never "/"
        return self.releases_dir / version

    def current(self) -> str | None:
        """The version ``current`` points at, or None if there is none (yet)."""
        try:
            target = Path(os.readlink(self.current_link))
        except (FileNotFoundError, OSError):
            return None
        if not target.is_absolute():
            target = self.current_link.parent / target
        if target.parent.resolve() != self.releases_dir.resolve():
            return None
        try:
            parse_version(target.name)
        except VersionError:
            return None
        return target.name

    def versions(self) -> list[str]:
        found = []
        if self.releases_dir.is_dir():
            for entry in self.releases_dir.iterdir():
                try:
                    parse_version(entry.name)
                except VersionError:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    found.append(entry.name)
        return sorted(found, key=parse_version)

    def prepare(self, version: str, wheels: Sequence[Wheel], pip_wheel: Path) -> Path:
        """Build release ``version`` from the current one plus ``wheels`` (portcullis and
        the dependency wheels the bundle carries), installed by the pip in ``pip_wheel``."""
        base_version = self.current()
        if base_version is None:
            raise InstallError(f"{self.current_link} names no release to build on")
        if base_version == version:
            raise InstallError(f"release {version} is already current")
        target = self.path(version)
        if target.exists():
            # Left over from an interrupted or rolled-back attempt: never trusted, rebuilt.
            shutil.rmtree(target)
        try:
            _copy_base(self.path(base_version), target, version)
            _pip_install(target, pip_wheel, wheels)
            found = _package_version(target)
            if parse_version(found) != parse_version(version):
                raise InstallError(f"the bundle's wheel holds portcullis {found}, "
                                   f"its manifest says {version}")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target

    def switch(self, version: str) -> None:
        """Make ``version`` current with one atomic rename of a fresh symlink."""
        self.point(self.current_link, version)

    def point(self, link: Path, version: str) -> None:
        """Make ``link`` name release ``version`` (one atomic rename of a fresh symlink)."""
        target = self.path(version)
        if not (target / "bin").is_dir():
            raise InstallError(f"release {version} is not complete")
        link_text = os.path.relpath(target, link.parent)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(link_text, tmp)
        os.replace(tmp, link)
        fsync_dir(link.parent)

    def remove(self, version: str) -> None:
        if version == self.current():
            raise InstallError(f"release {version} is current; not removed")
        shutil.rmtree(self.path(version), ignore_errors=True)

    def prune(self, keep: int, protect: Iterable[str]) -> list[str]:
        """Remove all but the ``keep`` newest releases (never current or ``protect``)."""
        protected = {v for v in protect if v} | {self.current() or ""}
        removed = []
        versions = self.versions()
        for version in versions[:-keep] if keep > 0 else versions:
            if version not in protected:
                shutil.rmtree(self.path(version), ignore_errors=True)
                removed.append(version)
        return removed


class _CopyStopped(Exception):
    """A file that could not be copied: copytree would note it and copy on (into a full
    disk), and keep only its text (the errno that tells a full disk gone)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _copy_file(source: str, target: str, *, follow_symlinks: bool = True) -> str:
    try:
        return shutil.copy2(source, target, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise _CopyStopped(exc) from exc


def copy_release(source: Path, target: Path) -> None:
    """Copy a release venv to ``target`` and point its scripts at the new location;
    OSError (with its errno when a file could not be copied) at the first failure."""
    try:
        shutil.copytree(source, target, symlinks=True, copy_function=_copy_file)
    except _CopyStopped as stopped:
        raise stopped.error from None
    relocate(target, source)


def _copy_base(source: Path, target: Path, version: str) -> None:
    """``copy_release`` for building ``version``; InstallError when it fails (the caller
    removes the partial copy)."""
    try:
        copy_release(source, target)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InstallError(f"appliance disk full while copying the release {source.name}"
                               f" to build {version}: {exc}") from None
        raise InstallError(f"copying the release {source.name} to build {version} failed: "
                           f"{exc}") from None


def relocate(venv: Path, old_prefix: Path) -> None:
    """Rewrite the absolute paths a venv keeps to itself (script shebangs, ``activate``,
    ``pyvenv.cfg``) from ``old_prefix`` to ``venv``.  Files are replaced, not edited in
    place, so a copy never alters the release it came from."""
    old, new = str(old_prefix).encode(), str(venv).encode()
    candidates = [venv / "pyvenv.cfg"]
    bin_dir = venv / "bin"
    if bin_dir.is_dir():
        candidates += [p for p in bin_dir.iterdir() if p.is_file() and not p.is_symlink()]
    for path in candidates:
        if not path.is_file() or path.stat().st_size > _SCRIPT_MAX:
            continue
        data = path.read_bytes()
        if old not in data or b"\0" in data[:4096]:
            continue
        mode = path.stat().st_mode & 0o7777
        tmp = path.with_name(f".{path.name}.relocate")
        tmp.write_bytes(data.replace(old, new))
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def pip_version(wheel: Path) -> str | None:
    """The version of the pip in a pip wheel, from its METADATA (the appliance's copy is
    named pip.whl, and a file name is only a name); None if it is no readable pip wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            found = [i for i in archive.infolist() if _PIP_METADATA.fullmatch(i.filename)]
            if len(found) != 1 or found[0].file_size > _SCRIPT_MAX:
                return None
            text = archive.read(found[0]).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile):
        return None
    version = email.parser.HeaderParser().parsestr(text).get("Version", "").strip()
    try:
        parse_version(version)
    except VersionError:
        return None
    return version


def choose_pip(carried: Path | None, own: Path) -> tuple[Path, str]:
    """The pip wheel to build a release with, and a note for the record ("" if none).

    A bundle's pip is taken only when it is newer than the appliance's own: a signed but
    old bundle must not take the installer back to an older pip (with fixes missing).
    """
    if carried is None:
        return own, ""
    carried_version = pip_version(carried)
    if carried_version is None:
        raise InstallError(f"the bundle's pip wheel {carried.name} holds no pip version")
    own_version = pip_version(own) if own.is_file() else None
    if own_version is None or parse_version(carried_version) > parse_version(own_version):
        return carried, f"built with the bundle's pip {carried_version}"
    return own, (f"built with the appliance's pip {own_version}: the bundle's pip "
                 f"{carried_version} is not newer")


def _clean_env(venv: Path) -> dict[str, str]:
    # No PIP_* from anywhere, no pip configuration files: only the bundle's wheels count.
    return {"PATH": f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "LC_ALL": "C.UTF-8",
            "HOME": str(venv)}


def _pip_install(venv: Path, pip_wheel: Path, wheels: Sequence[Wheel]) -> None:
    if not pip_wheel.is_file():
        raise InstallError(f"no pip to install with: {pip_wheel} is missing")
    wheel_dirs = {w.path.parent for w in wheels}
    if len(wheel_dirs) != 1:
        raise InstallError("the wheels to install are not in one directory")
    wheel_dir = wheel_dirs.pop()
    # Each wheel pinned to its version and its signed sha256: pip installs exactly these
    # files (a carried dependency too when the installed version would satisfy the
    # release), and any other dependency the release needs must already be there.
    # (a dot file: never a payload name, and pip's --find-links passes it by)
    fd, requirements = tempfile.mkstemp(prefix=".requirements-", suffix=".txt",
                                        dir=wheel_dir)
    with os.fdopen(fd, "w") as file:
        file.write("".join(f"{w.requirement()}\n" for w in wheels))
    # The release's own Python runs pip straight from its wheel (a zip import), so pip is
    # never installed in the release; -I: no PYTHON* variables, no user site.
    command = [str(venv / "bin" / "python"), "-I", f"{pip_wheel}/pip", "install", "--no-index",
               "--find-links", str(wheel_dir), "--no-cache-dir", "--require-hashes",
               "--root-user-action=ignore", "--requirement", requirements]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(venv),
                                cwd=venv, timeout=PIP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"pip could not run in the new release: {exc}") from None
    finally:
        os.unlink(requirements)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise InstallError("installing the wheels failed: " + " | ".join(tail))


def _package_version(venv: Path) -> str:
    command = [str(venv / "bin" / "python"), "-I", "-c",
               "import portcullis, sys; sys.stdout.write(portcullis.__version__)"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(venv),
                                cwd="/", timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"the new release does not start: {exc}") from None
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise InstallError(f"the new release does not import: {tail[0]}")
    return result.stdout.strip()
