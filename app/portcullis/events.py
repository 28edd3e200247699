"""What the gateway tells its learners: the events, and the ``Observer`` interface.

Kept apart from the registry (``observers.py``) so a learner module can subclass
``Observer`` without importing the registry that lists it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portcullis.policy import Decision

if TYPE_CHECKING:
    from portcullis.checks.base import Context
    from portcullis.services import Services


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
    domain: str = ""              # the recipient's protected domain ("" for none)
    line: str = ""                # the decision log's line about it


# Mail taken unjudged, for a domain without filtering or from a white-listed sender: it
# earns an MTA no reputation, else a spammer could launder its address through such a
# domain (or a forged white-listed sender) before mailing filtered ones.
UNFILTERED = "unfiltered"


@dataclass
class ConnectionClosed:
    """What one connection from the Internet (not a relay) amounted to, reported once
    when it ends if it decided a message or had a recipient refused."""

    client_ip: str
    helo: str
    verdicts: Counter[str]        # decided messages by verdict; "listed": forced by a
                                  # REJECT or BLACKLIST flag (DNSBL, black list);
                                  # UNFILTERED: accepted unjudged (see above)
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
