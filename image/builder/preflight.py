"""Checks before anything is installed or built, each failing with what to do about it."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from builder import paths
from builder.progress import BuildError

GIB = 1024 ** 3
# Measured: tools tree 1.7 GB, incremental caches 2.6 GB, packages 0.6 GB, the root tree and
# its copies during the disk build about 4 GB; outputs (raw, qcow2, vmdk) about 3.5 GB.
CACHE_NEED_COLD = 14 * GIB
CACHE_NEED_WARM = 7 * GIB
OUT_NEED = 5 * GIB


def os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value.strip().strip('"')
    return values


def check_host() -> None:
    """Root, a Debian 12 x86-64 host: what the pinned mkosi and the recipes are made for."""
    if os.geteuid() != 0:
        raise BuildError("must run as root (mkosi installs packages into the image tree and "
                         "Ansible changes it through chroot); try: sudo make image")
    release = os_release()
    if release.get("ID") != "debian" or release.get("VERSION_ID") != "12":
        name = release.get("PRETTY_NAME", "unknown")
        raise BuildError(f"builds on a Debian 12 host; this is {name}")
    if platform.machine() != "x86_64":
        raise BuildError(f"builds x86-64 images on an x86-64 host; this is {platform.machine()}")


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_disk_space() -> list[str]:
    """Free space where the cache and the outputs go; returns lines describing it."""
    cold = not paths.TOOLS_TREE.exists()
    needs = {paths.CACHE: CACHE_NEED_COLD if cold else CACHE_NEED_WARM, paths.OUT_DIR: OUT_NEED}
    by_device: dict[int, tuple[Path, int, list[Path]]] = {}
    for path, need in needs.items():
        existing = _existing_parent(path)
        device = existing.stat().st_dev
        where, total, members = by_device.get(device, (existing, 0, []))
        by_device[device] = (where, total + need, [*members, path])
    lines = []
    for where, need, members in by_device.values():
        free = shutil.disk_usage(where).free
        names = " and ".join(str(m) for m in members)
        if free < need:
            raise BuildError(
                f"not enough disk space for {names}: {free / GIB:.1f} GiB free on the file "
                f"system of {where}, {need / GIB:.0f} GiB needed"
                + (" (first build: the tools tree and caches are made)" if cold else "")
                + ". Free some space, or set PORTCULLIS_IMAGE_CACHE / PORTCULLIS_IMAGE_OUT "
                  "to a larger file system.")
        lines.append(f"{names}: {free / GIB:.1f} GiB free, {need / GIB:.0f} GiB needed")
    return lines


def check_tools(names: list[str]) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise BuildError(f"missing tools after installing the build packages: {', '.join(missing)}")
