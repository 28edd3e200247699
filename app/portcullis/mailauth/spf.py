"""SPF (RFC 7208): may this client send mail for the envelope sender's domain?

``check_host`` follows the RFC's evaluation: one ``v=spf1`` record per domain, the
mechanisms ``all include a mx ptr ip4 ip6 exists`` in order with their qualifiers, the
``redirect`` modifier, macros, at most 10 DNS-querying terms and 2 void lookups, syntax
errors anywhere give permerror, DNS timeouts and server failures give temperror.  Every
lookup goes through the given ``Resolver`` (async, bounded by ``[dns] timeout``).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from portcullis.addresses import IPAddress, parse_ip
from portcullis.resolver import DnsAnswer, DnsStatus, Resolver, askable

MAX_DNS_TERMS = 10      # include, a, mx, ptr, exists, redirect (RFC 7208 4.6.4)
MAX_VOID_LOOKUPS = 2    # lookups answering NXDOMAIN or no records
MAX_NAMES = 10          # MX hosts / PTR names looked at per mechanism
# Bounds on the CPU a sender's own DNS can cost (records reach 64 KB over TCP, and no
# timeout stops work between two lookups): real records total a few hundred terms, and
# a domain-spec holds a few macros.
MAX_TERMS = 1000        # terms read in one evaluation, its includes and redirects too
MAX_MACROS = 16         # macro-expands in one domain-spec (each costs a value's length)
MAX_DOMAIN_SPEC = 512   # characters of a domain-spec: a name and its macros' syntax


class SpfResult(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a result, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


QUALIFIERS = {"+": SpfResult.PASS, "-": SpfResult.FAIL, "~": SpfResult.SOFTFAIL,
              "?": SpfResult.NEUTRAL}


@dataclass(frozen=True)
class SpfOutcome:
    result: SpfResult
    domain: str          # the domain whose policy was evaluated (MAIL FROM or HELO)
    detail: str = ""     # the mechanism that matched, or what went wrong


class _Abort(Exception):
    def __init__(self, result: SpfResult, detail: str) -> None:
        super().__init__(detail)
        self.result = result


@dataclass(frozen=True)
class _Term:
    qualifier: str
    name: str            # mechanism (all, include, ...) or modifier name
    argument: str        # domain-spec / address, without the ":" or "="
    cidr4: int | None = None
    cidr6: int | None = None
    modifier: bool = False


_MECHANISM = re.compile(r"^([+?~-]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?=$|[:/])(.*)$",
                        re.IGNORECASE)
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_MACRO = re.compile(r"%(?:\{([A-Za-z])([0-9]*)(r?)([.\-+,/_=]*)\}|(%)|(_)|(-))",
                    re.IGNORECASE)
_CIDR = re.compile(r"^(.*?)(?:/([0-9]+))?(?://([0-9]+))?$")
# RFC 7208 7.1: a macro-string is macro-expands and visible characters other than '%';
# a domain-spec ends in "." toplabel ["."] or in a macro-expand (here also followed by
# a final dot, which published records use).
_MACRO_STRING = re.compile(r"(?:%\{[A-Za-z][0-9]*r?[.\-+,/_=]*\}|%[%_-]|[\x21-\x24\x26-\x7e])*",
                           re.IGNORECASE)
# The toplabel's first alternative is written [0-9]*[A-Za-z]..., the same set as the
# RFC's *alphanum ALPHA *alphanum but with one way to match it (no backtracking over
# every split of a run of letters).
_DOMAIN_END = re.compile(r"(?:\.(?:[0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*"
                         r"[A-Za-z0-9])\.?|(?:%\{[A-Za-z][0-9]*r?[.\-+,/_=]*\}|%[%_-])\.?)$",
                         re.IGNORECASE)
_CIDR_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}")
DOMAIN_MACROS = frozenset("slodiphv")          # c, r and t only in explanation text (7.2)
ALL_MACROS = DOMAIN_MACROS | frozenset("crt")


def sender_identity(mail_from: str, helo: str) -> tuple[str, str]:
    """(sender, domain) checked: MAIL FROM, or postmaster@HELO for the null sender.  A
    root dot (bank.test.) is left out of both: %{s} and %{o} name the domain as %{d}."""
    if "@" in mail_from:
        local, _, domain = mail_from.rpartition("@")
        domain = domain.lower().rstrip(".")
        return f"{local or 'postmaster'}@{domain}", domain
    domain = helo.strip().lower().rstrip(".")
    return f"postmaster@{domain}", domain


async def check_host(resolver: Resolver, ip: IPAddress, domain: str, sender: str,
                     helo: str = "") -> SpfOutcome:
    """Evaluate ``domain``'s SPF policy for mail from ``sender`` sent by ``ip``."""
    evaluation = _Evaluation(resolver, ip, sender, helo)
    try:
        result, detail = await evaluation.evaluate(domain)
    except _Abort as abort:
        return SpfOutcome(abort.result, domain, str(abort))
    return SpfOutcome(result, domain, detail)


