"""The one interface every check implements, and the context it is given."""

from __future__ import annotations

import abc
import enum
import functools
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

from portcullis.addresses import IPAddress, parse_ip
from portcullis.mime import decoded_header, parse_headers, parse_message
from portcullis.policy import Symbol

if TYPE_CHECKING:
    from portcullis.directory.snapshot import Snapshot
    from portcullis.services import Services
    from portcullis.smtp.recipients import Route


class Stage(enum.StrEnum):
    CONNECT = "connect"   # once per session, started as the client connects
    RCPT = "rcpt"         # once per recipient (``ctx.recipient``), before it is validated
    DATA = "data"         # once per message, with the whole content


@dataclass
class Context:
    """What a check may look at.  ``content`` is None before DATA; ``recipient`` is the
    one being considered at RCPT."""

    client_ip: str
    helo: str = ""
    mail_from: str = ""
    recipients: list[str] = field(default_factory=list)
    recipient: str = ""
    route: Route | None = None
    content: bytes | None = None
    snapshot: Snapshot | None = None
    # Symbols found earlier in the session (e.g. at connect) for checks that combine.
    earlier: list[Symbol] = field(default_factory=list)
    # Work several checks share, done once per message (e.g. the attachment inventory):
    # keyed by the module that computes it.
    shared: dict[str, Any] = field(default_factory=dict)
    # Header fields a check wants the delivered message to carry (unfolded, name
    # included), e.g. Authentication-Results; added only where the route is filtered.
    headers: list[str] = field(default_factory=list)

    @functools.cached_property
    def ip(self) -> IPAddress | None:
        return parse_ip(self.client_ip)

    @functools.cached_property
    def message(self) -> Message:
        """The parsed message; never raises (defects are recorded on it)."""
        return parse_message(self.content or b"")

    @functools.cached_property
    def subject(self) -> str:
        """The decoded Subject; from the header block alone when no check parsed the
        whole message (unfiltered mail is never parsed in full)."""
        if "message" in self.__dict__:
            return decoded_header(self.message, "Subject")
        return decoded_header(parse_headers(self.content or b""), "Subject")

    @property
    def sender_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()


class Check(abc.ABC):
    """A check looks at a context and returns symbols; it decides nothing itself.

    ``fail_closed``: if the check itself fails (bug, timeout of a service it needs) the
    message is tempfailed instead of being judged without it.
    ``offline``: the check judges the content alone (no network, no session state), so
    ``portcullis score`` and ``portcullis eval`` run it on a message file.
    ``inline``: the check never waits (it computes, or reads the store): it runs in the
    caller's task while the others wait on the network.  A timeout could not interrupt
    it, and a task and a timer apiece cost more than most such checks.
    """

    name: str = ""
    stage: Stage = Stage.DATA
    description: str = ""
    fail_closed: bool = False
    offline: bool = False
    inline: bool = False
    timeout: float = 30.0

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def enabled(self) -> bool:
        return True

    @abc.abstractmethod
    async def check(self, ctx: Context) -> list[Symbol]:
        """Return the symbols this check finds (empty when it finds nothing)."""
