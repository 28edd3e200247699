"""Release versions: dotted non-negative integers (``0.2.0``, ``27431``), compared by number.

Anything fancier (pre-releases, local tags) is refused rather than guessed at, because the
anti-rollback rule depends on an ordering everybody agrees on.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"(?:0|[1-9]\d{0,8})(?:\.(?:0|[1-9]\d{0,8})){0,7}")


class VersionError(ValueError):
    """A version string that is not dotted non-negative integers."""


def parse_version(text: str) -> tuple[int, ...]:
    """The comparable form of a version; trailing zeros do not count (1.0 == 1.0.0)."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise VersionError(f"version {text!r} is not dotted numbers like 1.4.2")
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def is_newer(candidate: str, installed: str | None) -> bool:
    """True when ``candidate`` is strictly newer than ``installed`` (None: nothing yet)."""
    if installed is None:
        return True
    return parse_version(candidate) > parse_version(installed)
