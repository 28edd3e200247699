"""Organisational domains (the registrable part of a name), from the Public Suffix List
bundled with the ``publicsuffixlist`` package (no download at run time)."""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()


@functools.lru_cache(maxsize=65536)
def organisational_domain(domain: str) -> str:
    """``mail.example.co.uk`` → ``example.co.uk``; a public suffix itself stays as it is."""
    domain = domain.strip().rstrip(".").lower()
    return _list().privatesuffix(domain) or domain
