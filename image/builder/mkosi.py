"""Running the pinned mkosi: repositories from the host, caches outside the repository."""

from __future__ import annotations

import hashlib
import os
import shutil
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
    # Named like mkosi's own (<release>.sources), which mkosi then leaves alone; it goes in
    # as a skeleton tree, so it is there before apt is installed.
    image_sources = (paths.GENERATED / "image-apt/etc/apt/sources.list.d"
                     / f"{paths.IMAGE_RELEASE}.sources")
    image_sources.parent.mkdir(parents=True, exist_ok=True)
    image_sources.write_text("# Written by make image from the build host's apt sources.\n"
                             + mirrors.repositories(paths.IMAGE_RELEASE))


def tree_digest(*trees: Path) -> str:
    """A digest of every path, mode and content in the given trees."""
    digest = hashlib.sha256()
    for tree in trees:
        for path in sorted(tree.rglob("*")):
            digest.update(str(path.relative_to(tree)).encode() + b"\0")
            digest.update(oct(path.lstat().st_mode).encode())
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
            elif path.is_symlink():
                digest.update(str(path.readlink()).encode())
    return digest.hexdigest()


def invalidate_stale_cache(*skeletons: Path) -> bool:
    """Drop stage 1's incremental cache when a skeleton tree changed.

    mkosi's cache key covers the package list but not the skeleton trees, which hold files
    that must be in place before the packages are installed (apt sources, the Postfix
    placeholder).  Only this image's cache goes; the tools tree and initrd caches stay.
    """
    stamp = paths.CACHE / "cache" / "portcullis-rootfs-skeleton.sha256"
    current = tree_digest(*skeletons)
    if stamp.exists() and stamp.read_text() == current:
        return False
    key = f"debian~{paths.IMAGE_RELEASE}~x86-64"
    for suffix in (".cache", ".build.cache", ".manifest"):
        path = paths.CACHE / "cache" / (key + suffix)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)
    return True


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
