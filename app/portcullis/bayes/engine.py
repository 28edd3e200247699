"""Classifying and learning whole messages: the one path used by the gateway's check,
the training mailboxes, auto-learning, ``portcullis train``, ``score`` and ``eval``."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

from portcullis.bayes.classifier import Classification, classify
from portcullis.bayes.database import Learnt, TokenCache, TokenDatabase, digest
from portcullis.bayes.tokenizer import tokenize
from portcullis.mime import parse_message, walk
from portcullis.store import Store

MAX_LEARN_BYTES = 10 * 1024 * 1024   # larger files are not mail worth learning from
MIN_TOKENS = 5                        # fewer tokens than this: nothing to learn
_HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]{1,76}:")
# Defects that mean part of the message is missing or unreadable.
DAMAGE = {"StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect",
          "InvalidBase64PaddingDefect", "InvalidBase64CharactersDefect",
          "InvalidBase64LengthDefect", "MultipartInvariantViolationDefect",
          "MissingHeaderBodySeparatorDefect"}

_token_cache: weakref.WeakKeyDictionary[Message, frozenset[str]] = weakref.WeakKeyDictionary()


class NotLearnable(ValueError):
    """Input that is not a mail message worth learning from; the text says why."""


@dataclass(frozen=True)
class Prepared:
    """A message ready to be learnt, with notes about damage found on the way."""

    learnt: Learnt
    notes: tuple[str, ...] = ()


def message_tokens(message: Message) -> frozenset[str]:
    """The tokens of a parsed message, computed once per message object."""
    tokens = _token_cache.get(message)
    if tokens is None:
        tokens = frozenset(tokenize(message))
        _token_cache[message] = tokens
    return tokens


def strip_envelope_line(content: bytes) -> bytes:
    """Drop an mbox ``From `` separator line at the start, if there is one."""
    if content.startswith(b"From "):
        return content.split(b"\n", 1)[1] if b"\n" in content else b""
    return content


def prepare(content: bytes, spam: bool, max_bytes: int = MAX_LEARN_BYTES) -> Prepared:
    """Check and tokenise raw message bytes for learning; raise NotLearnable if the input
    is too large, is not a mail message (no header block) or holds nothing to learn."""
    if len(content) > max_bytes:
        raise NotLearnable(f"too large ({len(content):,} bytes; limit {max_bytes:,})")
    content = strip_envelope_line(content).lstrip(b"\r\n")
    if not content:
        raise NotLearnable("empty")
    first_line = content.split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first_line) or b"\0" in content[:4096]:
        raise NotLearnable("not a mail message (it does not start with a header)")
    message = parse_message(content)
    tokens = message_tokens(message)
    if len(tokens) < MIN_TOKENS:
        raise NotLearnable("nothing to learn (no readable text)")
    damage = sorted({type(d).__name__ for _, part in walk(message) for d in part.defects}
                    & DAMAGE)
    notes = (f"damaged ({', '.join(damage)}): learnt from the readable parts only",) \
        if damage else ()
    return Prepared(Learnt(digest(tokens), tokens, spam), notes)


class Bayes:
    """The classifier bound to a store; ``cached`` keeps the counts it reads in memory
    (the gateway's check, which classifies all day)."""

    def __init__(self, store: Store, min_trained: int = 20, *, cached: bool = False) -> None:
        self.db = TokenDatabase(store, TokenCache() if cached else None)
        self.min_trained = min_trained

    def classify(self, message: Message) -> Classification:
        tokens = message_tokens(message)
        totals, generation = self.db.totals_and_generation()
        return classify(self.db.counts(tokens, generation), tokens, totals["spam"],
                        totals["ham"], self.min_trained)

    def classify_bytes(self, content: bytes) -> Classification:
        return self.classify(parse_message(strip_envelope_line(content)))

    def learn(self, prepared: Iterable[Prepared], source: str) -> tuple[int, int]:
        """Learn prepared messages; return (newly learnt, already known)."""
        return self.db.learn([p.learnt for p in prepared], source)

    def learn_bytes(self, content: bytes, spam: bool, source: str) -> bool:
        """Prepare and learn one message (raises NotLearnable); False when it was
        already learnt as this class."""
        learnt, _known = self.learn([prepare(content, spam)], source)
        return learnt > 0

    def totals(self) -> dict[str, int]:
        return self.db.totals()
