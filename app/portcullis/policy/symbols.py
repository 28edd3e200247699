"""What checks produce (symbols) and what the policy answers (a decision)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# The virus scanner's finding (checks/virus.py): what makes an archived message one
# rejected as a virus, which only the super administrator may release or download.
VIRUS_SYMBOL = "CLAMAV_VIRUS"


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    TAG = "tag"
    REJECT = "reject"
    TEMPFAIL = "tempfail"

    @property
    def label(self) -> str:
        """The word used in the decision log (FAQ format)."""
        return {"accept": "Accepted", "tag": "Tagged", "reject": "Rejected",
                "tempfail": "TempFailed"}[self.value]


class Flag(enum.Enum):
    """A hard demand a symbol makes on the decision, strongest first (the values are
    identities only; ``decide`` applies the precedence).

    MALWARE   viruses and blocked attachments: rejected whoever sent them.
    UNSCANNED a mandatory scan (the virus scanner) could not be done: tempfailed whoever
              sent it, so nothing unscanned slips through a white list or peer protection.
    WHITELIST the administrator trusts the sender: accepted (malware aside).
    BLACKLIST the administrator refuses the sender: rejected.
    PROTECT   a known peer: never rejected or tempfailed for anything below, unless
              FORGED is there too.
    REJECT    a hard reject by a check (e.g. DNSBL), with its reason as the reply.
    TEMPFAIL  ask the client to come back later (e.g. greylisting).
    TEMPFAIL_IF_TAGGED  ask the client to come back later if the message would be tagged
              (greylisting of uncertain mail from senders that have not retried yet).
    FORGED    sender authentication says the sender is forged (SPF fail, DMARC fail where
              the domain asks for reject or quarantine, our own domain forged): a
              relationship with that address proves nothing, so PROTECT does not hold.
    """

    MALWARE = 1
    WHITELIST = 2
    BLACKLIST = 3
    PROTECT = 4
    REJECT = 5
    TEMPFAIL = 6
    TEMPFAIL_IF_TAGGED = 7
    UNSCANNED = 8
    FORGED = 9


@dataclass(frozen=True)
class Symbol:
    """One finding: ``name`` for rules and reports, ``score`` added to the total,
    ``reason`` for humans (and for the SMTP reply when the symbol decides)."""

    name: str
    score: float
    reason: str = ""
    flag: Flag | None = None
    # The recipient an RCPT-stage finding is about ('' for the message's own): a message
    # to several domains is archived with one recipient's findings, which the web UI
    # shows only to that recipient's administrators.
    recipient: str = ""
    # The score trusts the sender's address to be its own (a relationship with that
    # address): it counts for nothing when authentication shows the sender forged.
    trusts_sender: bool = False

    def to_json(self) -> dict:
        data = {"name": self.name, "score": round(self.score, 3), "reason": self.reason}
        if self.flag is not None:
            data["flag"] = self.flag.name.lower()
        if self.recipient:
            data["recipient"] = self.recipient
        return data

    @classmethod
    def from_json(cls, data: dict) -> Symbol:
        flag = Flag[data["flag"].upper()] if data.get("flag") else None
        return cls(data["name"], float(data["score"]), data.get("reason", ""), flag,
                   data.get("recipient", ""))


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    score: float
    reason: str                       # shown in the log and the SMTP reply
    symbols: tuple[Symbol, ...] = field(default=())
    deciding: Symbol | None = None    # the symbol that forced the verdict, if one did

    @property
    def log_label(self) -> str:
        """``Rejected Virus: Worm.X`` / ``Tagged`` / ``Accepted`` as in the FAQ's log."""
        return f"{self.verdict.label} {self.reason}".strip() if self.reason else self.verdict.label
