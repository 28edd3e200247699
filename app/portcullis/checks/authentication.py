"""Sender authentication: SPF, DKIM and DMARC (``mailauth/``), and forged own domains.

SPF and DKIM run concurrently, then DMARC weighs them for each From domain (the
strictest outcome stands; a From domain that is no domain name is a permerror).  Results are
scores, never hard verdicts: forwarding breaks SPF and mailing lists break DKIM, and a
domain owner's ``p=reject`` is a strong hint, not an order.  DNS failures give
``*_TEMPERROR`` symbols with no score (fail open).  A message claiming one of our
protected domains as its sender (envelope or From) from outside, with neither SPF nor a
DKIM signature of that domain to show for it, scores ``FORGED_OWN_DOMAIN``.  What was
found also goes to the internal mail host as an Authentication-Results header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from email.message import Message
from typing import TYPE_CHECKING, Any

from portcullis.addresses import header_addresses, matches_any
from portcullis.checks import eager
from portcullis.checks.base import Check, Context, Stage
from portcullis.mailauth import dkimverify, dmarc, results, spf
from portcullis.mailauth.dkimverify import DkimResult
from portcullis.mailauth.dmarc import DmarcOutcome, DmarcResult
from portcullis.mailauth.orgdomain import domain_name, relaxed_alignment
from portcullis.mailauth.spf import SpfOutcome, SpfResult
from portcullis.policy import Flag, Symbol

if TYPE_CHECKING:
    from portcullis.services import Services

SPF_SCORES = {SpfResult.PASS: -0.2, SpfResult.FAIL: 3.5, SpfResult.SOFTFAIL: 1.0,
              SpfResult.NEUTRAL: 0.0, SpfResult.NONE: 0.0, SpfResult.PERMERROR: 0.5,
              SpfResult.TEMPERROR: 0.0}
DKIM_VALID, DKIM_INVALID = -0.2, 1.0
DMARC_PASS = -0.5
DMARC_FAIL = {"reject": 6.0, "quarantine": 3.0, "none": 0.5}
DMARC_PERMERROR = 0.5     # a From domain that is no domain name
FORGED_OWN_DOMAIN = 3.0
LOOKUP_ROUNDS = 4     # a bound on each part: this many resolver timeouts
MAX_FROM_DOMAINS = 5  # From domains judged by DMARC; more is a permerror besides
MAX_FROM_SEEN = 50    # From domains looked at for forged own domains


class Authentication(Check):
    name = "authentication"
    stage = Stage.DATA
    description = "SPF, DKIM and DMARC of the sender, and forged own-domain senders"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.budget = services.config.dns.timeout * LOOKUP_ROUNDS
        self.timeout = self.budget * 2 + 5

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None and ctx.content is not None
        ip = ctx.ip
        if not ctx.snapshot.settings["sender_authentication"] or ip is None:
            return []
        resolver = self.services.resolver
        sender, spf_domain = spf.sender_identity(ctx.mail_from, ctx.helo)
        from_domains, invalid = _from_domains(ctx)
        spf_outcome, dkim_results = await self._together(
            (spf.check_host(resolver, ip, spf_domain, sender, ctx.helo),
             SpfOutcome(SpfResult.TEMPERROR, spf_domain, "SPF evaluation took too long")),
            # The signatures DMARC can use are verified first.
            (dkimverify.verify(resolver, ctx.content, from_domains[:MAX_FROM_DOMAINS]),
             [DkimResult("", "", "temperror", "DKIM verification took too long")]))
        # RFC 7489 6.6.1: with several From domains, each is judged and the strictest
        # outcome stands (a second address must not dodge the first one's policy).
        outcomes = await self._together(*(
            (dmarc.evaluate(resolver, domain, spf_outcome, dkim_results),
             DmarcOutcome(DmarcResult.TEMPERROR, domain,
                          detail="DMARC evaluation took too long"))
            for domain in from_domains[:MAX_FROM_DOMAINS]))
        if invalid:
            outcomes.append(dmarc.not_a_domain())
        if len(from_domains) > MAX_FROM_DOMAINS:
            # The domains past the cap go unjudged, and any of them may ask for reject:
            # five junk domains in front of ceo@paypal.example must not dodge paypal's
            # policy.  No real mail has so many authors (OpenDMARC can refuse any
            # multi-valued From), so the message fails as under the strictest policy.
            outcomes.append(DmarcOutcome(DmarcResult.FAIL, "", "reject", detail=(
                f"more than {MAX_FROM_DOMAINS} From domains, not all of them judged")))
        dmarc_outcome = dmarc.strictest(outcomes)
        ctx.headers.append(results.header_field(
            self.services.config.smtp.hostname, mail_from=ctx.mail_from, helo=ctx.helo,
            spf=spf_outcome, dkim=dkim_results, dmarc=dmarc_outcome))
        return [*spf_symbols(spf_outcome), *dkim_symbols(dkim_results),
                *dmarc_symbols(dmarc_outcome),
                *forged_own_domain(ctx, from_domains, spf_outcome, dkim_results)]

    async def _together(self, *parts: tuple[Coroutine[Any, Any, Any], Any]) -> list[Any]:
        """The results of the parts' work, run concurrently like ``asyncio.gather``,
        each bounded by ``budget`` (its fallback when it runs out) and started at once
        (eager.start): the resolver's cache answers most of this work without waiting,
        and a task and a timer apiece cost more than the work itself."""
        started = [eager.start(work, self.budget) for work, _ in parts]
        try:
            results = []
            for future, (_, fallback) in zip(started, parts, strict=True):
                try:
                    results.append(await future)
                except TimeoutError:
                    results.append(fallback)
            return results
        finally:
            for future in started:      # the caller failed or was cancelled: so are they
                future.cancel()


def _from_domains(ctx: Context) -> tuple[list[str], bool]:
    """The distinct domains of the From addresses (ASCII, valid names; at most
    ``MAX_FROM_SEEN``) in order of appearance, and whether some address had a domain that
    is not a domain name."""
    addresses = header_addresses(_from_fields(ctx.message))
    domains: dict[str, None] = {}
    invalid = False
    for _, address in addresses:
        text = address.rpartition("@")[2]
        if "@" not in address or not text:
            continue
        name = domain_name(text)
        if name is None:
            invalid = True
        else:
            domains[name] = None
            if len(domains) == MAX_FROM_SEEN:
                break
    return list(domains), invalid


def _from_fields(message: Message) -> list[str]:
    """The From fields' text, raw UTF-8 (RFC 6532) decoded.  The message is parsed with
    compat32, which keeps 8-bit bytes as surrogate escapes and turns them into U+FFFD
    when a field is read the usual way; bytes that are not UTF-8 stay escaped (and such a
    domain is then no domain name)."""
    fields = []
    for name, value in message.raw_items():
        if name.lower() != "from":
            continue
        text = value if isinstance(value, str) else str(value)
        with contextlib.suppress(UnicodeError):
            text = text.encode("ascii", "surrogateescape").decode("utf-8")
        fields.append(text)
    return fields


def spf_symbols(outcome: SpfOutcome) -> list[Symbol]:
    if not outcome.domain:
        return []
    text = f"SPF {outcome.result.value} for {outcome.domain}"
    if outcome.detail and outcome.result is not SpfResult.NONE:
        text += f" ({outcome.detail})"
    forged = Flag.FORGED if outcome.result is SpfResult.FAIL else None
    return [Symbol(f"SPF_{outcome.result.value.upper()}", SPF_SCORES[outcome.result], text,
                   forged)]


def dkim_symbols(results: list[DkimResult]) -> list[Symbol]:
    # A failure under a key in testing mode (neutral) counts as no signature at all.
    results = [r for r in results if r.result != "neutral"]
    if not results:
        return []
    valid = [r for r in results if r.passed]
    if valid:
        signers = ", ".join(sorted({f"{r.domain} (s={r.selector})" for r in valid}))
        return [Symbol("DKIM_VALID", DKIM_VALID, f"DKIM signature verified: {signers}")]
    if any(r.result == "temperror" for r in results):
        detail = next(r.detail for r in results if r.result == "temperror")
        return [Symbol("DKIM_TEMPERROR", 0.0, f"DKIM not verified: {detail}")]
    # A signature that verifies but leaves part of the body unsigned (l=) earns no credit,
    # but it is no forgery either: mailing lists append footers to signed mail.
    policy = [r for r in results if r.result == "policy"]
    first = (policy or results)[0]
    who = f"{first.domain} (s={first.selector}): " if first.domain else ""
    if policy:
        return [Symbol("DKIM_POLICY", 0.0, f"DKIM signature not trusted: {who}{first.detail}")]
    return [Symbol("DKIM_INVALID", DKIM_INVALID, f"DKIM signature invalid: {who}{first.detail}")]


def dmarc_symbols(outcome: DmarcOutcome | None) -> list[Symbol]:
    if outcome is None or outcome.result is DmarcResult.NONE:
        return []
    if outcome.result is DmarcResult.PASS:
        return [Symbol("DMARC_PASS", DMARC_PASS, f"DMARC pass for {outcome.domain}: "
                                                 f"{outcome.detail}")]
    if outcome.result is DmarcResult.TEMPERROR:
        return [Symbol("DMARC_TEMPERROR", 0.0, f"DMARC for {outcome.domain}: {outcome.detail}")]
    if outcome.result is DmarcResult.PERMERROR:
        return [Symbol("DMARC_PERMERROR", DMARC_PERMERROR, f"DMARC: {outcome.detail}")]
    # Only a domain that asks for failing mail to be refused or quarantined says it is
    # forged; p=none is a domain still finding out who sends for it.
    forged = Flag.FORGED if outcome.policy in ("reject", "quarantine") else None
    judged = f" for {outcome.domain}" if outcome.domain else ""
    return [Symbol(f"DMARC_FAIL_{outcome.policy.upper()}", DMARC_FAIL[outcome.policy],
                   f"DMARC fail{judged}: {outcome.detail}", forged)]


def forged_own_domain(ctx: Context, from_domains: list[str], spf_outcome: SpfOutcome,
                      dkim_results: list[DkimResult]) -> list[Symbol]:
    """Our own protected domain as the sender, from outside, with nothing to prove it."""
    assert ctx.snapshot is not None
    # The envelope domain as protected domains are kept (A-labels, no trailing dot):
    # MAIL FROM:<ceo@corp.example.> claims corp.example as much as the plain spelling.
    envelope = domain_name(ctx.sender_domain) if ctx.sender_domain else None
    claimed = sorted({d for d in [envelope, *from_domains]
                      if d and matches_any(d, ctx.snapshot.domains)})
    # Either proof counts for the whole organisation, as DMARC's relaxed alignment: a
    # mailing service sends our From with an SPF-passing bounce subdomain of ours.  SPF
    # names the envelope domain as written (bücher.example), claims are A-labels: both
    # are compared in their A-label form.
    passed = [r.domain for r in dkim_results if r.passed]
    if spf_outcome.result is SpfResult.PASS:
        passed.append(spf_outcome.domain)
    proven = {relaxed_alignment(domain) for domain in passed}
    for domain in claimed:
        if relaxed_alignment(domain) not in proven:
            return [Symbol("FORGED_OWN_DOMAIN", FORGED_OWN_DOMAIN,
                           f"sender claims protected domain {domain} from outside "
                           f"({ctx.client_ip}) without SPF or DKIM to show for it",
                           Flag.FORGED)]
    return []
