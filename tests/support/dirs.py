"""Directories for daemons the tests start (Postfix, clamd, sshd drop privileges).

pytest's own tmp_path lives under a 0700 directory those users cannot enter, so
daemons get directories under a world-traversable per-run base instead.  Some daemons
also insist that no directory above their files is writable by others (sshd's
StrictModes): ``secure_dir`` gives those a base whose every parent is root's and 0755.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

_BASE = Path(tempfile.gettempdir()) / f"portcullis-test-{os.getpid()}"
_SECURE_PARENT = Path("/run")
_SECURE_BASE = _SECURE_PARENT / f"portcullis-test-{os.getpid()}"
_counter = itertools.count(1)


def daemon_dir(label: str) -> Path:
    """A fresh, traversable (0755) directory for one daemon instance."""
    _BASE.mkdir(mode=0o755, exist_ok=True)
    os.chmod(_BASE, 0o755)
    path = _BASE / f"{label}-{next(_counter)}"
    path.mkdir(mode=0o755)
    return path


def secure_dir(label: str) -> Path:
    """A fresh 0755 directory whose every parent is owned by root and not writable by
    others (stale ones of test runs that no longer exist are removed first)."""
    for stale in _SECURE_PARENT.glob("portcullis-test-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    _SECURE_BASE.mkdir(mode=0o755, exist_ok=True)
    os.chmod(_SECURE_BASE, 0o755)
    path = _SECURE_BASE / f"{label}-{next(_counter)}"
    path.mkdir(mode=0o755)
    return path


def cleanup() -> None:
    shutil.rmtree(_BASE, ignore_errors=True)
    shutil.rmtree(_SECURE_BASE, ignore_errors=True)
