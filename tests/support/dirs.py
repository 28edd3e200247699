"""Directories for daemons the tests start (Postfix, clamd, sshd drop privileges).

pytest's own tmp_path lives under a 0700 directory those users cannot enter, so
daemons get directories under a world-traversable per-run base instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

_BASE = Path(tempfile.gettempdir()) / f"portcullis-test-{os.getpid()}"
_counter = itertools.count(1)


def daemon_dir(label: str) -> Path:
    """A fresh, traversable (0755) directory for one daemon instance."""
    _BASE.mkdir(mode=0o755, exist_ok=True)
    os.chmod(_BASE, 0o755)
    path = _BASE / f"{label}-{next(_counter)}"
    path.mkdir(mode=0o755)
    return path


def cleanup() -> None:
    shutil.rmtree(_BASE, ignore_errors=True)
