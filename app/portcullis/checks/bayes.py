"""The Bayes check: the learnt token classifier's opinion of the content, as a score."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from portcullis.bayes.classifier import Classification
from portcullis.bayes.engine import Bayes
from portcullis.checks.base import Check, Context, Stage
from portcullis.offload import offload
from portcullis.policy import Symbol

if TYPE_CHECKING:
    from portcullis.services import Services

# Probability -> score, interpolated linearly between these points.  Chi-square
# combining puts messages it cannot place near 0.5, so the "unsure" band already earns
# a Tag with the default threshold (5).  Only near-certainty (p >= 0.99999) reaches the
# default reject threshold (12) on its own, and only once the classifier has learnt
# ``WELL_TRAINED`` times ``min_trained`` messages of each class; before that Bayes alone
# can tag but never reject.
CURVE = ((0.0, -2.0), (0.05, -1.0), (0.2, 0.0), (0.3, 5.0), (0.5, 5.5), (0.9, 7.0),
         (0.99, 8.5), (0.999, 9.5), (0.9999, 10.5), (0.99999, 12.0), (1.0, 12.5))
_CURVE_POINTS = [p for p, _ in CURVE]
WELL_TRAINED = 10
UNDERTRAINED_CAP = 9.0
BANDS = ((0.0, "BAYES_00"), (0.05, "BAYES_05"), (0.2, "BAYES_20"), (0.5, "BAYES_50"),
         (0.9, "BAYES_90"), (0.99, "BAYES_99"), (0.999, "BAYES_999"))


def bayes_score(probability: float) -> float:
    """The score a spam probability earns (see ``CURVE``)."""
    index = bisect.bisect_right(_CURVE_POINTS, probability)
    if index >= len(CURVE):
        return CURVE[-1][1]
    (p0, s0), (p1, s1) = CURVE[index - 1], CURVE[index]
    return s0 + (s1 - s0) * (probability - p0) / (p1 - p0)


def bayes_symbol(result: Classification, min_trained: int) -> Symbol | None:
    """The symbol for a classification, naming the tokens that weighed most."""
    if not result.trained:
        return None
    score = bayes_score(result.probability)
    if min(result.nspam, result.nham) < WELL_TRAINED * min_trained:
        score = min(score, UNDERTRAINED_CAP)
    p = result.probability
    name = [n for floor, n in BANDS if p >= floor][-1]
    spammy = result.top(True, 4)
    hammy = result.top(False, 3)
    evidence = "; ".join(part for part in (
        f"spam: {', '.join(spammy)}" if spammy else "",
        f"ham: {', '.join(hammy)}" if hammy else "") if part)
    return Symbol(name, round(score, 2),
                  f"Bayes spam probability {p:.4f}" + (f" ({evidence})" if evidence else ""))


class BayesContent(Check):
    name = "bayes"
    stage = Stage.DATA
    description = "learnt token classifier (Robinson/Fisher chi-square)"
    offline = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.bayes = Bayes(services.store, services.config.bayes.min_trained, cached=True)

    @property
    def enabled(self) -> bool:
        return self.services.config.bayes.enabled

    async def check(self, ctx: Context) -> list[Symbol]:
        # A large message is tokenised in a thread, so it does not stall other sessions.
        result = await offload(len(ctx.content or b""), self.bayes.classify, ctx.message)
        symbol = bayes_symbol(result, self.bayes.min_trained)
        return [symbol] if symbol else []
