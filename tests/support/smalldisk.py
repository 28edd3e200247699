"""A Python script run with a small file system over one directory: a full disk, for real.

The tmpfs is mounted in a mount namespace of the script's own (root only), so nothing
outside the script sees it, and it goes with the script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_on_small_disk(mountpoint: Path, size: str, script: str, *args: str) -> Any:
    """Run the Python ``script`` (with ``args``) while a tmpfs of ``size`` (e.g. "64k")
    covers ``mountpoint``; what it printed, read as JSON."""
    ran = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs -o size="$0" tmpfs "$1" && shift && exec "$@"', size,
         str(mountpoint), sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)
