"""What the readers of archive and document formats raise (``cabinet``, ``sevenzip``,
``iso9660``, ``udf``, ``office``): one set of errors, so that the attachment inventory
treats every format alike."""

from __future__ import annotations


class Unreadable(Exception):
    """Not in the format, damaged, or built in a way the reader does not follow."""


class TooLarge(Exception):
    """More entries, or larger tables, than the bounds allow."""


class OverBudget(Exception):
    """Reaching the bytes asked for would unpack more than the budget allows."""
