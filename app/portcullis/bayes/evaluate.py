"""Detection-quality evaluation: train a fresh, temporary store on the train sets, score
the test sets with content checks alone, count outcomes and measure scoring speed.

No configuration file is needed: the evaluation builds its own configuration around a
temporary store, so it never touches an appliance's state.  Scoring runs in ``workers``
processes (forked after training, each with its own store connection), the way the
gateway runs, and ``msgs_per_s`` is the scoring throughput over wall-clock time.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portcullis import config as configuration
from portcullis.bayes import sources
from portcullis.bayes.engine import Bayes
from portcullis.bayes.progress import Progress
from portcullis.bayes.training import train
from portcullis.checks.offline import ContentScorer
from portcullis.policy import Thresholds, Verdict
from portcullis.services import Services

CHUNK = 25


@dataclass(frozen=True)
class EvalSets:
    train_ham: list[Path]
    train_spam: list[Path]
    test_ham: list[Path]
    test_spam: list[Path]


def temporary_config(state_dir: Path) -> configuration.Config:
    """A configuration for a throw-away store (nothing listens; only the store is used)."""
    return configuration.parse({
        "smtp": {"listen": "127.0.0.1:1", "hostname": "eval.invalid"},
        "web": {"listen": "127.0.0.1:1"},
        "store": {"dir": str(state_dir)},
        "log": {"file": str(state_dir / "eval.log")},
    }, Path("<eval>"))


# Set in each scoring process (inherited by fork; never pickled).
_items: list[tuple[str, bool, bytes | OSError]] = []
_scorer: ContentScorer | None = None


def _score_chunk(args: tuple[str, Thresholds, int, int]) -> list[tuple[int, str, float, str]]:
    global _scorer
    state_dir, thresholds, start, stop = args
    if _scorer is None:
        services = Services.open(temporary_config(Path(state_dir)))
        _scorer = ContentScorer(services, thresholds)
    results = []
    for index in range(start, stop):
        _label, _spam, content = _items[index]
        if isinstance(content, OSError):
            results.append((index, "unreadable", 0.0, ""))
            continue
        decision = _scorer.score(content)
        symbols = ",".join(f"{s.name}={s.score:g}" for s in decision.symbols)
        results.append((index, decision.verdict.value, decision.score, symbols))
    return results


def evaluate(sets: EvalSets, *, workers: int = 2, thresholds: Thresholds | None = None,
             details: Path | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Train on the train sets, score the test sets; return the figures."""
    global _items
    with tempfile.TemporaryDirectory(prefix="portcullis-eval-") as tmp:
        state_dir = Path(tmp)
        config = temporary_config(state_dir)
        services = Services.open(config)
        thresholds = thresholds or Thresholds(config.policy.tag_threshold,
                                              config.policy.reject_threshold)
        bayes = Bayes(services.store, config.bayes.min_trained)
        started = time.monotonic()
        plan = [(p, False) for p in sets.train_ham] + [(p, True) for p in sets.train_spam]
        report = train(bayes, plan, source="cli", show_progress=show_progress)
        train_seconds = time.monotonic() - started
        services.store.close()

        _items = [(label, spam, content)
                  for paths, spam in ((sets.test_ham, False), (sets.test_spam, True))
                  for path in paths for label, content in sources.messages(path)]
        chunks = [(str(state_dir), thresholds, i, min(i + CHUNK, len(_items)))
                  for i in range(0, len(_items), CHUNK)]
        progress = Progress("scoring test messages", len(_items)) if show_progress else None
        outcomes: list[tuple[str, float, str]] = [("unreadable", 0.0, "")] * len(_items)
        started = time.monotonic()
        with multiprocessing.get_context("fork").Pool(max(1, workers)) as pool:
            for results in pool.imap_unordered(_score_chunk, chunks):
                for index, verdict, score, symbols in results:
                    outcomes[index] = (verdict, score, symbols)
                if progress:
                    progress.advance(len(results))
        score_seconds = time.monotonic() - started
        if progress:
            progress.finish()

    counts: dict[str, Counter[str]] = {"ham": Counter(), "spam": Counter()}
    for (_label, spam, _content), (verdict, _score, _symbols) in zip(_items, outcomes,
                                                                     strict=True):
        counts["spam" if spam else "ham"][verdict] += 1
    if details is not None:
        with details.open("w", encoding="utf-8") as handle:
            for (label, spam, _c), (verdict, score, symbols) in zip(_items, outcomes,
                                                                     strict=True):
                handle.write(json.dumps({"message": label, "class": "spam" if spam else "ham",
                                         "verdict": verdict, "score": score,
                                         "symbols": symbols}) + "\n")
    scored = len(_items)
    _items = []
    return _figures(counts, report.learnt, len(report.skipped), scored, score_seconds,
                    train_seconds, workers, thresholds)


def _figures(counts: dict[str, Counter[str]], learnt: dict[str, int], skipped: int,
             scored: int, score_seconds: float, train_seconds: float, workers: int,
             thresholds: Thresholds) -> dict[str, Any]:
    ham, spam = counts["ham"], counts["spam"]
    n_ham = sum(ham.values()) - ham["unreadable"]
    n_spam = sum(spam.values()) - spam["unreadable"]

    def rate(count: int, total: int) -> float:
        return round(count / total, 5) if total else 0.0

    accept, tag, reject = Verdict.ACCEPT.value, Verdict.TAG.value, Verdict.REJECT.value
    return {
        "ham": n_ham, "spam": n_spam,
        "ham_accepted": ham[accept], "ham_tagged": ham[tag], "ham_rejected": ham[reject],
        "spam_accepted": spam[accept], "spam_tagged": spam[tag],
        "spam_rejected": spam[reject],
        "ham_rejected_rate": rate(ham[reject], n_ham),
        "ham_tagged_rate": rate(ham[tag], n_ham),
        "ham_flagged_rate": rate(ham[tag] + ham[reject], n_ham),
        "spam_accepted_rate": rate(spam[accept], n_spam),
        "spam_tagged_rate": rate(spam[tag], n_spam),
        "spam_rejected_rate": rate(spam[reject], n_spam),
        "spam_caught_rate": rate(spam[tag] + spam[reject], n_spam),
        "unreadable": ham["unreadable"] + spam["unreadable"],
        "trained_ham": learnt["ham"], "trained_spam": learnt["spam"],
        "training_skipped": skipped,
        "msgs_per_s": round(scored / score_seconds, 1) if score_seconds else 0.0,
        "train_msgs_per_s": round((learnt["ham"] + learnt["spam"]) / train_seconds, 1)
        if train_seconds else 0.0,
        "workers": workers,
        "tag_threshold": thresholds.tag, "reject_threshold": thresholds.reject,
    }
