"""The wheels the mailfilter role installs into /opt/portcullis/releases/<version>."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from builder import paths
from builder.progress import BuildError, Progress


def image_python(rootfs: Path) -> str:
    """The image's Python version as 3.X, from its /usr/bin/python3 link."""
    target = (rootfs / "usr/bin/python3").readlink().name
    if not target.startswith("python3."):
        raise BuildError(f"unexpected {rootfs}/usr/bin/python3 -> {target}")
    return target.removeprefix("python")


def build(progress: Progress, version: str, python: str, extras: str = "firewall") -> Path:
    """portcullis (this checkout, by path), its dependencies, and pip itself.

    Built with the build venv's Python, which is the image's (both Debian 12): compiled
    dependencies come as the matching manylinux wheels, pure-Python ones without a wheel on
    the index are built here.  The project is always named by its path: asking an index
    for "portcullis" would find a different project of that name.
    """
    venv_python = subprocess.run([paths.VENV / "bin/python", "-c",
                                  "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    if venv_python != python or platform.machine() != "x86_64":
        raise BuildError(f"the build host's Python is {venv_python}, the image's {python}: "
                         "wheels would not match (build on Debian 12, x86-64)")
    target = paths.WHEELHOUSE / version
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pip = [str(paths.VENV / "bin/pip"), "--disable-pip-version-check"]
    progress.run([*pip, "wheel", "--wheel-dir", target, f"{paths.REPO}[{extras}]"])
    if not list(target.glob(f"portcullis-{version}-*.whl")):
        raise BuildError(f"pip wheel made no portcullis-{version} wheel in {target}")
    pip_version = subprocess.run([*pip, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    progress.run([*pip, "download", "--dest", target, "--only-binary=:all:", "--no-deps",
                  f"pip=={pip_version}"])
    wheels = sorted(p.name for p in target.glob("*.whl"))
    progress.info(f"{len(wheels)} wheels for Python {python}: " + ", ".join(wheels))
    return target
