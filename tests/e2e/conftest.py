"""What the appliance tests share: one warm `make image` per test session."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from tests.support import appliance


@pytest.fixture(scope="session")
def build(root_required) -> dict:
    """`make image` (warm when the caches under /var/cache/portcullis-image exist)."""
    result = subprocess.run(["/usr/bin/python3", "-m", "builder", "build"], cwd=appliance.REPO,
                            env={**os.environ, "PYTHONPATH": str(appliance.REPO / "image")},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"make image failed:\n{result.stdout[-4000:]}\n{result.stderr}"
    version = appliance.paths.portcullis_version()
    summary = json.loads((appliance.paths.OUT_DIR / f"portcullis-{version}.build.json").read_text())
    appliance.metrics_update(build=summary)
    return summary
