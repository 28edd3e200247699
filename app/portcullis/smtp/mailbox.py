"""The interface of a virtual mailbox (see ``virtual.py`` for what they are and the
registry).  Kept apart from the registry so a mailbox module can subclass it without
importing the registry that lists it."""

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
