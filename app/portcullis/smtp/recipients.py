"""Where a recipient's mail goes, and whether the gateway takes it (the RCPT stage).

Routing: a protected domain's mail goes to its internal mail host; mail from a relay to
any other domain goes out through the local Postfix; anything else is a relay attempt.
Validation (inbound only), cheapest first: the domain's valid-address list, then the
callout cache, then the internal host's own answer to RCPT (the callout, made on the very
connection that will carry the message), whose result is cached both ways.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from portcullis.addresses import domain_of
from portcullis.config import CalloutConfig, HostPort
from portcullis.directory.domains import Domain
from portcullis.directory.snapshot import Snapshot
from portcullis.directory.valid_addresses import has_addresses, is_listed
from portcullis.policy import Symbol
from portcullis.smtp.nexthop import Reply
from portcullis.smtp.virtual import VirtualMailbox
from portcullis.store import Store, StoreError

log = logging.getLogger(__name__)


class Direction(enum.StrEnum):
    INBOUND = "inbound"      # from the Internet to a protected domain: filtered
    INTERNAL = "internal"    # from a relay to a protected domain: trusted
    OUTBOUND = "outbound"    # from a relay to the Internet: trusted, teaches reputation
    VIRTUAL = "virtual"      # to an address the appliance itself answers (e.g. spam@)


@dataclass(frozen=True)
class Route:
    direction: Direction
    hop: HostPort | None       # None for virtual mailboxes
    domain: Domain | None      # the protected domain, for inbound and internal mail
    mailbox: VirtualMailbox | None = None

    @property
    def filtered(self) -> bool:
        return self.direction is Direction.INBOUND and self.domain is not None \
            and self.domain.filtering

    def same_transaction(self, other: Route) -> bool:
        """Recipients of one transaction must share next hop and treatment (else 452)."""
        return (self.hop, self.direction, self.filtered, self.mailbox) == \
            (other.hop, other.direction, other.filtered, other.mailbox)


RELAY_DENIED = Reply(554, "5.7.1 Relay access denied: {rcpt} is not a protected domain "
                          "(relay denied)")
SENDER_ROUTING = Reply(554, "5.7.1 <{rcpt}>: Relay access denied: sender-specified routing"
                            " (% ! or @ in the local part)")
NEXT_TRANSACTION = Reply(452, "4.5.3 Recipient for another mail host: send it in a "
                              "new transaction")
USER_UNKNOWN = Reply(550, "5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
# Postfix's answer when a lookup table fails: the domain's list cannot say who exists.
LOOKUP_FAILURE = Reply(451, "4.3.0 <{rcpt}>: Temporary lookup failure")
NOT_VALIDATED_LATER = Reply(451, "4.4.3 <{rcpt}>: Recipient cannot be verified now, "
                                 "try again later")


NO_POSTMASTER = Reply(451, "4.3.5 Postmaster has no destination here yet, try again later")


def is_bare_postmaster(recipient: str) -> bool:
    """RCPT TO:<postmaster> with no domain, which RFC 5321 4.5.1 says MUST be accepted."""
    return recipient.lower() == "postmaster"


def postmaster_address(snapshot: Snapshot, configured: str, hostname: str) -> str | None:
    """Where mail to the bare ``postmaster`` goes: the configured address, else
    postmaster@ the protected domain the gateway's hostname is or lies in (the nearest:
    mx.example.com tries itself, then example.com), as Postfix appends $myorigin.  None
    when neither names a protected domain: mail there would be refused as a relay
    attempt, so the client is asked to retry while the administrator sets
    ``[smtp] postmaster``."""
    if configured:
        return configured if domain_of(configured) in snapshot.domains else None
    labels = hostname.lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):
        if (domain := ".".join(labels[start:])) in snapshot.domains:
            return f"postmaster@{domain}"
    return None


def has_sender_routing(recipient: str) -> bool:
    """``user%elsewhere@protected``, ``elsewhere!user@protected`` or a quoted local part
    holding ``@``: an internal host that trusts the gateway (mynetworks) rewrites these to
    ``user@elsewhere`` and relays them, so from the Internet they are relay attempts
    (Postfix's allow_untrusted_routing = no)."""
    return any(c in recipient.rpartition("@")[0] for c in "%!@")


def route(snapshot: Snapshot, client_is_relay: bool, recipient: str,
          outbound_hop: HostPort, mailboxes: Sequence[VirtualMailbox] = ()) -> Route | None:
    for mailbox in mailboxes:
        if mailbox.claims(recipient, snapshot):
            return Route(Direction.VIRTUAL, None, None, mailbox)
    domain = snapshot.domains.get(domain_of(recipient))
    if domain is not None:
        direction = Direction.INTERNAL if client_is_relay else Direction.INBOUND
        return Route(direction, domain.mail_host, domain)
    if client_is_relay:
        return Route(Direction.OUTBOUND, outbound_hop, None)
    return None


class Validity(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"
    UNCHECKABLE = "uncheckable"     # the domain's own set-up can validate no one


@dataclass(frozen=True)
class Refusal:
    """A recipient refused by validation: the reply, what the learners count it as
    (``RecipientRefused.reason``: only "unknown" counts towards harvesting and takes back
    greylisting's pass) and the decision log's words."""
    reply: Reply
    reason: str
    label: str


UNKNOWN_RECIPIENT = Refusal(USER_UNKNOWN, "unknown", "User unknown")
# A configuration error of the domain's, not the client's doing: deferred, so no mail is
# lost while the administrator fills the list, and counted against no one.
EMPTY_LIST = Refusal(LOOKUP_FAILURE, "unverifiable", "Valid address list empty")


@dataclass(frozen=True)
class Validation:
    validity: Validity
    source: str                  # "list", "cache", "callout" or "none"
    reply: Reply | None = None   # the internal host's answer, when it was asked


_ENHANCED_STATUS = re.compile(r"\s*5\.1\.(\d{1,3})(?:\s|$)")
# RFC 3463: 5.1.1 bad destination mailbox, 5.1.2 bad destination system, 5.1.3 bad
# destination mailbox address syntax, 5.1.6 mailbox has moved, 5.1.10 null MX (RFC 7505).
# 5.1.0, 5.1.7 and 5.1.8 are about the sender; other classes about policy, size, quota.
_NO_SUCH_RECIPIENT = frozenset({"1", "2", "3", "6", "10"})
_ANY_ENHANCED_STATUS = re.compile(r"\s*[245]\.\d{1,3}\.\d{1,3}(?:\s|$)")


def says_no_such_recipient(reply: Reply) -> bool:
    """Whether a permanent RCPT refusal says the recipient itself does not exist (an
    enhanced status code of RFC 3463 that names it), so it holds for every sender.

    Anything else must not be remembered: a refusal about this sender (Postfix checks
    the sender at RCPT), client or message would let any client make a real mailbox
    "User unknown" for everyone, for as long as the negative result is kept.  A bare
    550 says too little to tell.
    """
    enhanced = _ENHANCED_STATUS.match(reply.text)
    return reply.code >= 500 and enhanced is not None and enhanced[1] in _NO_SUCH_RECIPIENT


def refusal_reason(reply: Reply) -> str:
    """What the internal host's permanent RCPT refusal counts as for the learners:
    "unknown" (harvest detection and MTA reputation count it against the client) when it
    says the recipient does not exist, or says no more (a bare 550 of an older server);
    "internal" when it is about something else, as a full mailbox (5.2.2) or that host's
    own policy: a legitimate server writing to a full mailbox is no dictionary attacker."""
    if says_no_such_recipient(reply) or not _ANY_ENHANCED_STATUS.match(reply.text):
        return "unknown"
    return "internal"


def lookup_key(address: str) -> str:
    """The form a recipient is looked up and remembered in (valid-address list, callout
    cache): lower case, its domain in A-labels as lists hold it, so dave@bücher.example
    is dave@xn--bcher-kva.example."""
    return f"{address.rpartition('@')[0].lower()}@{domain_of(address)}"


class CalloutCache:
    """Positive and negative results of asking internal hosts about recipients."""

    def __init__(self, store: Store, config: CalloutConfig) -> None:
        self.store = store
        self.config = config

    def get(self, address: str) -> Validation | None:
        now = time.time()
        rows = self.store.query(
            "SELECT valid, expires FROM callout_cache WHERE address = ? AND expires > ?",
            (address, now))
        if not rows or rows[0]["expires"] > now + self._ttl(bool(rows[0]["valid"])):
            # Past its TTL from now, an entry was stamped by a clock that ran ahead and
            # was set back: a stale "unknown" refused a real user (550) until the clock
            # caught up.  The internal host is asked again instead.
            return None
        return Validation(Validity.VALID if rows[0]["valid"] else Validity.INVALID, "cache")

    def _ttl(self, valid: bool) -> float:
        return self.config.positive_ttl if valid else self.config.negative_ttl

    def put(self, address: str, valid: bool, reply: Reply) -> None:
        """Remember the internal host's answer (best effort: it is given at RCPT, when the
        internal host has already taken the recipient into its transaction, and an error
        here would refuse a recipient that then gets the message anyway)."""
        ttl = self._ttl(valid)
        try:
            self.store.execute(
                "INSERT INTO callout_cache (address, valid, reply, expires) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (address) DO UPDATE SET valid = excluded.valid,"
                " reply = excluded.reply, expires = excluded.expires",
                (address, valid, f"{reply.code} {reply.text}"[:300], time.time() + ttl))
        except StoreError as exc:
            log.warning("callout result for %s not remembered: %s", address, exc)

    def forget(self, address: str) -> None:
        self.store.execute("DELETE FROM callout_cache WHERE address = ?", (address,))

    def purge_expired(self) -> int:
        """Remove the expired entries, and those stamped by a clock that was set back
        (their expiry further ahead than their TTL), in batches (store.clock's rule)."""
        now = time.time()
        return self.store.purge(
            "callout_cache", "expires <= ? OR expires > ? + CASE WHEN valid THEN ? ELSE ? END",
            (now, now, self.config.positive_ttl, self.config.negative_ttl), key="address")


def validate_before_callout(store: Store, cache: CalloutCache, domain: Domain,
                            address: str) -> Validation | None:
    """What is known without asking the internal host (None: ask it, if allowed)."""
    if is_listed(store, address):
        return Validation(Validity.VALID, "list")
    # RFC 5321 4.5.1: postmaster must be taken for every domain served, and a list
    # imported from a directory seldom holds it: the internal host decides.
    if domain.smtp_validation or address.rpartition("@")[0] == "postmaster":
        return cache.get(address)
    if domain.reject_non_validated and not has_addresses(store, domain.name):
        # Validated by its list alone, and the list is empty (emptied by hand, or never
        # filled): every recipient would be refused as unknown, and its mail lost.
        return Validation(Validity.UNCHECKABLE, "empty list")
    return Validation(Validity.UNKNOWN, "none")


def not_validated_symbol(address: str) -> Symbol:
    return Symbol("RCPT_NOT_VALIDATED", 1.0, f"recipient {address} could not be validated")
