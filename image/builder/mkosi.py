"""Running the pinned mkosi: repositories from the host, caches outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builder import aptsources, paths
from builder.progress import Progress

STAGE_ROOTFS = paths.IMAGE_DIR / "mkosi.rootfs"
STAGE_DISK = paths.IMAGE_DIR / "mkosi.disk"


def write_repositories(mirrors: aptsources.Mirrors) -> None:
    """Package manager trees for the image (bookworm) and the tools tree (trixie), and the
    image's own apt sources, all from the host's mirrors.  mkosi's built-in list (which
    names Debian's hosts and a debug archive that may be unreachable) is never used."""
    for release in (paths.IMAGE_RELEASE, paths.TOOLS_RELEASE):
        target = paths.GENERATED / f"pkgmngr-{release}/etc/apt/sources.list.d/mkosi.sources"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(mirrors.repositories(release))
    image_sources = paths.GENERATED / "image-apt/etc/apt/sources.list.d/debian.sources"
    image_sources.parent.mkdir(parents=True, exist_ok=True)
    image_sources.write_text("# Written by make image from the build host's apt sources.\n"
                             + mirrors.repositories(paths.IMAGE_RELEASE))


def proxy_options() -> list[str]:
    """The host's apt proxy, if it has one, for mkosi's downloads too."""
    result = subprocess.run(["apt-config", "shell", "PROXY", "Acquire::http::Proxy"],
                            capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("PROXY="):
            value = line.partition("=")[2].strip("'\"")
            if value and value.upper() != "DIRECT":
                return [f"--proxy-url={value}"]
    return []


def command(stage: Path, *options: str) -> list[str]:
    image_tree = paths.GENERATED / f"pkgmngr-{paths.IMAGE_RELEASE}"
    tools_tree = paths.GENERATED / f"pkgmngr-{paths.TOOLS_RELEASE}"
    return [sys.executable, "-m", "mkosi", "--directory", str(stage),
            f"--package-manager-tree={image_tree}",
            f"--tools-tree-package-manager-tree={tools_tree}",
            f"--cache-dir={paths.CACHE / 'cache'}",
            f"--package-cache-dir={paths.CACHE / 'packages'}",
            f"--output-dir={paths.MKOSI_OUTPUT}",
            f"--workspace-dir={paths.CACHE / 'workspace'}",
            *proxy_options(), *options, "--force", "build"]


def run(progress: Progress, stage: Path, *options: str) -> None:
    for name in ("cache", "packages", "workspace"):
        (paths.CACHE / name).mkdir(parents=True, exist_ok=True)
    paths.MKOSI_OUTPUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(paths.MKOSI_PYTHONPATH)}
    progress.run(command(stage, *options), env=env,
                 show=lambda line: line.startswith("‣") and "not reusing" not in line)
