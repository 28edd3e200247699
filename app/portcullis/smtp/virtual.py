"""Virtual mailboxes: addresses the appliance answers itself instead of relaying.

The FAQ's ``spam@`` / ``ham@`` training addresses are the example: mail to them is taken
by the gateway, used, and never delivered anywhere.  A mailbox claims addresses at RCPT,
may refuse a sender, and consumes the message at DATA.  Add one by subclassing
``VirtualMailbox`` and listing it in ``MAILBOXES``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portcullis.checks.base import Context
    from portcullis.directory.snapshot import Snapshot
    from portcullis.services import Services
    from portcullis.smtp.nexthop import Reply


class VirtualMailbox(abc.ABC):
    name: str = ""

    def __init__(self, services: Services) -> None:
        self.services = services

    @abc.abstractmethod
    def claims(self, address: str, snapshot: Snapshot) -> bool:
        """Whether this mailbox answers for the address."""

    @abc.abstractmethod
    def accept(self, ctx: Context) -> Reply:
        """At RCPT: may this sender (``ctx.mail_from``, ``ctx.client_ip``) write here?"""

    @abc.abstractmethod
    async def consume(self, ctx: Context) -> Reply:
        """At DATA: use the message (``ctx.content``); the reply goes to the client."""


# Imported here, after VirtualMailbox exists, because the mailboxes subclass it.
from portcullis.bayes.mailboxes import HamMailbox, SpamMailbox  # noqa: E402

MAILBOXES: list[type[VirtualMailbox]] = [
    SpamMailbox,
    HamMailbox,
]


def build_mailboxes(services: Services) -> list[VirtualMailbox]:
    return [cls(services) for cls in MAILBOXES]
