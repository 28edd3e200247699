"""7-Zip's BCJ2 filter, decoded: x86 code whose call (E8) and jump (E9, 0F 80-8F) targets
7-Zip moved out of the main stream into two streams of their own, absolute and
big-endian, with a range-coded bit for each such opcode saying whether its target was
moved (``Bcj2_Decode`` of the LZMA SDK; the format has not changed since 7-Zip 4).

7-Zip picks it for executables (``-mf=BCJ2``); read here, a program renamed
``invoice.pdf`` in such an archive is judged by its bytes like any other.  The decoding
is in Python, one step per opcode: each spends from the message's allowance for slow
decoders, so a stream made of nothing but E8 bytes costs a bounded few seconds.
"""

from __future__ import annotations

import re
from typing import Protocol

from portcullis.antivirus.readers import Allowance, Unreadable

# An opcode whose target may have been moved; a 0F 8x pair ends at the byte that counts.
_OPCODE = re.compile(rb"[\xe8\xe9]|\x0f[\x80-\x8f]")
MAIN_CHUNK = 64 * 1024          # bytes of the main stream decoded at a time
SIDE_CHUNK = 4096               # ... of the others
OPCODES_PER_UNIT = 4            # an opcode costs about a quarter of a PPMd symbol
PROBABILITY_BITS = 11
MOVE_BITS = 5
TOP = 1 << 24


class Input(Protocol):
    """One of the four streams BCJ2 reads, decoded as far as it has been asked for."""

    output: bytearray
    size: int

    def extend(self, end: int) -> None: ...


class _Reading:
    """Where the decoder has read up to in one input."""

    def __init__(self, stream: Input, chunk: int) -> None:
        self.stream = stream
        self.chunk = chunk
        self.position = 0

    def fill(self, count: int) -> int:
        """Bytes there past the position, decoding on (at least ``count`` when the
        stream holds that many)."""
        stream = self.stream
        if len(stream.output) - self.position < count:
            wanted = min(stream.size, self.position + max(count, self.chunk))
            if wanted > len(stream.output):
                stream.extend(wanted)
        return len(stream.output) - self.position

    def take(self, count: int) -> bytes:
        if self.fill(count) < count:
            raise Unreadable("a BCJ2 stream ends before its opcodes do")
        start, self.position = self.position, self.position + count
        return bytes(self.stream.output[start:self.position])


class Decoder:
    """A BCJ2 folder's output, decoded as far as it has been asked for (``extend``),
    from its main, call, jump and range-coder streams."""

    def __init__(self, main: Input, calls: Input, jumps: Input, ranges: Input, size: int,
                 allowance: Allowance | None = None) -> None:
        self.main = _Reading(main, MAIN_CHUNK)
        self.calls = _Reading(calls, SIDE_CHUNK)
        self.jumps = _Reading(jumps, SIDE_CHUNK)
        self.ranges = _Reading(ranges, SIDE_CHUNK)
        self.size = size
        self.output = bytearray()
        self.password: str | None = None        # BCJ2 folders are never encrypted here
        self._allowance = allowance
        self._opcodes = 0
        # 256 for E8 (by the byte before it), one for E9, one for 0F 8x.
        self._probabilities = [1 << PROBABILITY_BITS >> 1] * 258
        self._previous = 0
        self._range = 0xFFFFFFFF
        self._code: int | None = None
        self._damage = ""                       # why the streams could not be decoded

    def release(self) -> None:
        """Nothing to give back: no input is PPMd-packed (see ``sevenzip``)."""

    def extend(self, end: int) -> None:
        """Decode until ``end`` bytes are out (a moved target may take it 3 past).  Once
        damage was found, every later call finds it again: the streams' state is lost."""
        if self._damage:
            raise Unreadable(self._damage)
        try:
            self._extend(end)
        except Unreadable as exc:
            self._damage = str(exc)
            raise

    def _extend(self, end: int) -> None:
        if end > self.size:
            raise Unreadable("a file lies beyond the end of its folder")
        out, main = self.output, self.main
        if self._code is None and len(out) < end:
            self._code = int.from_bytes(self.ranges.take(5), "big") & 0xFFFFFFFF
        while len(out) < end:
            there = main.fill(1)
            if there <= 0:
                raise Unreadable("packed data ends before its files do")
            data, start = main.stream.output, main.position
            stop = start + min(there, self.size - len(out))
            if _opcode(self._previous, data[start]):
                at: int | None = start
            else:
                found = _OPCODE.search(data, start, stop)
                at = found.end() - 1 if found else None
            if at is None:
                out += data[start:stop]
                main.position, self._previous = stop, data[stop - 1]
                continue
            out += data[start:at + 1]
            main.position = at + 1
            before = data[at - 1] if at > start else self._previous
            self._previous = data[at]
            if len(out) < self.size:
                self._target(data[at], before)

    def _target(self, opcode: int, before: int) -> None:
        """After an opcode: its target, when the range coder says it was moved."""
        index = before if opcode == 0xE8 else 256 if opcode == 0xE9 else 257
        if not self._moved(index):
            return
        source = self.calls if opcode == 0xE8 else self.jumps
        absolute = int.from_bytes(source.take(4), "big")
        relative = (absolute - (len(self.output) + 4)) & 0xFFFFFFFF
        piece = relative.to_bytes(4, "little")[:self.size - len(self.output)]
        self.output += piece
        self._previous = piece[-1]

    def _moved(self, index: int) -> bool:
        """One bit from the range coder, with the adaptive probability ``index``."""
        self._opcodes += 1
        if self._allowance is not None and self._opcodes % OPCODES_PER_UNIT == 0:
            self._allowance.spend(1)
        assert self._code is not None
        probability = self._probabilities[index]
        bound = (self._range >> PROBABILITY_BITS) * probability
        if self._code < bound:
            self._range = bound
            self._probabilities[index] = probability + (
                ((1 << PROBABILITY_BITS) - probability) >> MOVE_BITS)
            moved = False
        else:
            self._range -= bound
            self._code -= bound
            self._probabilities[index] = probability - (probability >> MOVE_BITS)
            moved = True
        if self._range < TOP:
            self._range <<= 8
            self._code = ((self._code << 8) | self.ranges.take(1)[0]) & 0xFFFFFFFF
        return moved


def _opcode(before: int, byte: int) -> bool:
    return byte & 0xFE == 0xE8 or (before == 0x0F and byte & 0xF0 == 0x80)
