"""Content and reputation checks: one module each, one interface (``Check`` in base.py).

Adding a check means writing one module and adding its class to ``CHECKS`` below.
The policy, not the check, decides what happens with the symbols a check yields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.checks.attachments import Attachments
from portcullis.checks.authentication import Authentication
from portcullis.checks.base import Check, Context, Stage
from portcullis.checks.bayes import BayesContent
from portcullis.checks.bwlist import BlackWhiteList, EnvelopeWhiteList
from portcullis.checks.dnsbl import Dnsbl
from portcullis.checks.greylist import Greylisting, GreylistUncertain
from portcullis.checks.harvest import HarvestDetection
from portcullis.checks.identity import Identity
from portcullis.checks.mta_reputation import MtaReputation
from portcullis.checks.peers import Relationships
from portcullis.checks.structure import MessageStructure
from portcullis.checks.uribl import UriBlocklist
from portcullis.checks.virus import VirusScan

if TYPE_CHECKING:
    from portcullis.services import Services

CHECKS: list[type[Check]] = [
    BlackWhiteList,
    MessageStructure,
    # defenses: connect, RCPT (white list first in the table, though all run concurrently)
    Dnsbl, EnvelopeWhiteList, HarvestDetection, Greylisting,
    # defenses: content
    Identity, Authentication, UriBlocklist, GreylistUncertain,
    VirusScan,
    Attachments,
    # reputation: content classifier, relationships (RCPT), MTA record (connect)
    BayesContent,
    Relationships,
    MtaReputation,
]


def build_checks(services: Services) -> list[Check]:
    """Instantiate every registered check that is enabled for these services."""
    checks = [cls(services) for cls in CHECKS]
    return [c for c in checks if c.enabled]


__all__ = ["CHECKS", "Check", "Context", "Stage", "build_checks"]
