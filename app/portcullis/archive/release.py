"""Release: deliver an archived message (usually a rejected one) to its recipients now.

The administrator's decision overrides the filter, but it teaches nothing: reputation
learns from replies, not from releases (FAQ: "Releasing a message").
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portcullis.addresses import domain_of
from portcullis.archive.archive import ArchivedMessage, ArchiveError
from portcullis.config import HostPort
from portcullis.directory.domains import list_domains
from portcullis.smtp.nexthop import deliver
from portcullis.smtp.rewrite import rewrite, split_message

if TYPE_CHECKING:
    from portcullis.services import Services


@dataclass
class ReleaseResult:
    message_id: str
    delivered: list[str]
    failed: dict[str, str]       # recipient -> reply

    @property
    def ok(self) -> bool:
        return bool(self.delivered) and not self.failed

    def describe(self) -> str:
        parts = []
        if self.delivered:
            parts.append(f"delivered to {', '.join(self.delivered)}")
        parts += [f"{rcpt}: {reply}" for rcpt, reply in self.failed.items()]
        return "; ".join(parts) or "no recipients"


async def release(services: Services, message_id: str, released_by: str = "admin",
                  allowed_domains: list[str] | None = None,
                  again: bool = False) -> ReleaseResult:
    """Deliver the archived copy to each recipient's current internal mail host.

    ``allowed_domains`` limits a domain administrator to recipients of their domains;
    a message rejected as a virus is the super administrator's (``allowed_domains``
    None) alone to release.
    A recipient that has the message already (a release delivered it, or it was delivered
    when it came) gets no second copy unless ``again``.
    """
    archive = services.archive
    message = archive.get(message_id)
    if message is None:
        raise ArchiveError(f"no archived message {message_id}")
    if message.virus and allowed_domains is not None:
        raise ArchiveError(f"message {message_id} was rejected as a virus; only the super"
                           " administrator may release it")
    recipients = [r for r in message.recipients
                  if allowed_domains is None or domain_of(r) in allowed_domains]
    if not recipients:
        raise ArchiveError(f"message {message_id} has no recipient you may release to")
    if not again:
        if not message.kept_back:
            # Taken by the internal host, or being handed to it now (a slow host may take
            # minutes to answer): its recipients have it, or will.
            done = "was delivered when it arrived" if message.delivered_on_arrival \
                else "is being delivered now"
            raise ArchiveError(f"message {message_id} {done}; release it again to send "
                               "another copy")
        claimed = archive.claim_release(message_id, recipients)
        if not claimed and archive.get(message_id) is None:
            raise ArchiveError(f"message {message_id} was purged from the archive (its"
                               " retention is over)")
        if not claimed:
            raise ArchiveError(f"message {message_id} was already released to "
                               f"{', '.join(recipients)}; release it again to send "
                               "another copy")
        recipients = claimed
    result = ReleaseResult(message_id, [], {})
    try:
        await _deliver(services, message, recipients, released_by, result)
    finally:
        # Also when interrupted (Ctrl-C while a second host is slow to answer): whoever
        # has it now counts as released, the claim on the others is given back.
        if result.delivered:
            archive.set_released(message_id, result.delivered, released=True)
        if not again:
            archive.set_released(message_id, [r for r in recipients
                                              if r not in result.delivered], released=False)
    _record_outcome(services, message, released_by, result)
    return result


def _record_outcome(services: Services, message: ArchivedMessage, released_by: str,
                    result: ReleaseResult) -> None:
    """Write a release's outcome in the message's Delivery, where it takes the place of
    the arrival's reply.  Not for a message delivered on arrival (another copy sent on
    purpose): that reply is all that says each recipient has it, and a release by one
    domain's administrator must neither mark another domain's recipients released nor
    tell them of it; its recipients' release times record it."""
    archive = services.archive
    if message.delivered_on_arrival:
        if result.delivered:
            archive.mark_released(message.id)
    elif result.delivered:
        archive.mark_released(message.id, f"released by {released_by}: {result.describe()}")
    else:
        archive.set_delivery(message.id, f"release by {released_by} failed: {result.describe()}")


async def _deliver(services: Services, message: ArchivedMessage, recipients: list[str],
                   released_by: str, result: ReleaseResult) -> None:
    """Deliver the archived copy, marked as released, to each recipient's current host;
    ``result`` says who has it so far, hop by hop."""
    content = services.archive.read_body(message)
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S %z")
    content = rewrite(content, prepend=[
        f"X-Portcullis-Released: {message.id} by {released_by}; {stamp}".encode()],
        tag_phrase=None, authserv_id=services.config.smtp.hostname)

    domains = {d.name: d for d in list_domains(services.store)}
    by_hop: dict[HostPort, list[str]] = defaultdict(list)
    for rcpt in recipients:
        domain = domains.get(domain_of(rcpt))
        if domain is not None:
            by_hop[domain.mail_host].append(rcpt)
        elif message.direction == "outbound":
            by_hop[services.config.outbound.relay_host].append(rcpt)
        else:
            result.failed[rcpt] = "domain is no longer protected"
    for hop, rcpts in by_hop.items():
        options, utf8_header = mail_parameters(message.mail_from, rcpts, content)
        reply, accepted = await deliver(
            hop, helo_name=services.config.smtp.hostname, timeouts=services.config.delivery,
            sender=message.mail_from, recipients=rcpts, content=content, options=options,
            utf8_header=utf8_header)
        if reply.ok:
            result.delivered += accepted
            for rcpt in set(rcpts) - set(accepted):
                result.failed[rcpt] = "refused by the internal host"
        else:
            for rcpt in rcpts:
                result.failed[rcpt] = f"{reply.code} {reply.text}"


def mail_parameters(sender: str, recipients: list[str], content: bytes
                    ) -> tuple[list[str], bool]:
    """The MAIL FROM parameters a release sends, and whether its header section is UTF-8
    that only SMTPUTF8 may carry (``NextHopSession.data``'s ``utf8_header``).

    The archive keeps the message, not its MAIL parameters, so they are read from what it
    holds: BODY=8BITMIME for 8-bit content (a next hop without 8BITMIME gets it converted
    or refused), SMTPUTF8 for a UTF-8 address or header section (sent to a next hop that
    offers it).  A UTF-8 address says the message came with SMTPUTF8: a next hop without
    it is refused the message as on arrival (553 5.6.7 for a UTF-8 local part, 554 5.6.9
    for a UTF-8 header).  A UTF-8 header with ASCII addresses goes to such a host as
    legacy 8-bit text, as arrival passed it for a client that did not ask for SMTPUTF8.
    """
    options = [] if content.isascii() else ["BODY=8BITMIME"]
    addresses = sender.isascii() and all(r.isascii() for r in recipients)
    header = split_message(content)[0]
    utf8 = not header.isascii() and _is_utf8(header)
    if utf8 or not addresses:
        options.append("SMTPUTF8")
    return options, utf8 and not addresses


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
