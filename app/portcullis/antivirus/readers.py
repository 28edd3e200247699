"""What the readers of archive and document formats raise (``cabinet``, ``sevenzip``,
``iso9660``, ``udf``, ``office``, ...): one set of errors, so that the attachment
inventory treats every format alike; and ``Stored``, a member of a format that keeps its
files as they are (or that is read only that far)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


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
    # Other names it is known by (TNEF: its 8.3 title next to its long name).
    aliases: tuple[str, ...] = ()


class Unreadable(Exception):
    """Not in the format, damaged, or built in a way the reader does not follow."""


class TooLarge(Exception):
    """More entries, or larger tables, than the bounds allow."""


class OverBudget(Exception):
    """Reaching the bytes asked for would unpack more than the budget allows."""


class Unsupported(Exception):
    """Packed by a method this reader does not decode, though not damaged: the file is
    known by its name alone."""


class Allowance:
    """Work one message may still spend in a decoder much slower than the others (PPMd:
    a symbol costs about 10 us in Python), shared by every archive in the message:
    ``spend(n)`` raises OverBudget once it is used up."""

    def __init__(self, units: int) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise OverBudget("the message's allowance for this decoder is spent")


def copy_match(out: bytearray, distance: int, length: int) -> None:
    """An LZ match: ``length`` bytes from ``distance`` back appended to ``out``
    (overlapping ones repeat, as a run does); Unreadable when it reaches before the start."""
    if not 0 < distance <= len(out):
        raise Unreadable("a match before the start of the output")
    begin = len(out) - distance
    if distance >= length:
        out += out[begin:begin + length]
    else:
        out += (out[begin:] * (length // distance + 1))[:length]


class Expanding(Protocol):
    """A member being decoded by a decoder that carries state through a solid run."""

    state: Any
    finished: bool

    def first(self, limit: int) -> bytes: ...


class SolidRun:
    """The members of one archive, in order, for a decoder whose solid archives (RAR 3,
    RAR 5) carry its state from member to member: ``expand(packed, size, crc, state,
    solid)`` begins decoding a member, on ``new_state()`` or on the state the member
    before it left; a solid member whose run was not decoded to its end raises
    OverBudget."""

    def __init__(self, expand: Callable[[bytes, int, int | None, Any, bool], Expanding],
                 new_state: Callable[[], Any]) -> None:
        self._expand = expand
        self._new_state = new_state
        # The member before the next: its expansion, once begun.
        self._previous: Callable[[], Expanding | None] = lambda: None

    def unpacker(self, packed: bytes, size: int, crc: int | None,
                 solid: bool = False) -> Callable[[int], bytes]:
        """The next member's ``first(n)``; decoding begins on the first call (a listing
        makes one for each member; most are never read).  ``crc``: its CRC32, None when
        unknown; ``solid``: the file header's solid flag."""
        before = self._previous if solid else None
        expansion: Expanding | None = None

        def started() -> Expanding | None:
            return expansion

        def first(limit: int) -> bytes:
            nonlocal expansion
            if expansion is None:
                state = self._new_state()
                if before is not None:
                    previous = before()
                    if previous is None or not previous.finished:
                        raise OverBudget("the solid stream before this member was not "
                                         "decoded to its end")
                    state = previous.state
                expansion = self._expand(packed, size, crc, state, solid)
            return expansion.first(limit)

        self._previous = started
        return first
