"""Components that learn from what the gateway sees (reputation, Bayes auto-training, ...).

The handler tells every observer about refused recipients and finished messages; an
observer never changes the outcome and its failures are logged, never raised.  Adding a
learner means writing one ``Observer`` subclass and listing it in ``OBSERVERS``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portcullis.addresses import domain_of
from portcullis.policy import Decision

if TYPE_CHECKING:
    from portcullis.checks.base import Context
    from portcullis.services import Services

log = logging.getLogger(__name__)


@dataclass
class MessageEvent:
    ctx: Context
    decision: Decision
    delivered: bool               # the next hop accepted it
    message_id: str
    when: float = field(default_factory=time.time)


@dataclass
class RecipientRefused:
    client_ip: str
    helo: str
    mail_from: str
    recipient: str
    reason: str                   # "unknown", "relay", ...
    when: float = field(default_factory=time.time)


@dataclass
class ConnectionClosed:
    """What one connection from the Internet (not a relay) amounted to, reported once
    when it ends if it decided a message or had a recipient refused."""

    client_ip: str
    helo: str
    verdicts: Counter[str]        # decided messages by verdict; "listed": forced by a
                                  # REJECT or BLACKLIST flag (DNSBL, black list)
    refused: Counter[str]         # refused recipients by reason; "<reason>-temporary"
                                  # for 4xx refusals (greylisting, unverifiable)
    when: float = field(default_factory=time.time)


class Observer:
    def __init__(self, services: Services) -> None:
        self.services = services

    def message(self, event: MessageEvent) -> None:
        """A message was decided (and, unless rejected, handed to the next hop)."""

    def recipient_refused(self, event: RecipientRefused) -> None:
        """A recipient was refused at RCPT (unknown user, relay attempt)."""

    def connection_closed(self, event: ConnectionClosed) -> None:
        """An inbound connection ended (see ``ConnectionClosed``)."""


class OutboundPairs(Observer):
    """Remember who writes to whom: the raw material of peer relationships."""

    def message(self, event: MessageEvent) -> None:
        route = event.ctx.route
        if not event.delivered or route is None or route.direction != "outbound":
            return
        sender = event.ctx.mail_from.lower()
        protected = event.ctx.snapshot.domains if event.ctx.snapshot else {}
        if domain_of(sender) not in protected:
            return   # only our own users' correspondents become peers
        store = self.services.store
        with store.transaction():
            for rcpt in event.ctx.recipients:
                store.execute(
                    "INSERT INTO outbound_pairs (sender, recipient, messages, first_seen,"
                    " last_seen) VALUES (?, ?, 1, ?, ?) ON CONFLICT (sender, recipient)"
                    " DO UPDATE SET messages = messages + 1, last_seen = excluded.last_seen",
                    (sender, rcpt.lower(), event.when, event.when))


def _learners() -> list[type[Observer]]:
    # Imported late: the learners build on the event classes defined above.
    from portcullis.bayes.autolearn import AutoLearner
    from portcullis.reputation.observer import ReputationLearner

    return [ReputationLearner, AutoLearner]


OBSERVERS: list[type[Observer]] = [
    OutboundPairs,
    *_learners(),
]


class Observers:
    def __init__(self, services: Services) -> None:
        self._observers = [cls(services) for cls in OBSERVERS]

    def message(self, event: MessageEvent) -> None:
        for observer in self._observers:
            try:
                observer.message(event)
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)

    def recipient_refused(self, event: RecipientRefused) -> None:
        for observer in self._observers:
            try:
                observer.recipient_refused(event)
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)

    def connection_closed(self, event: ConnectionClosed) -> None:
        for observer in self._observers:
            try:
                observer.connection_closed(event)
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)


def recipient_domains(recipients: list[str]) -> list[str]:
    return sorted({domain_of(r) for r in recipients})
