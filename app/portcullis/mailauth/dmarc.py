"""DMARC (RFC 7489): does the From domain's owner vouch for this message?

The policy is looked up at ``_dmarc.<From domain>``, else at ``_dmarc.<organisational
domain>``.  The message passes if SPF passed for an aligned envelope domain or a DKIM
signature of an aligned domain verified (relaxed: same organisational domain; strict:
the same name).  The result carries the owner's requested policy (``p``, or ``sp`` for
subdomains) for the scoring to weigh; nothing here rejects.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from portcullis.mailauth.dkimverify import DkimResult
from portcullis.mailauth.orgdomain import aligned, domain_name, organisational_domain
from portcullis.mailauth.spf import SpfOutcome, SpfResult
from portcullis.resolver import Resolver

POLICIES = ("none", "quarantine", "reject")
_PERCENT = re.compile(r"[0-9]{1,3}")     # 1*3DIGIT (RFC 7489 6.3), at most 100


class DmarcResult(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a result, not a password
    FAIL = "fail"
    NONE = "none"            # no (usable) DMARC record
    TEMPERROR = "temperror"
    PERMERROR = "permerror"  # the From domain is not a domain name: nothing to look up


@dataclass(frozen=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str
    strict_dkim: bool
    strict_spf: bool
    percent: int = 100          # pct=: the share of failing mail the policy is meant for


@dataclass(frozen=True)
class DmarcOutcome:
    result: DmarcResult
    domain: str                 # the From domain
    policy: str = ""            # what the owner asks for a failing message
    detail: str = ""


def strictest(outcomes: Sequence[DmarcOutcome]) -> DmarcOutcome | None:
    """The outcome that weighs most against a message judged for several From domains:
    a failure under the strictest policy, then errors, then no policy, then a pass (a
    pass stands only when every domain passed)."""
    return max(outcomes, key=_severity, default=None)


def _severity(outcome: DmarcOutcome) -> int:
    if outcome.result is DmarcResult.FAIL:
        return 4 + POLICIES.index(outcome.policy)
    return {DmarcResult.PERMERROR: 3, DmarcResult.TEMPERROR: 2, DmarcResult.NONE: 1,
            DmarcResult.PASS: 0}[outcome.result]


def not_a_domain() -> DmarcOutcome:
    """The outcome for a From domain that is no domain name (the text is not kept: it is
    the sender's, of any length)."""
    return DmarcOutcome(DmarcResult.PERMERROR, "", detail="the From domain is not a valid "
                                                          "domain name")


def parse_record(text: str) -> DmarcRecord | None:
    """A ``v=DMARC1`` record, or None if the text is not a usable one."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags.setdefault(key.strip().lower(), value.strip())
    if not _is_dmarc(text):
        return None
    policy = tags.get("p", "").lower()
    subdomain = tags.get("sp", policy).lower()
    if policy not in POLICIES or subdomain not in POLICIES:
        # RFC 7489 6.6.3: a record with a bad or missing p=, or a bad sp=, but a report
        # address counts as p=none; without one it is not a record.
        if "rua" not in tags:
            return None
        policy = subdomain = "none"
    percent = tags.get("pct", "100")
    return DmarcRecord(policy, subdomain,
                       tags.get("adkim", "r").lower() == "s",
                       tags.get("aspf", "r").lower() == "s",
                       # RFC 7489 6.3: a bad value is discarded for the default.
                       int(percent) if _PERCENT.fullmatch(percent) and int(percent) <= 100 else 100)


def _is_dmarc(text: str) -> bool:
    """Whether a TXT record starts with DMARC's version tag (any other is not DMARC's)."""
    return text.split(";", 1)[0].replace(" ", "").lower() == "v=dmarc1"


async def _record(resolver: Resolver, name: str) -> tuple[DmarcRecord | None, bool, bool]:
    """(record, published, failed) for ``_dmarc.<name>``: published means some v=DMARC1
    record is there, usable or not; failed means the lookup itself failed."""
    query = f"_dmarc.{name}"
    if domain_name(query) is None:
        # Longer than a DNS name may be: no record can be there (the resolver refuses the
        # name, and a From domain of 247 to 253 characters would dodge its organisation's
        # policy as a lookup that failed for now).
        return None, False, False
    answer = await resolver.txt(query)
    if answer.status.failed:
        return None, False, True
    published = [text for text in answer.records if _is_dmarc(text)]
    # RFC 7489 6.6.3: more than one record means no DMARC for the domain.
    return (parse_record(published[0]) if len(published) == 1 else None), \
        bool(published), False


async def evaluate(resolver: Resolver, from_domain: str, spf: SpfOutcome | None,
                   dkim_results: Sequence[DkimResult]) -> DmarcOutcome:
    """Judge a message whose From is at ``from_domain`` by its SPF and DKIM results."""
    name = domain_name(from_domain)
    if name is None:
        return not_a_domain()
    from_domain = name
    organisation = organisational_domain(from_domain)
    record, published, failed = await _record(resolver, from_domain)
    subdomain = False
    # RFC 7489 6.6.3: the organisation is asked only when the From domain publishes no
    # DMARC record at all; its unusable or multiple records end discovery there.
    if not published and not failed and organisation != from_domain:
        record, _, failed = await _record(resolver, organisation)
        subdomain = True
    if failed:
        return DmarcOutcome(DmarcResult.TEMPERROR, from_domain,
                            detail="the DMARC record could not be looked up")
    if record is None:
        return DmarcOutcome(DmarcResult.NONE, from_domain)
    policy = record.subdomain_policy if subdomain else record.policy
    if record.percent < 100:
        # RFC 7489 6.6.4: mail outside the sampled share gets the next lower policy.
        # Sampling at random would judge the same message differently each time, so
        # a roll-out (pct < 100) is taken as the lower policy for every message.
        policy = POLICIES[max(POLICIES.index(policy) - 1, 0)]
    if spf is not None and spf.result is SpfResult.PASS and \
            aligned(spf.domain, from_domain, record.strict_spf):
        return DmarcOutcome(DmarcResult.PASS, from_domain, policy,
                            f"SPF passed for aligned {spf.domain}")
    for result in dkim_results:
        if result.passed and aligned(result.domain, from_domain, record.strict_dkim):
            return DmarcOutcome(DmarcResult.PASS, from_domain, policy,
                                f"DKIM signature of aligned {result.domain} verified")
    # An aligned identity that could not be checked for now may pass on a retry: no
    # failure (and no p=reject weight) on missing evidence, as rspamd's DMARC_DNSFAIL.
    # A DKIM temperror without a domain (verification ran out of time) may be aligned.
    if spf is not None and spf.result is SpfResult.TEMPERROR and \
            aligned(spf.domain, from_domain, record.strict_spf):
        return DmarcOutcome(DmarcResult.TEMPERROR, from_domain, policy,
                            f"SPF of aligned {spf.domain} could not be checked")
    if any(r.result == "temperror" and (not r.domain or
                                        aligned(r.domain, from_domain, record.strict_dkim))
           for r in dkim_results):
        return DmarcOutcome(DmarcResult.TEMPERROR, from_domain, policy,
                            "a DKIM signature that may be aligned could not be checked")
    return DmarcOutcome(DmarcResult.FAIL, from_domain, policy,
                        f"neither SPF nor DKIM authenticated {from_domain} (policy {policy})")
