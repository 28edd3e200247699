"""How hard a run pushes: ``make test`` runs the short, repeatable form of the suite;
``make soak`` sets ``RELIABILITY_SCALE`` (10 by default), which multiplies the counts
(spike size, messages per scenario, hypothesis examples, atheris runs) and lets
hypothesis draw fresh random examples instead of the same ones every run."""

from __future__ import annotations

import os

SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))


def scaled(count: int) -> int:
    return count * SCALE
