"""The wheels the mailfilter role installs into /opt/portcullis/releases/<version>."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from builder import paths
from builder.progress import BuildError, Progress

# glibc of Debian 12 is 2.36: any manylinux wheel up to that runs in the image.
PLATFORMS = ["manylinux_2_36_x86_64", "manylinux_2_34_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64",
             "manylinux1_x86_64"]


def image_python(rootfs: Path) -> str:
    """The image's Python version as 3.X, from its /usr/bin/python3 link."""
    target = (rootfs / "usr/bin/python3").readlink().name
    if not target.startswith("python3."):
        raise BuildError(f"unexpected {rootfs}/usr/bin/python3 -> {target}")
    return target.removeprefix("python")


def requirements(wheel: Path, extras: set[str]) -> list[str]:
    """Requires-Dist of a wheel, with the requirements of the chosen extras."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode("utf-8")
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist:").strip().partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra is None or extra.group(1) in extras:
            found.append(requirement.strip())
    return found


def build(progress: Progress, version: str, python: str, extras: str = "firewall") -> Path:
    """portcullis (from this checkout), its dependencies for the image's Python, and pip."""
    target = paths.WHEELHOUSE / version
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pip = [str(paths.VENV / "bin/pip"), "--disable-pip-version-check"]
    progress.run([*pip, "wheel", "--no-deps", "--wheel-dir", target, paths.REPO])
    (own,) = target.glob(f"portcullis-{version}-*.whl")
    # The dependencies are named from our own wheel's metadata: asking an index for
    # "portcullis" would find a different project of that name.
    abi = "cp" + python.replace(".", "")
    platform_options = [option for p in PLATFORMS for option in ("--platform", p)]
    progress.run([*pip, "download", "--dest", target, "--only-binary=:all:",
                  "--python-version", python, "--implementation", "cp",
                  "--abi", abi, "--abi", "abi3", "--abi", "none", *platform_options,
                  *requirements(own, {extras})])
    pip_version = subprocess.run([*pip, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    progress.run([*pip, "download", "--dest", target, "--only-binary=:all:", "--no-deps",
                  f"pip=={pip_version}"])
    wheels = sorted(p.name for p in target.glob("*.whl"))
    progress.info(f"{len(wheels)} wheels for Python {python}: " + ", ".join(wheels))
    return target
