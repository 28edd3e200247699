"""Virtual mailboxes: addresses the appliance answers itself instead of relaying.

The FAQ's ``spam@`` / ``ham@`` training addresses are the example: mail to them is taken
by the gateway, used, and never delivered anywhere.  A mailbox claims addresses at RCPT,
may refuse a sender, and consumes the message at DATA.  Add one by subclassing
``VirtualMailbox`` (``mailbox.py``) and listing it in ``MAILBOXES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.bayes.mailboxes import HamMailbox, SpamMailbox
from portcullis.smtp.mailbox import VirtualMailbox

if TYPE_CHECKING:
    from portcullis.services import Services

MAILBOXES: list[type[VirtualMailbox]] = [
    SpamMailbox,
    HamMailbox,
]


def build_mailboxes(services: Services) -> list[VirtualMailbox]:
    return [cls(services) for cls in MAILBOXES]
