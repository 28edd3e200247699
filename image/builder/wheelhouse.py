"""The wheels the mailfilter role installs into /opt/portcullis/releases/<version>."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from builder import lock, paths
from builder.progress import BuildError, Progress

# pip for the appliance: the mailfilter role runs it from its wheel to build the release and
# keeps the wheel for the update installer, so it is pinned like every dependency (the
# wheel's sha256; pip downloads with --require-hashes).  A new pip: its version and hash here.
PIP = lock.Pin("pip", "23.0.1",
               ("236bcb61156d76c4b8a05821b988c7b8c35bf0da28a4b614e8d6ab5212c25c6f",))
PIP_LOCK = "pip.lock"


def image_python(rootfs: Path) -> str:
    """The image's Python version as 3.X, from its /usr/bin/python3 link."""
    target = (rootfs / "usr/bin/python3").readlink().name
    if not target.startswith("python3."):
        raise BuildError(f"unexpected {rootfs}/usr/bin/python3 -> {target}")
    return target.removeprefix("python")


def build(progress: Progress, version: str, python: str) -> Path:
    """portcullis (this checkout, by path), its dependencies (requirements.lock), and pip
    (``PIP``, with its pin in the wheelhouse's pip.lock).

    Built with the build venv's Python, which is the image's (both Debian 12), so the
    locked files are the ones this platform needs.  The dependencies are exactly the lock's
    (pip --require-hashes: a file whose sha256 the lock does not list is refused); a locked
    sdist (a project with no wheel) is built into a wheel here.  The project is always named
    by its path (asking an index for "portcullis" would find a different project of that
    name) and built without its dependencies, which come only from the lock.  The
    wheelhouse's own requirements.lock gives the target's pip the hash of every dependency
    wheel (see the mailfilter role).
    """
    venv_python = subprocess.run([paths.VENV / "bin/python", "-c",
                                  "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    if venv_python != python or platform.machine() != "x86_64":
        raise BuildError(f"the build host's Python is {venv_python}, the image's {python}: "
                         "wheels would not match (build on Debian 12, x86-64)")
    lock.check()
    target = paths.WHEELHOUSE / version
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pip = [str(paths.VENV / "bin/pip"), "--disable-pip-version-check"]
    # --no-build-isolation: built with the build venv's setuptools and wheel, which
    # build-tools.lock pins; an isolated build would fetch them from the index unchecked.
    progress.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", target,
                  paths.REPO])
    if not list(target.glob(f"portcullis-{version}-*.whl")):
        raise BuildError(f"pip wheel made no portcullis-{version} wheel in {target}")
    # No cache: a wheel pip built earlier from an sdist (dkimpy has no wheel) would be taken
    # without its sdist's hash being checked (pip before 23.1 records none).  Such an sdist
    # is built with the build venv's pinned setuptools and wheel (--no-build-isolation;
    # --use-pep517 for one without pyproject.toml).
    progress.run([*pip, "wheel", "--require-hashes", "--no-cache-dir", "--use-pep517",
                  "--no-build-isolation", "--wheel-dir", target, "-r", lock.LOCK])
    # The mailfilter role checks the pip wheel it keeps on the appliance against this too.
    lock.write(target / PIP_LOCK, [PIP],
               header="The pip wheel of this wheelhouse, for the mailfilter role: it runs pip "
                      "from it\nand keeps it for the update installer (never installed).")
    progress.run([*pip, "download", "--require-hashes", "--no-deps", "--only-binary=:all:",
                  "--no-cache-dir", "--dest", target, "-r", target / PIP_LOCK])
    dependencies = [w for w in sorted(target.glob("*.whl"))
                    if lock.distribution_of(w.name)[0] not in ("portcullis", "pip")]
    lock.write(target / "requirements.lock",
               [lock.Pin(*lock.distribution_of(w.name), (lock.sha256(w),)) for w in dependencies],
               header=f"The dependency wheels of this wheelhouse (from {lock.LOCK.name}), for "
                      "pip --require-hashes\non the target (the mailfilter role).")
    pips = list(target.glob(f"pip-{PIP.version}-*.whl"))
    if len(pips) != 1 or lock.sha256(pips[0]) not in PIP.hashes:
        raise BuildError(f"pip download gave {[p.name for p in pips]}, not pip {PIP.version} "
                         f"with sha256 {PIP.hashes[0]}")
    wheels = sorted(p.name for p in target.glob("*.whl"))
    progress.info(f"{len(wheels)} wheels for Python {python}: " + ", ".join(wheels))
    return target
