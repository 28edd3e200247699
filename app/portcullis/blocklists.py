"""Blocklist zones: the grammar of the ``dnsbl_zones`` and ``uribl_zones`` settings and
what a zone's answer codes mean.

One entry per zone::

    ZONE [name=LABEL] [CODES=ACTION ...]

``LABEL`` is the name shown in replies and reasons (default: the zone).  ``CODES`` is
``any``, an address (``127.0.0.2``), a range (``127.0.0.2-127.0.0.11`` or
``127.0.0.2-11``) or a network (``127.0.0.0/24``); ``ACTION`` is ``reject`` or a score
(negative for allow lists such as dnswl).  Without rules, any listing answer gets the
default action of the list kind (reject for client DNSBLs, a score for URI lists).
Answers in 127.255.255.0/24 are the zones' way of saying "query refused" (e.g. Spamhaus
through a public resolver) and never count as a listing; 127.0.0.1 never does either.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from portcullis.addresses import AddressError, normalise_domain

REJECT = "reject"
LISTING_ANSWERS = ipaddress.IPv4Network("127.0.0.0/8")
ERROR_ANSWERS = ipaddress.IPv4Network("127.255.255.0/24")
NEVER_LISTED = ipaddress.IPv4Address("127.0.0.1")     # RFC 5782 2.1: a DNSBL's test entry


class ZoneError(ValueError):
    """A blocklist zone entry that cannot be used; the message says why."""


@dataclass(frozen=True)
class CodeRule:
    """Answers ``first``..``last`` (inclusive) mean ``action``: "reject" or a score."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    action: str | float

    def matches(self, answer: ipaddress.IPv4Address) -> bool:
        return self.first <= answer <= self.last


@dataclass(frozen=True)
class BlocklistZone:
    zone: str
    label: str
    rules: tuple[CodeRule, ...]

    @property
    def tag(self) -> str:
        """The zone as part of a symbol name: ``zen.spamhaus.org`` → ``ZEN_SPAMHAUS_ORG``."""
        return re.sub(r"[^A-Z0-9]+", "_", self.label.upper()).strip("_")

    def judge(self, answers: Iterable[str]) -> tuple[str | float | None, str, bool]:
        """Return (action, code, refused): the strongest action any answer maps to
        (reject beats scores; the highest score wins), the code that gave it, and whether
        the zone answered with an error code instead."""
        best: str | float | None = None
        best_code = ""
        refused = False
        for text in answers:
            try:
                code = ipaddress.IPv4Address(text)
            except ValueError:
                continue
            # Outside 127/8 is no listing either (RFC 5782 2.1): a resolver that answers
            # names it cannot find with an address of its own does that.  Checked here,
            # not in the rules, so an administrator's rule (127.0.0.0/7, 127.0.0.1) cannot
            # make either a listing.
            if code in ERROR_ANSWERS or code not in LISTING_ANSWERS:
                refused, best_code = True, best_code or text
                continue
            if code == NEVER_LISTED:
                continue
            for rule in self.rules:
                if rule.matches(code) and _stronger(rule.action, best):
                    best, best_code = rule.action, text
        return best, best_code, refused and best is None


def _stronger(action: str | float, than: str | float | None) -> bool:
    if than is None:
        return True
    if than == REJECT:
        return False
    return action == REJECT or float(action) > float(than)


def parse_zone(text: str, default_action: str | float = REJECT) -> BlocklistZone:
    """Parse one ``dnsbl_zones`` / ``uribl_zones`` entry (see the module docstring)."""
    words = text.split()
    if not words:
        raise ZoneError("empty zone entry")
    try:
        zone = normalise_domain(words[0])
    except AddressError:
        raise ZoneError(f"{words[0]!r} is not a DNS zone") from None
    label = zone
    rules: list[CodeRule] = []
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if not eq or not value:
            raise ZoneError(f"{zone}: {word!r} should be name=LABEL or CODES=ACTION")
        if key == "name":
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value):
                raise ZoneError(f"{zone}: name {value!r} may hold letters, digits, . _ -")
            label = value
            continue
        rules.append(CodeRule(*_codes(zone, key), _action(zone, value)))
    if not rules:
        # Any 127/8 answer but 127.0.0.1 (never a listing) and the error range.
        rules.append(CodeRule(ipaddress.IPv4Address("127.0.0.2"),
                              ipaddress.IPv4Address("127.255.254.255"), default_action))
    return BlocklistZone(zone, label, tuple(rules))


def parse_zones(entries: Sequence[str], default_action: str | float = REJECT
                ) -> list[BlocklistZone]:
    """Parse every entry; raise ZoneError naming the first bad one."""
    zones = [parse_zone(entry, default_action) for entry in entries]
    seen = set()
    for zone in zones:
        if zone.zone in seen:
            raise ZoneError(f"{zone.zone}: listed twice")
        seen.add(zone.zone)
    return zones


def _codes(zone: str, text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    try:
        if text == "any":
            return LISTING_ANSWERS[2], ERROR_ANSWERS[0] - 1
        if "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            return net[0], net[-1]
        first_text, dash, last_text = text.partition("-")
        first = ipaddress.IPv4Address(first_text)
        if not dash:
            return first, first
        if last_text.isdigit() and "." not in last_text:
            last_text = first_text.rsplit(".", 1)[0] + "." + last_text
        last = ipaddress.IPv4Address(last_text)
    except ValueError:
        raise ZoneError(f"{zone}: {text!r} is not an answer code, range or network") from None
    if last < first:
        raise ZoneError(f"{zone}: range {text!r} ends before it starts")
    return first, last


def _action(zone: str, text: str) -> str | float:
    if text == REJECT:
        return REJECT
    try:
        score = float(text)
    except ValueError:
        raise ZoneError(f"{zone}: action {text!r} must be 'reject' or a score") from None
    if not -100 <= score <= 100:
        raise ZoneError(f"{zone}: score {text} must be between -100 and 100")
    return score


def validate_zones(entries: Sequence[str]) -> None:
    """The settings' check for ``dnsbl_zones`` and ``uribl_zones``."""
    parse_zones(entries)


class ZoneCache:
    """Parsed zones for the current setting value (parsed once per change)."""

    def __init__(self, default_action: str | float) -> None:
        self.default_action = default_action
        self._key: tuple[str, ...] | None = None
        self._zones: list[BlocklistZone] = []

    def get(self, entries: Sequence[str]) -> list[BlocklistZone]:
        key = tuple(entries)
        if key != self._key:
            zones = []
            for entry in key:
                # Settings are validated when stored; a bad seed from the configuration
                # file is skipped here rather than disabling every zone.
                try:
                    zones.append(parse_zone(entry, self.default_action))
                except ZoneError:
                    continue
            self._key, self._zones = key, zones
        return self._zones
