"""Peer relationships: our users' correspondents, learnt from outbound mail.

When an internal user writes to someone on the Internet (the core records every outbound
(sender, recipient) pair in ``outbound_pairs`` with ``record_outbound``), that is implied
permission: mail from
that correspondent back to that user earns a bonus that grows with every exchange (our
user's messages out, and the correspondent's good messages in).  After
``peer_protect_exchanges`` exchanges the relationship protects: the mail is never
rejected or tempfailed, except for malware and the administrator's black list (see
``policy.decide``).  A smaller bonus, never protection, goes to other addresses at a
domain the user corresponds with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from portcullis.addresses import address_key, domain_of
from portcullis.policy import Flag, Symbol
from portcullis.store import Store

FIRST_BONUS = 6.0        # one exchange is usually enough to lift a Tag
BONUS_PER_EXCHANGE = 2.0
MAX_BONUS = 20.0
DOMAIN_BONUS = 2.0


# BATV (prvs=TAG=user@domain): a fresh tag in every message's envelope sender, put there
# by the correspondent's own outbound gateway (the pattern greylisting drops too).
_BATV = re.compile(r"^(?:prvs|btv1|msprvs1)=[^=@]+=", re.IGNORECASE)


def correspondent(address: str) -> str:
    """An envelope sender as relationships know it: ``address_key``'s form, without a
    BATV tag, so a correspondent whose server signs its senders is one correspondent, not
    a new one with every message (its replies earned no bonus, its newsletters no
    credit)."""
    return address_key(_BATV.sub("", address.strip()))


@dataclass(frozen=True)
class Peer:
    outbound: int            # messages our user sent to the correspondent
    inbound: int             # good messages the correspondent sent back
    domain_partners: int     # addresses at the correspondent's domain our user wrote to

    @property
    def exchanges(self) -> int:
        return self.outbound + self.inbound if self.outbound else 0


def lookup(store: Store, internal: str, external: str) -> Peer:
    """What ``internal`` (our user) and ``external`` have exchanged."""
    internal, external = address_key(internal), address_key(external)
    domain = recipient_domain(external)
    # One statement for the RCPT of every message: a read of the store costs more in
    # locking the database than these three indexed lookups.  Counting a stranger's
    # domain partners runs over an index, however many correspondents our user has (a
    # LIKE on the address read them all).
    found = dict(store.query_values(
        "SELECT 'outbound', messages FROM outbound_pairs WHERE sender = ?1 AND recipient = ?2"
        " UNION ALL SELECT 'inbound', messages FROM peer_inbound"
        " WHERE internal = ?1 AND external = ?2"
        " UNION ALL SELECT 'partners', count(*) FROM outbound_pairs"
        " WHERE sender = ?1 AND recipient_domain = ?3", (internal, external, domain)))
    outbound = int(found.get("outbound", 0))
    inbound = int(found.get("inbound", 0)) if outbound else 0
    partners = int(found["partners"]) if not outbound and domain else 0
    return Peer(outbound, inbound, partners)


def recipient_domain(address: str) -> str:
    """The domain ``outbound_pairs`` files a recipient under, as ``domain_of`` writes
    domains (lower case, IDNs as A-labels); '' for an address without one, which no
    correspondent shares."""
    return domain_of(address) if "@" in address else ""


def record_outbound(store: Store, sender: str, recipient: str, when: float) -> None:
    """Count a message our user ``sender`` sent to ``recipient``."""
    sender, recipient = address_key(sender), address_key(recipient)
    store.execute(
        "INSERT INTO outbound_pairs (sender, recipient, recipient_domain, messages,"
        " first_seen, last_seen) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (sender, recipient)"
        " DO UPDATE SET messages = messages + 1, last_seen = excluded.last_seen",
        (sender, recipient, recipient_domain(recipient), when, when))


def symbols(peer: Peer, protect_after: int) -> list[Symbol]:
    """The bonus (and protection) a relationship earns."""
    if peer.exchanges:
        bonus = min(FIRST_BONUS + BONUS_PER_EXCHANGE * (peer.exchanges - 1), MAX_BONUS)
        protected = peer.exchanges >= protect_after
        reason = (f"known peer: {peer.outbound} message(s) sent to, {peer.inbound} received "
                  f"from this correspondent" + (" (protected)" if protected else ""))
        return [Symbol("PEER", -bonus, reason, Flag.PROTECT if protected else None,
                       trusts_sender=True)]
    if peer.domain_partners:
        return [Symbol("PEER_DOMAIN", -DOMAIN_BONUS,
                       f"recipient corresponds with {peer.domain_partners} address(es) "
                       "at the sender's domain", trusts_sender=True)]
    return []


def record_inbound(store: Store, internal: str, external: str, when: float) -> bool:
    """Count a good message from a correspondent our user wrote to; False if there is no
    such relationship (then it is not a peer's message)."""
    internal, external = address_key(internal), address_key(external)
    if not store.scalar("SELECT 1 FROM outbound_pairs WHERE sender = ? AND recipient = ?",
                        (internal, external)):
        return False
    store.execute(
        "INSERT INTO peer_inbound (internal, external, messages, first_seen, last_seen)"
        " VALUES (?, ?, 1, ?, ?) ON CONFLICT (internal, external) DO UPDATE SET"
        " messages = messages + 1, last_seen = excluded.last_seen",
        (internal, external, when, when))
    return True


# Precedence values of mail no person wrote to the recipient (vacation(1), list servers).
_BULK = frozenset({"bulk", "junk", "list"})


def automatic(headers: Message) -> bool:
    """Whether outbound mail was sent by a program answering mail rather than by our user:
    an auto-reply, vacation notice, ticket acknowledgement (RFC 3834 Auto-Submitted),
    read receipt or delivery report (multipart/report), or a list's copy.  Such mail
    implies no permission: anyone who writes to an auto-answering address would
    otherwise become its peer, and after a few messages a protected one."""
    submitted = str(headers.get("Auto-Submitted", "") or "").split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return True
    if str(headers.get("Precedence", "") or "").strip().lower() in _BULK:
        return True
    if any(headers.get(name) is not None for name in ("X-Autoreply", "X-Autorespond")):
        return True
    return headers.get_content_type() == "multipart/report"


def expire(store: Store, before: float) -> int:
    """Forget relationships unused since ``before`` (both directions)."""
    removed = store.purge("outbound_pairs", "last_seen < ?", (before,))
    removed += store.purge("peer_inbound", "last_seen < ?", (before,))
    # Inbound counts only mean something while our user's side of it is remembered.
    return removed + store.purge(
        "peer_inbound", "NOT EXISTS (SELECT 1 FROM outbound_pairs o"
        " WHERE o.sender = peer_inbound.internal AND o.recipient = peer_inbound.external)")