def _valid_domain(domain: str) -> bool:
    """Whether SPF may ask for ``domain``: a name of two labels or more that DNS can
    carry.  The resolver answers others with an error, which is no temporary failure: as
    one, a sender's name (bank.example's subdomain in MAIL FROM, with a character without
    an IDNA form) made SPF a temperror of an aligned domain, and DMARC no failure."""
    labels = domain.rstrip(".").split(".")
    return len(domain) <= 253 and len(labels) >= 2 and all(
        0 < len(label) <= 63 for label in labels) and askable(domain)


class _Evaluation:
    def __init__(self, resolver: Resolver, ip: IPAddress, sender: str, helo: str) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.dns_terms = 0
        self.void_lookups = 0
        self.terms = 0
        self._ptr_names: list[str] | None = None     # the client's PTR names, asked once
        self._validated: dict[str, bool] = {}         # PTR name: resolves to the client

    # -- the record -------------------------------------------------------------------

    async def evaluate(self, domain: str) -> tuple[SpfResult, str]:
        domain = domain.rstrip(".").lower()
        if not _valid_domain(domain):
            return SpfResult.NONE, f"{domain!r} is not a domain"
        answer = await self.resolver.txt(domain)
        if answer.status.failed:
            raise _Abort(SpfResult.TEMPERROR, f"SPF lookup for {domain}: {_why(answer)}")
        records = [r for r in answer.records
                   if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
        if not records:
            return SpfResult.NONE, f"{domain} publishes no SPF record"
        if len(records) > 1:
            raise _Abort(SpfResult.PERMERROR, f"{domain} publishes {len(records)} SPF records")
        words = records[0].split()[1:]
        self._count_terms(domain, len(words))
        terms = [self._parse(domain, word) for word in words]
        redirects = [t for t in terms if t.modifier and t.name == "redirect"]
        if len(redirects) > 1 or len([t for t in terms if t.modifier and t.name == "exp"]) > 1:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: redirect or exp given twice")
        for term in terms:
            if term.modifier:
                continue
            if await self._matches(domain, term):
                argument = f":{term.argument}" if term.argument else ""
                return QUALIFIERS[term.qualifier or "+"], \
                    f"{domain}: {term.qualifier}{term.name}{argument}"
        if redirects:
            self._count_dns_term()
            target = await self._named_target(domain, redirects[0].argument)
            result, detail = await self.evaluate(target)
            if result is SpfResult.NONE:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: redirect to {target}, which has "
                                                  "no SPF record")
            return result, detail
        return SpfResult.NEUTRAL, f"{domain}: no mechanism matched"

    def _parse(self, domain: str, word: str) -> _Term:
        mechanism = _MECHANISM.match(word)
        if mechanism:
            qualifier, name, rest = mechanism.groups()
            name = name.lower()
            if name in ("all",) and rest:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: bad term {word!r}")
            if rest.startswith(":"):
                rest = rest[1:]
                if not rest:
                    raise _Abort(SpfResult.PERMERROR, f"{domain}: empty argument in {word!r}")
            elif rest and not rest.startswith("/"):
                raise _Abort(SpfResult.PERMERROR, f"{domain}: bad term {word!r}")
            cidr4 = cidr6 = None
            if name in ("a", "mx", "ip4", "ip6"):
                match = _CIDR.match(rest)
                assert match is not None
                rest, v4, v6 = match.groups()
                if any(v is not None and not _CIDR_LENGTH.fullmatch(v) for v in (v4, v6)) \
                        or (name in ("ip4", "ip6") and v6 is not None):
                    # ip4 and ip6 take one "/len" (RFC 7208 5.6); no leading zeros.
                    raise _Abort(SpfResult.PERMERROR, f"{domain}: bad prefix length in {word!r}")
                cidr4 = int(v4) if v4 is not None else None
                cidr6 = int(v6) if v6 is not None else None
                if name == "ip6" and v4 is not None:
                    cidr6, cidr4 = cidr4, None     # ip6:addr/len carries a v6 length
                if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
                    raise _Abort(SpfResult.PERMERROR, f"{domain}: bad prefix length in {word!r}")
            if name in ("include", "exists", "ip4", "ip6") and not rest:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: {name} needs an argument")
            if name in ("ip4", "ip6"):
                self._network(domain, name, rest, cidr4 if name == "ip4" else cidr6)
            elif rest:
                self._check_domain_spec(domain, rest)
            return _Term(qualifier, name, rest, cidr4, cidr6)
        modifier = _MODIFIER.match(word)
        if modifier:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if not value:
                    raise _Abort(SpfResult.PERMERROR, f"{domain}: empty {name}=")
                self._check_domain_spec(domain, value)
            else:
                # Unknown modifiers are ignored, but only when well formed (RFC 7208 6).
                self._check_macro_string(domain, value, ALL_MACROS)
            return _Term("", name, value, modifier=True)
        raise _Abort(SpfResult.PERMERROR, f"{domain}: unknown term {word!r}")

    def _network(self, domain: str, kind: str, text: str, prefix: int | None
                 ) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            if kind == "ip4":
                address4 = ipaddress.IPv4Address(text)
                return ipaddress.IPv4Network(f"{address4}/{32 if prefix is None else prefix}",
                                             strict=False)
            address6 = ipaddress.IPv6Address(text)
            return ipaddress.IPv6Network(f"{address6}/{128 if prefix is None else prefix}",
                                         strict=False)
        except ValueError:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: {kind}:{text} is not an "
                                              "address") from None

    # -- mechanisms -------------------------------------------------------------------

    async def _matches(self, domain: str, term: _Term) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            if (name == "ip4") != (self.ip.version == 4):
                return False
            prefix = term.cidr4 if name == "ip4" else term.cidr6
            return self.ip in self._network(domain, name, term.argument, prefix)
        self._count_dns_term()
        if name == "include":
            target = await self._named_target(domain, term.argument)
            result, _ = await self.evaluate(target)
            if result is SpfResult.TEMPERROR:
                raise _Abort(result, f"include:{target}: temporary error")
            if result in (SpfResult.PERMERROR, SpfResult.NONE):
                raise _Abort(SpfResult.PERMERROR, f"include:{target}: {result.value}")
            return result is SpfResult.PASS
        target = await self._domain_spec(domain, term.argument) if term.argument else domain
        if target is None:
            # A name no DNS can hold (%{h} of "HELO JUMPIN' JUPITER", %{l} of "a..b") is
            # one that does not exist: the term matches nothing, as a lookup answering
            # NXDOMAIN would (RFC 7208 4.3 by analogy; the RFC's test suite, "require-
            # valid-helo"), so a sender's choice of name cannot turn the record's -all
            # into a permerror.
            return False
        if name == "a":
            return self._in(await self._addresses(target), term)
        if name == "mx":
            answer = await self._lookup(target, "MX")
            if len(answer.records) > MAX_NAMES:
                raise _Abort(SpfResult.PERMERROR, f"mx:{target}: more than {MAX_NAMES} MX hosts")
            for host in answer.records:
                if self._in(await self._addresses(host, void_counts=False), term):
                    return True
            return False
        if name == "ptr":
            return await self._ptr_matches(target)
        if name == "exists":
            answer = await self._lookup(target, "A")
            return bool(answer.records)
        raise _Abort(SpfResult.PERMERROR, f"unknown mechanism {name}")

    def _in(self, addresses: tuple[str, ...], term: _Term) -> bool:
        prefix = term.cidr4 if self.ip.version == 4 else term.cidr6
        for text in addresses:
            address = parse_ip(text)
            if address is None or address.version != self.ip.version:
                continue
            length = prefix if prefix is not None else (32 if address.version == 4 else 128)
            if self.ip in ipaddress.ip_network(f"{address}/{length}", strict=False):
                return True
        return False

    async def _addresses(self, name: str, void_counts: bool = True) -> tuple[str, ...]:
        answer = await self._lookup(name, "A" if self.ip.version == 4 else "AAAA",
                                    void_counts)
        return answer.records

    async def _ptr_matches(self, target: str) -> bool:
        """RFC 7208 5.5: whether a validated name of the client is ``target`` or one of
        its subdomains (only such names are validated)."""
        for name in await self._client_names():
            if _within(name, target) and await self._names_client(name):
                return True
        return False

    async def _validated_name(self, domain: str) -> str:
        """%{p} (RFC 7208 7.3): a validated name of the client, ``domain`` itself or a
        subdomain of it preferred; "unknown" when there is none."""
        names = sorted(await self._client_names(),
                       key=lambda name: (name != domain, not _within(name, domain)))
        for name in names:
            if await self._names_client(name):
                return name
        return "unknown"

    async def _client_names(self) -> list[str]:
        """The client's first ``MAX_NAMES`` PTR names, asked once an evaluation; none
        when the lookup fails (RFC 7208 5.5: a failed PTR lookup is just no match)."""
        if self._ptr_names is None:
            answer = await self.resolver.lookup(_reverse_name(self.ip), "PTR")
            self._ptr_names = [] if answer.status.failed else \
                [name.lower() for name in answer.records[:MAX_NAMES]]
        return self._ptr_names

    async def _names_client(self, name: str) -> bool:
        """Whether ``name``'s addresses include the client's (a PTR name validated),
        asked once an evaluation: at most ``MAX_NAMES`` such lookups in all (RFC 7208
        4.6.4), however many ptr terms and %{p} macros."""
        if name not in self._validated:
            forward = await self.resolver.addresses(name, self.ip.version)
            self._validated[name] = any(parse_ip(a) == self.ip for a in forward.records)
        return self._validated[name]

    async def _lookup(self, name: str, rdtype: str, void_counts: bool = True) -> DnsAnswer:
        answer = await self.resolver.lookup(name, rdtype)
        if answer.status.failed:
            raise _Abort(SpfResult.TEMPERROR, f"{rdtype} lookup for {name}: {_why(answer)}")
        if void_counts and answer.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA):
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _Abort(SpfResult.PERMERROR, f"more than {MAX_VOID_LOOKUPS} lookups "
                                                  "found nothing")
        return answer

    def _count_terms(self, domain: str, count: int) -> None:
        self.terms += count
        if self.terms > MAX_TERMS:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: more than {MAX_TERMS} terms in the "
                                              "SPF records evaluated")

    def _count_dns_term(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _Abort(SpfResult.PERMERROR, f"more than {MAX_DNS_TERMS} DNS lookups")

    # -- macros -----------------------------------------------------------------------

    def _check_domain_spec(self, domain: str, spec: str) -> None:
        """Syntax errors anywhere in a record are a permerror before anything is
        evaluated (RFC 7208 4.6), not only once a term is reached."""
        if len(spec) > MAX_DOMAIN_SPEC:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: a domain-spec longer than "
                                              f"{MAX_DOMAIN_SPEC} characters")
        if self._check_macro_string(domain, spec, DOMAIN_MACROS) > MAX_MACROS:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: more than {MAX_MACROS} macros in "
                                              f"{spec[:100]!r}")
        if not _DOMAIN_END.search(spec):
            raise _Abort(SpfResult.PERMERROR, f"{domain}: {spec!r} is not a domain-spec")

    def _check_macro_string(self, domain: str, spec: str, letters: frozenset[str]) -> int:
        """The number of macro-expands with a letter in ``spec``; permerror for bad ones."""
        if not _MACRO_STRING.fullmatch(spec):
            raise _Abort(SpfResult.PERMERROR, f"{domain}: bad macro in {spec!r}")
        count = 0
        for match in _MACRO.finditer(spec):
            letter, digits = match.group(1), match.group(2)
            if letter is None:
                continue
            count += 1
            if letter.lower() not in letters:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: macro %{{{letter}}} not "
                                                  f"allowed in {spec!r}")
            if digits and int(digits) == 0:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: %{{{letter}0}} in {spec!r}")
        return count

    async def _domain_spec(self, domain: str, spec: str) -> str | None:
        """The name a domain-spec expands to, None when it is no name DNS can hold."""
        # The client's validated name costs lookups: only a spec naming %{p} asks.
        uses_p = any((m.group(1) or "").lower() == "p" for m in _MACRO.finditer(spec))
        validated = await self._validated_name(domain) if uses_p else "unknown"
        expanded = self._expand(domain, spec, validated).rstrip(".").lower()
        if len(expanded) > 253:
            # RFC 7208 7.3: cut leftmost labels until the name fits (at the first dot
            # that leaves at most 253 characters; none leaves no name).
            cut = expanded.find(".", len(expanded) - 254)
            expanded = expanded[cut + 1:] if cut >= 0 else ""
        return expanded if _valid_domain(expanded) else None

    async def _named_target(self, domain: str, spec: str) -> str:
        """The domain an include or redirect names: one whose expansion is no name is a
        permerror, as one publishing no record (RFC 7208 5.2, 6.1)."""
        target = await self._domain_spec(domain, spec)
        if target is None:
            raise _Abort(SpfResult.PERMERROR, f"{domain}: {spec!r} expands to a bad name")
        return target

    def _expand(self, domain: str, spec: str, validated: str) -> str:
        """``spec`` with its macros expanded; ``validated`` is %{p}."""
        local, _, sender_domain = self.sender.rpartition("@")
        values = {
            "s": self.sender, "l": local, "o": sender_domain, "d": domain,
            "i": _dotted(self.ip), "p": validated, "h": self.helo,
            "v": "in-addr" if self.ip.version == 4 else "ip6",
        }

        def one(match: re.Match[str]) -> str:
            letter, digits, reverse, delimiters, percent, underscore, dash = match.groups()
            if percent:
                return "%"
            if underscore:
                return " "
            if dash:
                return "%20"
            key = letter.lower()
            if key not in values:
                raise _Abort(SpfResult.PERMERROR, f"{domain}: macro %{{{letter}}} not allowed")
            parts = re.split("[" + re.escape(delimiters or ".") + "]", values[key])
            if reverse:
                parts.reverse()
            if digits:
                count = int(digits)
                if count == 0:
                    raise _Abort(SpfResult.PERMERROR, f"{domain}: %{{{letter}0}}")
                parts = parts[-count:]
            text = ".".join(parts)
            return urllib.parse.quote(text, safe="") if letter.isupper() else text

        return _MACRO.sub(one, spec)


def _dotted(ip: IPAddress) -> str:
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def _within(name: str, domain: str) -> bool:
    """Whether ``name`` is ``domain`` or one of its subdomains."""
    return name == domain or name.endswith("." + domain)


def _reverse_name(ip: IPAddress) -> str:
    return ip.reverse_pointer


def _why(answer: DnsAnswer) -> str:
    return answer.detail or answer.status.value
