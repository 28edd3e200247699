"""A bounded atheris run per target in ``make test``; ``make soak`` runs ten times as many."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability import seeds
from tests.reliability.fuzz_targets import TARGETS
from tests.support.soak import scaled

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"smtp": 1500, "mime": 4000, "hygiene": 20000, "archive": 2000, "attachments": 1000}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzzer_finds_no_crash(target, tmp_path):
    corpus = seeds.write(target, tmp_path / "corpus")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "tests.reliability.fuzz", target,
         f"-runs={scaled(RUNS[target])}", f"-artifact_prefix={artifacts}/",
         "-max_len=65536", "-rss_limit_mb=1024", "-timeout=60", "-seed=1", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
        # A fork, not a vfork (which setting the group rules out): a vforked child keeps
        # this process's peak RSS across exec, and libFuzzer's -rss_limit_mb would count
        # what a test run earlier in this process used against the fuzzer.
        group=os.getgid())
    crashes = sorted(p.name for p in artifacts.iterdir())
    # The Python traceback comes before libFuzzer's summary: show both.
    report = run.stderr[run.stderr.find("=== Uncaught"):][:6000] or run.stderr[-4000:]
    assert run.returncode == 0 and not crashes, f"{crashes}\n{report}"
    assert "Done" in run.stderr, run.stderr[-2000:]
