"""The symbols that speak of the sender, not of the message: what reputation knows of it
(relationships, the connecting MTA's record) and the administrator's white and black
lists.  Learners judge a message without them where a bonus would otherwise earn itself
more trust (``observer.py``, ``bayes/autolearn.py``); this module is the one list.
"""

from __future__ import annotations

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
