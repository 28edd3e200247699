"""Auto-learning from confident verdicts, balanced between the classes.

Only evidence found in the message and its delivery (content, headers, the SMTP
conversation, sender authentication) can be the reason to learn it.  Bayes' own opinion is
left out, so the classifier does not confirm its own mistakes; so is what is known of the
sender (``reputation.symbols.Evidence``: peer, one-way and MTA reputation, the white
and black lists), as SpamAssassin's auto-learning ignores its ``noautolearn`` rules: a
regular sender's spammy-but-untagged message is still spammy, and a bad MTA's record says
nothing of what this message is.  That knowledge may only hold learning back, never be
its reason: its penalties count against learning ham, its bonuses against learning spam.

A message is learnt as spam when it was rejected on score (no symbol forced the verdict,
no peer protection) and its own evidence, with reputation's bonuses, reached
``autolearn_spam_score``; as ham when it was accepted on score, delivered, its own
evidence with reputation's penalties stayed below ``autolearn_ham_score``, and SPF or
DMARC did not show its sender forged.  A message a person trained (``portcullis train``,
spam@/ham@) is never moved to the other class (``database.Taught``).  Neither class may
run ahead: a class is learnt only while it holds fewer than ``BALANCE`` times the other's
messages (or ``min_trained``, early on).  Learning runs in a background thread, so the
SMTP conversation never waits for the store.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from portcullis.bayes.database import AUTO, Learnt, TokenDatabase, digest
from portcullis.bayes.engine import MIN_TOKENS, message_tokens
from portcullis.bayes.forwarded import arrival
from portcullis.events import MessageEvent, Observer
from portcullis.mime import parse_message
from portcullis.policy import Flag, Verdict
from portcullis.reputation.observer import sender_forged
from portcullis.reputation.symbols import Evidence

if TYPE_CHECKING:
    from portcullis.checks.base import Context
    from portcullis.services import Services

log = logging.getLogger(__name__)

BALANCE = 2.0
QUEUE_SIZE = 500


def autolearn_class(event: MessageEvent, spam_score: float, ham_score: float) -> bool | None:
    """True (spam), False (ham) or None (not confident enough) for a decided message."""
    decision = event.decision
    route = event.ctx.route
    if route is None or not route.filtered or event.ctx.content is None:
        return None
    if any(s.flag is Flag.MALWARE for s in decision.symbols):
        return None   # malware is ClamAV's business, and its text is often a decoy
    evidence = Evidence.of(s for s in decision.symbols if not s.name.startswith("BAYES"))
    protected = any(s.flag in (Flag.PROTECT, Flag.WHITELIST) for s in decision.symbols)
    if decision.verdict is Verdict.REJECT and decision.deciding is None \
            and evidence.as_spam >= spam_score and not protected:
        return True
    # A white-listed message was accepted on the administrator's say, not judged: its -100
    # says nothing of the content, and a forged white-listed sender would teach spam as ham.
    # Nor does reputation vouch for a sender SPF or DMARC says was forged (a peer's).
    if decision.verdict is Verdict.ACCEPT and decision.deciding is None and event.delivered \
            and evidence.as_good < ham_score and not sender_forged(decision):
        return False
    return None


class AutoLearner(Observer):
    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.settings = services.config.bayes
        self._queue: queue.Queue[Learnt] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self.database = TokenDatabase(services.store)     # the event loop's connection

    def message(self, event: MessageEvent) -> None:
        if not (self.settings.enabled and self.settings.autolearn):
            return
        spam = autolearn_class(event, self.settings.autolearn_spam_score,
                               self.settings.autolearn_ham_score)
        if spam is None:
            return
        tokens = self._tokens(event.ctx)
        if len(tokens) < MIN_TOKENS:
            return
        # Two small reads here spare most messages the worker thread and the store's
        # write lock: a class that is far enough ahead, or a message learnt before (the
        # same newsletter or spam run again and again) or taught by a person, has nothing
        # to write.  The worker checks again inside its transaction (``learn``), where a
        # person's training committed meanwhile is seen.
        if self._ahead(self.database.totals(), spam):
            return
        learnt = Learnt(digest(tokens), tokens, spam)
        taught = self.database.taught(learnt.digest)
        if taught is not None and not taught.yields_to(spam, AUTO):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="bayes-autolearn",
                                            daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(learnt)
        except queue.Full:
            log.warning("bayes auto-learning is behind; a message was not learnt")

    def _tokens(self, ctx: Context) -> frozenset[str]:
        """The message's tokens as the gateway first received it: one it passed on
        before (from one protected domain's host to another's) comes again under the
        gateway's own Received field, and is the same message."""
        assert ctx.content is not None
        arrived = arrival(self.services)(ctx.content)
        if arrived is ctx.content:
            return message_tokens(ctx.message)
        return message_tokens(parse_message(arrived))

    def _work(self) -> None:
        database = TokenDatabase(self.services.store)
        while True:
            learnt = self._queue.get()
            try:
                if self._ahead(database.totals(), learnt.spam):
                    continue
                database.learn([learnt], AUTO)
            except Exception:
                log.exception("bayes auto-learning failed")
            finally:
                self._queue.task_done()

    def _ahead(self, totals: dict[str, int], spam: bool) -> bool:
        """Whether the class is far enough ahead of the other to let it catch up."""
        mine, other = ("spam", "ham") if spam else ("ham", "spam")
        return totals[mine] >= BALANCE * max(totals[other], self.settings.min_trained)

    def pending(self) -> int:
        """Messages waiting to be learnt (for tests and shutdown)."""
        return self._queue.unfinished_tasks
