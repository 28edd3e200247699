"""Where things are: the repository, the outputs, and the cache outside the repository."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "image"
OUT_DIR = Path(os.environ.get("PORTCULLIS_IMAGE_OUT", IMAGE_DIR / "out"))
# Kept outside the repository so that a fresh clone (CI) reuses the tools tree, the package
# cache and the incremental image caches of earlier builds.
CACHE = Path(os.environ.get("PORTCULLIS_IMAGE_CACHE", "/var/cache/portcullis-image"))

# Pinned build tools.  mkosi comes from bookworm-backports as a .deb unpacked next to the
# cache (the host's own systemd stays untouched); Ansible from PyPI into the build venv.
MKOSI_VERSION = "24.3-1~bpo12+1"
ANSIBLE_VERSION = "11.13.0"
IMAGE_RELEASE = "bookworm"
TOOLS_RELEASE = "trixie"   # systemd-repart --offline and ukify need systemd >= 254

MKOSI_DIR = CACHE / f"mkosi-{MKOSI_VERSION}"
MKOSI_PYTHONPATH = MKOSI_DIR / "usr/lib/python3/dist-packages"
VENV = CACHE / f"venv-ansible-{ANSIBLE_VERSION}"
APT_DIR = CACHE / "apt"
GENERATED = CACHE / "generated"
MKOSI_OUTPUT = CACHE / "output"
TOOLS_TREE = MKOSI_OUTPUT / "debian-tools"
ROOTFS = MKOSI_OUTPUT / "portcullis-rootfs"
WHEELHOUSE = CACHE / "wheelhouse"


def portcullis_version() -> str:
    """The version of the portcullis package in this checkout (app/portcullis/__init__.py)."""
    text = (REPO / "app/portcullis/__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise RuntimeError("app/portcullis/__init__.py has no __version__")
    return match.group(1)


def image_name(version: str) -> str:
    return f"portcullis-{version}"
