"""Organisational domains (the registrable part of a name), from the Public Suffix List
bundled with the ``publicsuffixlist`` package (no download at run time), what counts as
a domain name at all, and DMARC's alignment of two names."""

from __future__ import annotations

import functools
import re

from publicsuffixlist import PublicSuffixList

from portcullis.addresses import ascii_domain

MAX_NAME = 253        # characters of a domain name (RFC 1035, without the final dot)
MAX_LABEL = 63
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# Longer text is refused before any conversion: no U-label form of a name is this long.
_MAX_TEXT = 4 * MAX_NAME


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()


def preload() -> None:
    """Read the list now (about 0.2 s): a gateway worker does it before it serves, not
    during its first message with every other session waiting."""
    _list()


def organisational_domain(domain: str) -> str:
    """``mail.example.co.uk`` → ``example.co.uk``; a public suffix itself stays as it is,
    and so does text that is not a domain name (too long a name or label)."""
    domain = domain.strip().rstrip(".").lower()
    # Names come from messages: only real ones may occupy the cache.
    if len(domain) > MAX_NAME or any(len(label) > MAX_LABEL for label in domain.split(".")):
        return domain
    return _organisational(domain)


@functools.lru_cache(maxsize=65536)
def _organisational(domain: str) -> str:
    return _list().privatesuffix(domain) or domain


def domain_name(text: str) -> str | None:
    """``text`` as a lower-case ASCII domain name (U-labels converted to A-labels, IDNA
    2008 like the rest of the gateway), or None when it is not one: empty, over 253
    characters, a label over 63, characters no label may hold."""
    name = text.strip().rstrip(".").lower()
    if not name or len(name) > _MAX_TEXT:
        return None
    try:
        name = ascii_domain(name)
    except (UnicodeError, ValueError):
        return None
    if len(name) > MAX_NAME or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return name


def aligned(domain: str, from_domain: str, strict: bool) -> bool:
    """Whether an SPF or DKIM domain aligns with the From domain (DMARC); names are
    compared in their A-label form (an envelope domain in UTF-8 is the same as its
    A-label)."""
    if strict:
        return _a_label(domain) == _a_label(from_domain)
    return relaxed_alignment(domain) == relaxed_alignment(from_domain)


def relaxed_alignment(domain: str) -> str:
    """What DMARC's relaxed alignment compares: the organisational domain of the name's
    A-label form (equal for two names when they align)."""
    return organisational_domain(_a_label(domain))


def _a_label(domain: str) -> str:
    return domain_name(domain) or domain.lower().rstrip(".")
