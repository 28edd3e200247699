"""The reputation engine's learner: told about every decided message and every inbound
connection, it keeps peer, one-way and MTA records up to date."""

from __future__ import annotations

from portcullis.events import ConnectionClosed, MessageEvent, Observer
from portcullis.policy import Decision, Flag, Verdict
from portcullis.reputation import mta, oneway, peers
from portcullis.reputation.networks import network_of
from portcullis.reputation.symbols import Evidence

# Sender authentication that says the message is forged (checks/authentication.py names
# them): SPF on the envelope sender, the key of every relationship, and DMARC where the
# From domain's owner asks for mail failing it to be refused or quarantined.
FORGED_SENDER = ("SPF_FAIL", "SPF_SOFTFAIL", "DMARC_FAIL_REJECT", "DMARC_FAIL_QUARANTINE")


def sender_forged(decision: Decision) -> bool:
    """Whether SPF or DMARC said the message's sender was forged, or a check flagged it
    forged (FORGED_OWN_DOMAIN: our own domain claimed from outside), as the policy reads
    it."""
    return any(s.name in FORGED_SENDER or s.flag is Flag.FORGED for s in decision.symbols)


class ReputationLearner(Observer):
    def message(self, event: MessageEvent) -> None:
        ctx = event.ctx
        route = ctx.route
        if route is None or not route.filtered or not event.delivered:
            return
        if event.decision.verdict not in (Verdict.ACCEPT, Verdict.TAG):
            return
        sender = peers.correspondent(ctx.mail_from)
        if "@" not in sender or ctx.snapshot is None:
            return   # bounces (null sender) build no relationship
        if sender_forged(event.decision):
            # Benign forgeries of a correspondent's address would count as its replies:
            # two of them, and the forger's spam is protected, never rejected.
            return
        thresholds = ctx.snapshot.thresholds
        # Judged as auto-learning judges ham: no bonus of reputation's (a relationship's,
        # the MTA's record, the white list's trust) is evidence of a good message, so a
        # bonus cannot earn itself more bonus, nor spam under a forged white-listed
        # sender a peer's protection or one-way credits; reputation's penalties count.
        good = Evidence.of(event.decision.symbols).as_good \
            < thresholds.tag + (thresholds.reject - thresholds.tag) / 2
        network = network_of(ctx.ip)
        settings = self.services.config.reputation
        store = self.services.store
        if not good:
            # Mail only reputation's own bonus made wanted teaches nothing: counted as an
            # exchange, a forged correspondent's spam would earn itself protection.
            return
        with store.transaction():
            for recipient in ctx.recipients:
                if peers.record_inbound(store, recipient, sender, event.when):
                    continue
                if network:
                    oneway.record_good(store, sender, recipient, network, event.when,
                                       settings.one_way_interval)

    def connection_closed(self, event: ConnectionClosed) -> None:
        mta.record(self.services.store, event)
