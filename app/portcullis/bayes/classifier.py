"""The token classifier: Robinson's per-token probabilities, Fisher's chi-square combining.

Each token's spam probability is estimated from how often it appeared in spam and ham
(each relative to the number of messages learnt in that class, so an unbalanced training
set does not bias it), shrunk towards 0.5 by Robinson's prior for rare tokens.  The most
telling tokens are combined twice with Fisher's method, once for "spam" and once for
"ham" evidence; their difference gives a probability with an honest middle: a message
with strong evidence both ways scores near 0.5 (unsure) instead of at an extreme.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# Robinson's prior: strength and value of the belief about a token never seen before.
PRIOR_STRENGTH = 0.45
PRIOR_VALUE = 0.5
MIN_STRENGTH = 0.1        # tokens with |p - 0.5| below this are ignored
MAX_CLUES = 150           # the most telling tokens used per message


class Clue(NamedTuple):             # a tuple: a message makes up to 150 of them
    token: str
    probability: float


_new_clue = functools.partial(tuple.__new__, Clue)
_token_and_probability = operator.itemgetter(1, 2)     # of a (-strength, token, p) entry
_probability = operator.itemgetter(2)


@dataclass(frozen=True)
class Classification:
    probability: float                # 0 = certainly ham, 1 = certainly spam
    clues: tuple[Clue, ...]           # the tokens that decided, most telling first
    trained: bool                     # enough training for the probability to mean much
    nspam: int = 0                    # messages learnt of each class
    nham: int = 0

    def top(self, spammy: bool, count: int = 5) -> list[str]:
        # The clues are most telling first: the side's first ``count`` are enough.
        side = (c.token for c in self.clues if (c.probability > 0.5) == spammy)
        return list(itertools.islice(side, count))


def token_probability(spam: int, ham: int, nspam: int, nham: int) -> float:
    """Robinson's f(w): the smoothed probability that a message with this token is spam."""
    spam_ratio = spam / max(nspam, 1)
    ham_ratio = ham / max(nham, 1)
    if spam_ratio + ham_ratio == 0:
        return PRIOR_VALUE
    p = spam_ratio / (spam_ratio + ham_ratio)
    n = spam + ham
    return (PRIOR_STRENGTH * PRIOR_VALUE + n * p) / (PRIOR_STRENGTH + n)


def chi2q(chi2: float, degrees: int) -> float:
    """P(X >= chi2) for a chi-square distribution with an even number of degrees."""
    m = chi2 / 2.0
    total = term = math.exp(-m)
    for i in range(1, degrees // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: Iterable[float]) -> float:
    """Fisher/Robinson chi-square combining of token probabilities (0.5 when none)."""
    probs = list(probabilities)
    if not probs:
        return 0.5
    # map() runs math.log without a Python frame per probability: the same sums of the
    # same logarithms in the same order as a generator's.
    ham_log = sum(map(math.log, probs))
    spam_log = sum(map(math.log, [1.0 - p for p in probs]))
    n = len(probs)
    spam_evidence = 1.0 - chi2q(-2.0 * spam_log, 2 * n)
    ham_evidence = 1.0 - chi2q(-2.0 * ham_log, 2 * n)
    return (spam_evidence - ham_evidence + 1.0) / 2.0


def classify(counts: dict[str, tuple[int, int]], tokens: Iterable[str], nspam: int,
             nham: int, min_trained: int = 1) -> Classification:
    """Classify a message's tokens given the learnt counts ``token -> (spam, ham)``
    (``TokenDatabase.counts`` gives those of the message's tokens the store knows)."""
    spam_total, ham_total = max(nspam, 1), max(nham, 1)
    prior_weight = PRIOR_STRENGTH * PRIOR_VALUE     # in locals: this loop runs per token
    prior_strength, min_strength = PRIOR_STRENGTH, MIN_STRENGTH
    telling = []                      # (-strength, token, probability): sorts as wanted
    wanted = tokens if isinstance(tokens, set | frozenset) else set(tokens)
    # The counts, not the tokens: a token the store does not know costs nothing, and
    # the sort below leaves no tie for the order of the loop to decide.
    for token, (spam, ham) in counts.items():
        if token not in wanted:
            continue
        n = spam + ham
        if n == 0:
            continue
        # token_probability, the same operations in the same order (a call per token
        # was a quarter of the time here; a test holds the two equal).
        spam_ratio = spam / spam_total
        ham_ratio = ham / ham_total
        p = (prior_weight + n * (spam_ratio / (spam_ratio + ham_ratio))) / (prior_strength + n)
        strength = abs(p - 0.5)
        if strength >= min_strength:
            telling.append((-strength, token, p))
    telling.sort()                    # most telling first, ties by token
    best = telling[:MAX_CLUES]
    # Clue(token, p) is tuple.__new__(Clue, (token, p)) behind a Python-level __new__;
    # calling tuple.__new__ through map() makes the same clues without a frame each.
    clues = tuple(map(_new_clue, map(_token_and_probability, best)))
    trained = nspam >= min_trained and nham >= min_trained
    return Classification(combine(map(_probability, best)), clues, trained, nspam, nham)
