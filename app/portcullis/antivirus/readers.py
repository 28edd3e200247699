"""What the readers of archive and document formats raise (``cabinet``, ``sevenzip``,
``iso9660``, ``udf``, ``office``, ...): one set of errors, so that the attachment
inventory treats every format alike; and ``Stored``, a member of a format that keeps its
files as they are (or that is read only that far)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stored:
    """A file in an archive: ``data`` is its bytes as stored; else, when it is packed by
    a method read here, ``unpack(n)`` decodes its first n bytes (raising Unreadable);
    else only its name can be known (a method not read here, continued in another
    volume, encrypted)."""

    name: str
    size: int
    data: bytes | None
    encrypted: bool = False
    unpack: Callable[[int], bytes] | None = None


class Unreadable(Exception):
    """Not in the format, damaged, or built in a way the reader does not follow."""


class TooLarge(Exception):
    """More entries, or larger tables, than the bounds allow."""


class OverBudget(Exception):
    """Reaching the bytes asked for would unpack more than the budget allows."""


class Unsupported(Exception):
    """Packed by a method this reader does not decode, though not damaged: the file is
    known by its name alone."""
