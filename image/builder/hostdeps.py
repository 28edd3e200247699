"""The build host's tools: Debian packages, the pinned mkosi, and Ansible in a venv (every
Python file hash-pinned in image/build-tools.lock)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from builder import aptsources, lock, paths
from builder.progress import BuildError, Progress

# What the build runs on the host itself (everything else comes from the mkosi tools tree).
BUILD_PACKAGES = ["bubblewrap", "debian-archive-keyring", "python3-venv", "qemu-utils",
                  "ca-certificates", "apt", "dpkg", "mount", "util-linux"]
# What `make vm` and the image test need on top.
VM_PACKAGES = ["qemu-system-x86", "ovmf", "qemu-utils", "mtools"]


def ensure_packages(progress: Progress, packages: list[str]) -> None:
    progress.run([paths.REPO / "scripts/ensure-packages", *packages],
                 show=lambda line: line.startswith("ensure-packages"))


def _private_apt(mirrors: aptsources.Mirrors, codename: str) -> list[str]:
    """apt options for a private state with the host mirror's backports: the host's own apt
    configuration and package lists stay untouched."""
    etc = paths.APT_DIR / "etc"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (paths.APT_DIR / "lists/partial").mkdir(parents=True, exist_ok=True)
    (paths.APT_DIR / "archives/partial").mkdir(parents=True, exist_ok=True)
    (etc / "sources.list").write_text("")
    (etc / "sources.list.d/backports.sources").write_text(
        f"Types: deb\nURIs: {mirrors.archive}\nSuites: {codename}-backports\n"
        f"Components: main\nSigned-By: {aptsources.DEFAULT_KEYRING}\n")
    return ["-o", f"Dir::Etc::SourceList={etc / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={etc / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={paths.APT_DIR / 'lists'}",
            "-o", f"Dir::Cache={paths.APT_DIR}",
            "-o", f"Dir::Cache::Archives={paths.APT_DIR / 'archives'}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=true"]


def ensure_mkosi(progress: Progress, mirrors: aptsources.Mirrors, codename: str) -> None:
    """mkosi at the pinned version, unpacked from its backports .deb (not installed)."""
    if (paths.MKOSI_PYTHONPATH / "mkosi/__init__.py").exists():
        progress.info(f"mkosi {paths.MKOSI_VERSION}: already unpacked in {paths.MKOSI_DIR}")
        return
    options = _private_apt(mirrors, codename)
    progress.run(["apt-get", "-q", *options, "update"])
    with tempfile.TemporaryDirectory(dir=paths.CACHE) as tmp:
        try:
            progress.run(["apt-get", "-q", *options, "download",
                          f"mkosi={paths.MKOSI_VERSION}"], cwd=tmp)
        except BuildError as exc:
            raise BuildError(f"cannot download mkosi {paths.MKOSI_VERSION} from "
                             f"{mirrors.archive} {codename}-backports: {exc}") from None
        (deb,) = Path(tmp).glob("mkosi_*.deb")
        unpacked = Path(tmp, "unpacked")
        progress.run(["dpkg-deb", "-x", deb, unpacked])
        unpacked.rename(paths.MKOSI_DIR)
    progress.info(f"mkosi {paths.MKOSI_VERSION} unpacked in {paths.MKOSI_DIR}")


def ensure_ansible(progress: Progress) -> None:
    """The build venv with the build tools of image/build-tools.lock: Ansible
    (community.general for the chroot connection), setuptools and wheel, every file
    checked against its pinned sha256 (pip --require-hashes)."""
    pinned = lock.BUILD_TOOLS_LOCK
    lock.check_build_tools(pinned)
    wanted = lock.sha256(pinned)
    complete = paths.VENV / ".complete"   # holds the sha256 of the lock it was built from
    if complete.exists() and complete.read_text().strip() == wanted:
        progress.info(f"Ansible {paths.ANSIBLE_VERSION}: already in {paths.VENV}")
        return
    shutil.rmtree(paths.VENV, ignore_errors=True)   # interrupted, or from another lock
    progress.run([sys.executable, "-m", "venv", paths.VENV])
    # Wheels only (the lock holds no sdist), so nothing is built with unpinned tools.
    progress.run([paths.VENV / "bin/pip", "install", "-q", "--disable-pip-version-check",
                  "--require-hashes", "--only-binary=:all:", "-r", pinned])
    version = subprocess.run([paths.VENV / "bin/ansible", "--version"], capture_output=True,
                             text=True, check=True).stdout.splitlines()[0]
    complete.write_text(wanted + "\n")
    progress.info(f"Ansible {paths.ANSIBLE_VERSION} ({version}) in {paths.VENV}, "
                  f"from {pinned.name}")
