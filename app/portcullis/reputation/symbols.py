"""The symbols that speak of the sender, not of the message: what reputation knows of it
(relationships, the connecting MTA's record) and the administrator's white and black
lists.  Learners judge a message without them where a bonus would otherwise earn itself
more trust (``observer.py``, ``bayes/autolearn.py``); this module is the one list, and
``Evidence`` the one way to weigh a message with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from portcullis.policy import Flag, Symbol

# checks/peers.py (peers.py, oneway.py): who the sender is to the recipient.
RELATIONSHIPS = frozenset({"PEER", "PEER_DOMAIN", "ONE_WAY"})
# checks/mta_reputation.py (mta.py): what the connecting IP or network did before.
MTA = frozenset({"MTA_GOOD_IP", "MTA_GOOD_NET", "MTA_BAD_IP", "MTA_BAD_NET"})
REPUTATION = RELATIONSHIPS | MTA
# The administrator's say about a sender (checks/bwlist.py), whatever its symbol's name.
LISTS = frozenset({Flag.WHITELIST, Flag.BLACKLIST})


def about_sender(symbol: Symbol) -> bool:
    """Whether the symbol is reputation's or a list's view of the sender rather than
    evidence found in this message or its delivery."""
    return symbol.name in REPUTATION or symbol.flag in LISTS


@dataclass(frozen=True)
class Evidence:
    """A message's score split into its own evidence and what is known of its sender.

    What is known of the sender may hold a learner back but is never its reason to
    learn: its bonuses are no evidence for a good message, its penalties none for a bad
    one (else reputation would launder itself: a bonus earning more bonus)."""

    own: float = 0.0         # the message, its headers, its delivery
    bonuses: float = 0.0     # about the sender, below zero
    penalties: float = 0.0   # about the sender, above zero

    @classmethod
    def of(cls, symbols: Iterable[Symbol]) -> Evidence:
        own = bonuses = penalties = 0.0
        for symbol in symbols:
            if not about_sender(symbol):
                own += symbol.score
            elif symbol.score < 0:
                bonuses += symbol.score
            else:
                penalties += symbol.score
        return cls(own, bonuses, penalties)

    @property
    def as_spam(self) -> float:
        """The score to weigh the message as spam: reputation's bonuses count, its
        penalties do not."""
        return self.own + self.bonuses

    @property
    def as_good(self) -> float:
        """The score to weigh the message as good: reputation's penalties count, its
        bonuses do not."""
        return self.own + self.penalties
