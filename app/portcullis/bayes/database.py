"""The classifier's memory in the store: token counts, class totals, learnt messages.

Every message is learnt once per class: its content digest is remembered with who taught
it, so learning the same message again is a no-op and learning it as the other class
moves it (the counts it added before are taken back).  Counts never go below zero.  A
person's training (``portcullis train``, the spam@/ham@ mailboxes) is authoritative, as in
SpamAssassin and rspamd: it moves what the auto-learner learnt, and a person's newer
training moves their older one, but the auto-learner never moves what a person taught;
a person confirming an auto-learnt message makes it theirs.  A person's training also
outlives expiry (SpamAssassin and rspamd likewise keep manually learnt data over
automatic): a token a person taught (``taught``, the day they last did) is never
forgotten for its age, and only once every token the auto-learner alone learnt is gone
does the size bound take the least recently taught; nor is the record of a message a
person taught forgotten, so the auto-learner cannot learn it the other way later.

The gateway's classifier keeps the counts it read in memory (``TokenCache``), as
SpamAssassin reads its Bayes database while learning goes to a journal synced later: a
count read from the store serves later messages for up to a minute, and at once stops
serving when the counts change by anything but auto-learning (``generation`` in
``bayes_totals``: training, the spam/ham mailboxes, expiry).  Auto-learning adds one
message to counts of hundreds or thousands; a minute's lag in that moves no verdict,
while reading every token of every message from the store was a tenth of a worker's time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from portcullis.store import Store

CHUNK = 512          # tokens per lookup query (well below SQLite's variable limit)
# A lookup's placeholders are padded (with NULL, which matches nothing) to a multiple of
# this, so that 32 statements serve every message from the connection's statement cache
# instead of one prepared for each new token count (257 -> 222 us a lookup over varied
# corpus messages).
PLACEHOLDER_STEP = 16
DAY = 86400
CACHE_TOKENS = 30_000   # counts a gateway worker keeps in memory (a few MiB)
CACHE_SECONDS = 60.0    # how long an auto-learnt change may go unseen
# The ``source`` of auto-learning; every other source ('cli', 'mailbox', and whatever a
# store holds from before) is a person, so an unknown one is never overridden.
AUTO = "auto"
_UNREAD = object()


def today(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // DAY)


def digest(tokens: Iterable[str]) -> str:
    """A content digest: the same tokens give the same digest whatever the order."""
    # Each token's UTF-8 and a NUL, hashed in one update (two per token were half the
    # cost); surrogatepass encodes each code point alone, so the whole text's bytes are
    # the tokens' bytes joined.
    ordered = sorted(tokens)
    text = "\0".join(ordered) + "\0" if ordered else ""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Learnt:
    digest: str
    tokens: frozenset[str]
    spam: bool


@dataclass(frozen=True)
class Taught:
    """How a message was last learnt: its class and who taught it (``source``)."""

    spam: bool
    source: str

    def yields_to(self, spam: bool, source: str) -> bool:
        """Whether learning the message as ``spam`` from ``source`` moves it: a person
        may move anything, the auto-learner only what it learnt itself."""
        return spam is not self.spam and (source != AUTO or self.source == AUTO)


def _auto_total(taught: Taught) -> str:
    """The ``bayes_totals`` key counting the auto-learner's messages of the class: only
    the messages it is still the teacher of (a person's move or confirmation takes one
    off), so the statistics say what the classifier holds."""
    return "auto_spam" if taught.spam else "auto_ham"


class TokenCache:
    """Token counts read before, shared by the threads of one process.

    Valid for one ``generation`` of the store's counts and ``CACHE_SECONDS``; tokens the
    store does not hold are remembered too (as ``None``), so a rare word is not asked for
    again by every message that has it.  At ``CACHE_TOKENS`` it starts again empty.
    """

    def __init__(self, limit: int = CACHE_TOKENS, seconds: float = CACHE_SECONDS) -> None:
        self.limit = limit
        self.seconds = seconds
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int] | None] = {}
        self._generation: int | None = None
        self._filled_at = 0.0

    def split(self, tokens: Iterable[str], generation: int
              ) -> tuple[dict[str, tuple[int, int]], list[str]]:
        """(the counts known for ``generation``, the tokens to read from the store)."""
        now = time.monotonic()
        with self._lock:
            if generation != self._generation or now - self._filled_at > self.seconds:
                self._counts = {}
                self._generation = generation
                self._filled_at = now
            known = self._counts
            found: dict[str, tuple[int, int]] = {}
            missing: list[str] = []
            for token in tokens:
                count = known.get(token, _UNREAD)
                if count is _UNREAD:
                    missing.append(token)
                elif count is not None:
                    found[token] = count
        return found, missing

    def add(self, generation: int, read: list[str], found: dict[str, tuple[int, int]]
            ) -> None:
        """Remember what was read for ``generation`` (unless it has moved on meanwhile)."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._counts) + len(read) > self.limit:
                self._counts = {}
            for token in read:
                self._counts[token] = found.get(token)


