"""One-way relationships: newsletters and other mail our users receive but never answer.

Good mail (delivered, and scoring below the middle of the Tag band before any reputation
bonus) from the same envelope sender, through the same MTA network, to the same user earns
a credit at most once per ``one_way_interval``: a burst of mail earns one, steady mail
over days earns many.  From ``one_way_min_messages`` credits on, the sender's mail to that
user gets a bonus that grows with each credit up to ``MAX_BONUS``, so a newsletter's
[SPAM?] tag goes away by itself within days.  The bonus never protects, and a user who
forwards one of the sender's messages to spam@ erases that user's relationship.
"""

from __future__ import annotations

from dataclasses import dataclass

from portcullis.addresses import address_key
from portcullis.policy import Symbol
from portcullis.reputation.peers import correspondent
from portcullis.store import Store

FIRST_BONUS = 2.0
BONUS_PER_CREDIT = 1.0
MAX_BONUS = 5.0


@dataclass(frozen=True)
class OneWay:
    credits: int
    first_seen: float


def lookup(store: Store, sender: str, recipient: str, network: str) -> OneWay | None:
    """The relationship of ``sender`` to our user ``recipient`` through ``network``, both
    addresses in ``address_key``'s form, however they are written."""
    rows = store.query_values(
        "SELECT credits, first_seen FROM one_way WHERE sender = ? AND recipient = ?"
        " AND network = ?", (address_key(sender), address_key(recipient), network))
    return OneWay(int(rows[0][0]), float(rows[0][1])) if rows else None


def symbols(relation: OneWay | None, min_credits: int) -> list[Symbol]:
    if relation is None or relation.credits < min_credits:
        return []
    bonus = min(FIRST_BONUS + BONUS_PER_CREDIT * (relation.credits - min_credits), MAX_BONUS)
    return [Symbol("ONE_WAY", -bonus, f"regular sender: {relation.credits} good message(s) "
                   "to this recipient from this network", trusts_sender=True)]


def record_good(store: Store, sender: str, recipient: str, network: str, when: float,
                interval: float) -> None:
    """Credit a good message, at most once per ``interval`` per relationship."""
    store.execute(
        "INSERT INTO one_way (sender, recipient, network, credits, last_credit, first_seen,"
        " last_seen) VALUES (?, ?, ?, 1, ?, ?, ?)"
        " ON CONFLICT (sender, recipient, network) DO UPDATE SET"
        " credits = credits + (excluded.last_credit - last_credit >= ?),"
        " last_credit = CASE WHEN excluded.last_credit - last_credit >= ?"
        "   THEN excluded.last_credit ELSE last_credit END,"
        " last_seen = excluded.last_seen",
        (address_key(sender), address_key(recipient), network, when, when, when, interval,
         interval))


def forget_sender(store: Store, sender: str, recipient: str) -> int:
    """Erase a sender's one-way relationships with a user who reported its mail as spam.
    Only that user's: the sender in a reported spam may be forged, and one report of a
    spam claiming to be the bank's newsletter must not cost every other user its bonus."""
    return store.execute("DELETE FROM one_way WHERE sender = ? AND recipient = ?",
                         (correspondent(sender), address_key(recipient)))


def expire(store: Store, before: float) -> int:
    return store.purge("one_way", "last_seen < ?", (before,))
