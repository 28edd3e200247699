"""The training addresses ``spam@`` and ``ham@`` of the appliance's host name.

Users forward unwanted mail to spam@<host> and wanted mail to ham@<host>; the gateway
takes it itself (it is never delivered anywhere) and learns the original message.  Only
the organisation may train: the envelope sender must belong to a protected domain AND the
mail must come from a relay or that domain's own internal mail host, since a sender
address alone is trivially forged from the Internet.  Learning a message as spam also
erases the one-way relationship its sender had earned with the user who forwarded it.
"""

from __future__ import annotations

import asyncio
from email.message import Message
from typing import TYPE_CHECKING

from portcullis.addresses import domain_of, header_address, parse_ip
from portcullis.bayes.engine import Bayes, NotLearnable
from portcullis.bayes.forwarded import arrival, extract_originals
from portcullis.mime import parse_message
from portcullis.reputation import oneway
from portcullis.smtp.mailbox import VirtualMailbox
from portcullis.smtp.nexthop import Reply

if TYPE_CHECKING:
    from portcullis.checks.base import Context
    from portcullis.directory.snapshot import Snapshot
    from portcullis.services import Services

NOT_PROTECTED = Reply(550, "5.7.1 Training addresses accept mail only from protected domains")
NOT_INTERNAL = Reply(550, "5.7.1 Training addresses accept mail only from the organisation's "
                          "own mail servers")


class TrainingMailbox(VirtualMailbox):
    spam: bool = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        settings = services.config.bayes
        host = (settings.training_host or services.config.smtp.hostname).lower().rstrip(".")
        local = settings.spam_mailbox if self.spam else settings.ham_mailbox
        self.address = f"{local.lower()}@{host}"
        self.name = f"Trained {'spam' if self.spam else 'ham'}"
        self.bayes = Bayes(services.store, settings.min_trained)

    def claims(self, address: str, snapshot: Snapshot) -> bool:
        return self.services.config.bayes.enabled and address.lower() == self.address

    def accept(self, ctx: Context) -> Reply:
        assert ctx.snapshot is not None
        domain = ctx.snapshot.domains.get(domain_of(ctx.mail_from))
        if domain is None:
            return NOT_PROTECTED
        # A domain's own mail host speaks for that domain's users only: any domain's
        # host (a tenant's own server, its mail host set by its domain administrator)
        # could otherwise report in another domain's users' names.
        internal = ctx.ip is not None and parse_ip(domain.mail_host.host) == ctx.ip
        if not (ctx.snapshot.is_relay(ctx.ip) or internal):
            return NOT_INTERNAL
        return Reply(250, "2.1.5 Ok")

    async def consume(self, ctx: Context) -> Reply:
        # Finding the original walks and searches the whole forward: off the event loop,
        # which serves every other connection of this worker meanwhile.
        try:
            learnt = await asyncio.to_thread(self._learn, ctx.message, ctx.mail_from)
        except NotLearnable as exc:
            return Reply(550, f"5.6.0 Cannot learn from the forwarded message: {exc}")
        if learnt is None:
            return Reply(550, "5.6.0 No forwarded message found to learn from")
        klass = "spam" if self.spam else "ham"
        new, usable = learnt
        if usable > 1:
            before = "; the others were learnt before" if new < usable else ""
            return Reply(250, f"2.0.0 Ok: {new} of {usable} messages learnt as {klass}{before}")
        return Reply(250, f"2.0.0 Ok: learnt as {klass}" if new else
                     f"2.0.0 Ok: already learnt as {klass}")

    def _learn(self, forward: Message, reporter: str) -> tuple[int, int] | None:
        """Learn the forward's originals: (newly learnt, learnable), None if it holds
        none; NotLearnable (the first reason) if none of them can be learnt."""
        originals = extract_originals(forward)
        if not originals:
            return None
        new = usable = 0
        problem: NotLearnable | None = None
        for original in originals:
            try:
                new += self._learn_original(original, reporter)
            except NotLearnable as exc:
                problem = problem or exc
                continue
            usable += 1
        if not usable and problem is not None:
            raise problem
        return new, usable

    def _learn_original(self, original: bytes, reporter: str) -> bool:
        learnt = self.bayes.learn_bytes(arrival(self.services)(original), self.spam,
                                        "mailbox")
        if self.spam:
            # The delivery's Return-Path (taken off for learning) is the envelope sender
            # one-way relationships are kept by.
            message = parse_message(original)
            for header in ("Return-Path", "From"):
                sender = header_address(message.get(header, "") or "")[1]
                if "@" in sender:
                    oneway.forget_sender(self.services.store, sender, reporter)
        return learnt


class SpamMailbox(TrainingMailbox):
    spam = True


class HamMailbox(TrainingMailbox):
    spam = False
