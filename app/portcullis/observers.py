"""Components that learn from what the gateway sees (reputation, Bayes auto-training, ...).

The handler tells every observer about refused recipients and finished messages; an
observer never changes the outcome and its failures are logged, never raised.  Adding a
learner means writing one ``Observer`` subclass and listing it in ``OBSERVERS``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from portcullis import refusallog
from portcullis.addresses import domain_of
from portcullis.bayes.autolearn import AutoLearner
from portcullis.events import ConnectionClosed, MessageEvent, Observer, RecipientRefused
from portcullis.mime import parse_headers
from portcullis.reputation import peers
from portcullis.reputation.observer import ReputationLearner

if TYPE_CHECKING:
    from portcullis.services import Services

log = logging.getLogger(__name__)


class OutboundPairs(Observer):
    """Remember who writes to whom: the raw material of peer relationships."""

    def message(self, event: MessageEvent) -> None:
        route = event.ctx.route
        if not event.delivered or route is None or route.direction != "outbound":
            return
        # As relationships look our user up (the inbound RCPT): example.com. is example.com,
        # and a BATV tag the internal server adds is no other user.
        sender = peers.correspondent(event.ctx.mail_from)
        protected = event.ctx.snapshot.domains if event.ctx.snapshot else {}
        if domain_of(sender) not in protected:
            return   # only our own users' correspondents become peers
        if peers.automatic(parse_headers(event.ctx.content or b"")):
            return   # an auto-reply to a stranger is no permission
        store = self.services.store
        with store.transaction():
            for rcpt in event.ctx.recipients:
                peers.record_outbound(store, sender, rcpt, event.when)


class HarvestCounter(Observer):
    """Count invalid recipients per client for harvest detection (checks/harvest.py)."""

    def recipient_refused(self, event: RecipientRefused) -> None:
        # Imported when used: checks may one day need observers, and cycles break imports.
        from portcullis.checks import harvest

        snapshot = self.services.snapshots.get()
        if not harvest.counts(event.reason, event.client_ip, snapshot):
            return
        harvest.record_refusal(self.services.store, event.client_ip,
                               harvest.HarvestPolicy.from_settings(snapshot.settings),
                               event.when)


class GreylistWithdrawal(Observer):
    """Take back greylisting's pass for a recipient then refused as unknown
    (checks/greylist.py: a retried guess earns no trust)."""

    def recipient_refused(self, event: RecipientRefused) -> None:
        from portcullis.checks.greylist import refused_as_unknown

        if event.reason == "unknown":
            refused_as_unknown(self.services, event.client_ip, event.mail_from,
                               event.helo, event.recipient)


class RefusalLog(Observer):
    """Keep the refused recipients of protected domains for their administrators' log
    (refusallog.py); a relay attempt elsewhere is no administrator's."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self._since_trim: Counter[str] = Counter()

    def recipient_refused(self, event: RecipientRefused) -> None:
        if not event.domain:
            return
        store = self.services.store
        refusallog.record(store, event)
        if self._since_trim[event.domain] % refusallog.TRIM_EVERY == 0:
            retention = self.services.snapshots.get().settings["archive_retention_days"]
            refusallog.trim(store, event.domain, retention)
        self._since_trim[event.domain] += 1


OBSERVERS: list[type[Observer]] = [
    OutboundPairs,
    HarvestCounter,
    ReputationLearner,
    AutoLearner,
    GreylistWithdrawal,
    RefusalLog,
]


class Observers:
    def __init__(self, services: Services) -> None:
        self._observers = [cls(services) for cls in OBSERVERS]

    def message(self, event: MessageEvent) -> None:
        self._notify("message", event)

    def recipient_refused(self, event: RecipientRefused) -> None:
        self._notify("recipient_refused", event)

    def _notify(self, method: str, event: object) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(event)
            except Exception:  # learning must never cost a message
                log.exception("observer %s failed", type(observer).__name__)

    def connection_closed(self, event: ConnectionClosed) -> None:
        self._notify("connection_closed", event)


__all__ = ["OBSERVERS", "ConnectionClosed", "MessageEvent", "Observer", "Observers",
           "RecipientRefused", "recipient_domains"]


def recipient_domains(recipients: list[str]) -> list[str]:
    return sorted({domain_of(r) for r in recipients})