class TokenDatabase:
    def __init__(self, store: Store, cache: TokenCache | None = None) -> None:
        self.store = store
        self.cache = cache

    # -- reading -------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Messages learnt per class (spam, ham), and of those the ones the auto-learner
        taught (auto_spam, auto_ham)."""
        return self.totals_and_generation()[0]

    def totals_and_generation(self) -> tuple[dict[str, int], int]:
        totals = {key: int(value) for key, value in self.store.query_values(
            "SELECT key, value FROM bayes_totals")}
        return totals, totals.pop("generation", 0)

    def counts(self, tokens: Iterable[str], generation: int | None = None
               ) -> dict[str, tuple[int, int]]:
        """Learnt (spam, ham) counts of the tokens the store knows.  With the
        ``generation`` the caller read along with the totals, the cache answers first."""
        if self.cache is None or generation is None:
            return self._read(tokens)
        found, missing = self.cache.split(tokens, generation)
        if missing:
            read = self._read(missing)
            self.cache.add(generation, missing, read)
            found.update(read)
        return found

    def _read(self, tokens: Iterable[str]) -> dict[str, tuple[int, int]]:
        wanted = list(tokens)
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk: list[str | None] = list(wanted[start:start + CHUNK])
            chunk += [None] * (-len(chunk) % PLACEHOLDER_STEP)
            marks = ",".join("?" * len(chunk))
            for token, spam, ham in self.store.query_values(
                    f"SELECT token, spam, ham FROM bayes_tokens WHERE token IN ({marks})",  # noqa: S608
                    chunk):
                found[token] = (spam, ham)
        return found

    def taught(self, message_digest: str) -> Taught | None:
        """How the message with this digest was learnt, None if it was not."""
        row = self.store.query_one("SELECT class, source FROM bayes_learned WHERE digest = ?",
                                   (message_digest,))
        return Taught(row["class"] == "spam", row["source"]) if row else None

    def token_count(self) -> int:
        return int(self.store.scalar("SELECT count(*) FROM bayes_tokens", default=0))

    # -- learning ------------------------------------------------------------------------

    def learn(self, messages: Sequence[Learnt], source: str) -> tuple[int, int]:
        """Learn messages in one transaction; return (newly learnt, already known).

        A message already learnt in the same class is skipped (a person's confirmation of
        an auto-learnt one is recorded as theirs); one learnt in the other class is moved,
        unless ``source`` is ``AUTO`` and a person taught it (then it counts as known).
        ``AUTO`` also counts towards the auto-learn balance.
        """
        changes: Counter[tuple[str, int]] = Counter()   # (token, column 0 spam / 1 ham)
        totals: Counter[str] = Counter()
        learnt = known = 0
        now = time.time()
        with self.store.transaction():
            # Read inside the (immediate) transaction: a person's training committed
            # since the caller last looked is seen here, never overwritten.
            pending: dict[str, Taught] = {}     # the rows to write
            confirmed: set[str] = set()         # auto-learnt tokens a person vouched for
            for message in messages:
                previous = pending.get(message.digest) or self.taught(message.digest)
                if previous is not None and not previous.yields_to(message.spam, source):
                    known += 1
                    if previous.spam is message.spam and previous.source == AUTO \
                            and source != AUTO:    # a person confirms it: theirs now
                        pending[message.digest] = Taught(message.spam, source)
                        totals[_auto_total(previous)] -= 1
                        confirmed |= message.tokens
                    continue
                if previous is not None:   # move it: take back what it added
                    for token in message.tokens:
                        changes[(token, 0 if previous.spam else 1)] -= 1
                    totals["spam" if previous.spam else "ham"] -= 1
                    if previous.source == AUTO:
                        totals[_auto_total(previous)] -= 1
                for token in message.tokens:
                    changes[(token, 0 if message.spam else 1)] += 1
                taught = Taught(message.spam, source)
                totals["spam" if message.spam else "ham"] += 1
                if source == AUTO:
                    totals[_auto_total(taught)] += 1
                pending[message.digest] = taught
                learnt += 1
            taught_day = 0 if source == AUTO else today()
            self._apply(changes, taught_day)
            self._mark_taught(confirmed, taught_day)
            if learnt and source != AUTO:
                self._changed()
            for key, delta in totals.items():
                if delta:
                    self.store.execute("UPDATE bayes_totals SET value = max(0, value + ?)"
                                       " WHERE key = ?", (delta, key))
            self.store.executemany(
                "INSERT INTO bayes_learned (digest, class, source, learned) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (digest) DO UPDATE SET class = excluded.class,"
                " source = excluded.source, learned = excluded.learned",
                [(d, "spam" if t.spam else "ham", t.source, now) for d, t in pending.items()])
        return learnt, known

    def _apply(self, changes: Counter[tuple[str, int]], taught_day: int) -> None:
        """Add the count changes; ``taught_day`` is today for a person's, 0 for the
        auto-learner's (which leaves a token's ``taught`` as it was)."""
        per_token: dict[str, list[int]] = {}
        for (token, column), delta in changes.items():
            if delta:
                per_token.setdefault(token, [0, 0])[column] += delta
        day = today()
        self.store.executemany(
            "INSERT INTO bayes_tokens (token, spam, ham, seen, taught) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (token) DO UPDATE SET spam = spam + excluded.spam,"
            " ham = ham + excluded.ham, seen = excluded.seen,"
            " taught = max(taught, excluded.taught)",
            [(t, s, h, day, taught_day) for t, (s, h) in per_token.items()])
        # Moving a message takes counts back: never below zero, and tokens left with no
        # counts at all go.
        taken_back = [t for t, (s, h) in per_token.items() if s < 0 or h < 0]
        for start in range(0, len(taken_back), CHUNK):
            chunk = taken_back[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            self.store.execute(
                f"UPDATE bayes_tokens SET spam = max(0, spam), ham = max(0, ham)"  # noqa: S608
                f" WHERE token IN ({marks})", chunk)
            self.store.execute(
                f"DELETE FROM bayes_tokens WHERE spam = 0 AND ham = 0"  # noqa: S608
                f" AND token IN ({marks})", chunk)

    def _mark_taught(self, tokens: set[str], taught_day: int) -> None:
        """Make tokens whose counts a person confirmed theirs for expiry."""
        wanted = sorted(tokens) if taught_day else []
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            self.store.execute(
                f"UPDATE bayes_tokens SET taught = max(taught, ?)"  # noqa: S608
                f" WHERE token IN ({','.join('?' * len(chunk))})", [taught_day, *chunk])

    # -- bounded growth ------------------------------------------------------------------

    def expire(self, *, hapax_days: int, max_days: int, max_tokens: int,
               now: float | None = None) -> int:
        """Forget tokens only the auto-learner learnt that were not learnt for a long
        time (one-off tokens sooner), then beyond ``max_tokens`` the least recently
        learnt of those, and only when they are all gone the least recently taught by a
        person; return how many were removed.  ``now``: the time they are aged against
        (housekeeping's, ``store.clock.upkeep_time``)."""
        now = time.time() if now is None else now
        day = today(now)
        # In batches (Store.purge): a day of one-off tokens is a large backlog.
        removed = self.store.purge(
            "bayes_tokens", "taught = 0 AND ((spam + ham <= 1 AND seen < ?) OR seen < ?)",
            (day - hapax_days, day - max_days), key="token")
        excess = self.token_count() - max_tokens
        if excess > 0:
            removed += self.store.purge("bayes_tokens", "1 = 1", key="token",
                                        order="taught, seen, spam + ham", most=excess)
        self.store.purge("bayes_learned", "source = ? AND learned < ?",
                         (AUTO, now - max_days * DAY))
        if removed:
            self._changed()
        return removed

    def _changed(self) -> None:
        """Tell every process's ``TokenCache`` that the counts it holds are gone."""
        self.store.execute("UPDATE bayes_totals SET value = value + 1 WHERE key = 'generation'")
