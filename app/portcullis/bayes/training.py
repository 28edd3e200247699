"""Bulk training from message sources (``portcullis train`` and ``portcullis eval``).

Bad input never stops a run and never costs the good messages around it: a file that
cannot be read, is too large, is not mail or holds nothing readable is skipped with a
message naming it and the reason; damaged messages are learnt from their readable parts
with a note.  Messages are learnt in batches, each in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from portcullis.bayes import sources
from portcullis.bayes.engine import Bayes, NotLearnable, Prepared, prepare
from portcullis.bayes.progress import Progress

BATCH = 250


@dataclass
class TrainReport:
    learnt: dict[str, int] = field(default_factory=lambda: {"spam": 0, "ham": 0})
    known: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"learnt": self.learnt, "already_known": self.known,
                "skipped": [{"message": m, "reason": r} for m, r in self.skipped],
                "notes": [{"message": m, "note": n} for m, n in self.notes]}


def train(bayes: Bayes, plan: list[tuple[Path, bool]], *, source: str = "cli",
          show_progress: bool = True,
          arrived: Callable[[bytes], bytes] | None = None) -> TrainReport:
    """Learn every message of each (source path, is_spam) in ``plan``; ``arrived`` gives
    a held message as the gateway received it (``forwarded.arrival``: a user's mail
    carries what its delivery added)."""
    report = TrainReport()
    for path, spam in plan:
        klass = "spam" if spam else "ham"
        progress = Progress(f"learning {klass} from {path.name}", sources.count(path)) \
            if show_progress else None
        batch: list[Prepared] = []

        def flush(batch: list[Prepared], klass: str = klass) -> None:
            learnt, known = bayes.learn(batch, source)
            report.learnt[klass] += learnt
            report.known += known
            batch.clear()

        for label, content in sources.messages(path):
            try:
                if isinstance(content, OSError):
                    raise NotLearnable(f"cannot read: {content.strerror or content}")
                prepared = prepare(arrived(content) if arrived else content, spam)
            except NotLearnable as exc:
                report.skipped.append((label, str(exc)))
                if progress:
                    progress.say(f"skipped {label}: {exc}")
            else:
                for note in prepared.notes:
                    report.notes.append((label, note))
                    if progress:
                        progress.say(f"note {label}: {note}")
                batch.append(prepared)
                if len(batch) >= BATCH:
                    flush(batch)
            if progress:
                progress.advance()
        flush(batch)
        if progress:
            progress.finish()
    return report
