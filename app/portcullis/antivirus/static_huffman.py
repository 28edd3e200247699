"""LZSS with static Huffman codes: how LHA packs ``-lh5-``, ``-lh6-`` and ``-lh7-``
members and ARJ its methods 1 to 3 (both from Haruhiko Okumura's ar002), and ARJ's
method 4, the same LZSS with lengths and distances in plain bit codes.

The Huffman-coded stream is a run of blocks.  Each starts with the number of codes in
it and three tables of code lengths: a small one (up to 19 symbols) whose codes spell
out the lengths of the main one, the main one itself (510 symbols: 256 literal bytes and
254 match lengths, 3 to 256), and the one for distances (a symbol ``j`` is a distance of
``j - 1`` more bits).  Codes are canonical, read from the most significant bit; a table
with a single symbol is sent as that symbol alone, and costs no bits per use.

Decoding is pure Python, so it is resumable (``first(n)`` goes on from where the last
call stopped) and never goes past the bytes asked for.  Damage, a table that is not a
complete code, a stream that ends early, or a whole member that fails its archive's
checksum (``intact``) raises Unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portcullis.antivirus.readers import Unreadable, copy_match

MAX_BITS = 16                   # the longest code; tables are looked up by 16 bits
LITERALS = 256
MATCH_CODES = 510               # literals, then lengths 3..256
LENGTH_CODES = 19               # the table that spells out the main table's lengths
MIN_MATCH = 3
WINDOW = 1 << 16                # the farthest any of these methods reaches back
# Before the first byte the window holds spaces, as LHA starts it.
_START = b" " * WINDOW
_PAUSE = 4096                   # codes decoded between looks at how far to go
# Encoders flush a block when a buffer of thousands of codes fills (ARJ's hold 14-40 KB).
# A stream of tiny blocks would make each byte cost three tables' building: refused.
BYTES_PER_BLOCK = 4096
_EMPTY = -1                     # a table entry no code leads to


@dataclass(frozen=True)
class Method:
    distance_codes: int         # symbols of the distance table
    distance_width: int         # bits that give the size of the distance table


LH5 = Method(14, 4)             # LHA, 8 KiB window
LH6 = Method(16, 5)             # LHA, 32 KiB window
LH7 = Method(17, 5)             # LHA, 64 KiB window
ARJ = Method(17, 5)             # ARJ methods 1-3, 26 KiB window
ARJ_FASTEST = None              # ARJ method 4


class Expansion:
    """A member being decoded: ``first(n)`` is its first n bytes (all, when shorter)."""

    def __init__(self, packed: bytes, size: int, method: Method | None,
                 intact: Callable[[bytes], bool] | None = None) -> None:
        self._size = size
        self._intact = intact           # the member's checksum, tried once it is whole
        self._damage: str | None = None
        self._out = bytearray(_START)
        self._bits = _Bits(packed)
        self._steps: Iterator[None] = _huffman(self._bits, self._out, method, size) \
            if method is not None else _fastest(self._bits, self._out, size)

    def first(self, limit: int) -> bytes:
        want = min(limit, self._size)
        try:
            while len(self._out) - WINDOW < want:
                next(self._steps)
        except StopIteration:
            pass
        if len(self._out) - WINDOW < want:
            raise Unreadable(f"cut short after {len(self._out) - WINDOW} of {self._size} "
                             "bytes")
        content = bytes(self._out[WINDOW:WINDOW + want])
        if want == self._size and self._intact is not None:
            # What was judged must be what the recipient's unpacker gives: a stream that
            # decodes here to other bytes than it did when packed is damaged.
            if not self._intact(content):
                self._damage = "its checksum does not match what it unpacks to"
            self._intact = None
        if self._damage:
            raise Unreadable(self._damage)
        return content


def unpacker(packed: bytes, size: int, method: Method | None,
             intact: Callable[[bytes], bool] | None = None) -> Callable[[int], bytes]:
    """``Expansion(packed, size, method, intact).first``, the expansion begun on the first
    call (a listing makes one for each member; most are never read)."""
    expansion: Expansion | None = None

    def first(limit: int) -> bytes:
        nonlocal expansion
        if expansion is None:
            expansion = Expansion(packed, size, method, intact)
        return expansion.first(limit)

    return first


class _Bits:
    """The packed bytes as bits, most significant first; past the end, zeros (and
    ``over`` says so: a code read there was never written)."""

    def __init__(self, data: bytes) -> None:
        self.data = data + bytes(8)
        self.end = len(data) * 8
        self.position = 0

    @property
    def over(self) -> bool:
        return self.position > self.end

    def peek(self) -> int:
        """The next 16 bits."""
        at, data = self.position >> 3, self.data
        return ((data[at] << 16 | data[at + 1] << 8 | data[at + 2])
                >> (8 - (self.position & 7))) & 0xFFFF

    def take(self, count: int) -> int:
        """The next ``count`` bits (at most 16) as a number."""
        value = self.peek() >> (16 - count)
        self.position += count
        if self.position > self.end:
            raise Unreadable("the packed bytes end inside a code")
        return value


def _table(lengths: list[int]) -> list[int]:
    """The lookup by the next 16 bits: each entry ``symbol << 5 | code length``.  Codes
    are assigned by length, then by symbol, as ar002's make_table does."""
    if any(length > MAX_BITS for length in lengths):
        raise Unreadable("a code longer than 16 bits")
    used = sorted((length, symbol) for symbol, length in enumerate(lengths) if length)
    if sum(1 << (MAX_BITS - length) for length, _ in used) != 1 << MAX_BITS:
        raise Unreadable("a Huffman table that is not a complete code")
    table = [_EMPTY] * (1 << MAX_BITS)
    code = 0
    for length, symbol in used:
        span = 1 << (MAX_BITS - length)
        table[code:code + span] = [symbol << 5 | length] * span
        code += span
    return table


def _single(symbol: int, symbols: int) -> list[int]:
    """The table of a code with one symbol: it takes no bits."""
    if symbol >= symbols:
        raise Unreadable(f"symbol {symbol} of a table of {symbols}")
    return [symbol << 5] * (1 << MAX_BITS)


def _lengths_table(bits: _Bits, symbols: int, width: int, skip_after: int) -> list[int]:
    """A table whose code lengths are sent as 3 bits, or 7 and then one more for each 1
    bit before a 0; after the first ``skip_after`` lengths, 2 bits of zero lengths."""
    count = bits.take(width)
    if count == 0:
        return _single(bits.take(width), symbols)
    if count > symbols:
        raise Unreadable(f"{count} code lengths for {symbols} symbols")
    lengths: list[int] = []
    while len(lengths) < count:
        peek = bits.peek()
        length = peek >> 13
        if length == 7:
            mask = 1 << 12
            while peek & mask:
                mask >>= 1
                length += 1
            if length > MAX_BITS:
                raise Unreadable("a code longer than 16 bits")
        bits.take(3 if length < 7 else length - 3)
        lengths.append(length)
        if len(lengths) == skip_after:
            lengths += [0] * bits.take(2)
    if len(lengths) > symbols:
        raise Unreadable("more code lengths than symbols")
    return _table(lengths + [0] * (symbols - len(lengths)))


def _match_table(bits: _Bits, lengths_code: list[int]) -> list[int]:
    """The main table, its lengths coded by ``lengths_code``: symbols 0-2 are runs of
    zero lengths (one; 3-18; 20-531), the others a length of two less."""
    count = bits.take(9)
    if count == 0:
        return _single(bits.take(9), MATCH_CODES)
    if count > MATCH_CODES:
        raise Unreadable(f"{count} code lengths for {MATCH_CODES} symbols")
    lengths: list[int] = []
    while len(lengths) < count:
        entry = lengths_code[bits.peek()]
        if entry == _EMPTY:
            raise Unreadable("no such code")
        bits.take(entry & 31)
        symbol = entry >> 5
        if symbol == 0:
            lengths.append(0)
        elif symbol == 1:
            lengths += [0] * (bits.take(4) + 3)
        elif symbol == 2:
            lengths += [0] * (bits.take(9) + 20)
        else:
            lengths.append(symbol - 2)
    if len(lengths) > MATCH_CODES:
        raise Unreadable("more code lengths than symbols")
    return _table(lengths + [0] * (MATCH_CODES - len(lengths)))


def _huffman(bits: _Bits, out: bytearray, method: Method, size: int) -> Iterator[None]:
    """LHA -lh5-/6/7- and ARJ 1-3: block after block, pausing every _PAUSE codes, up to
    ``size`` bytes."""
    blocks = 0
    while len(out) - WINDOW < size:
        blocks += 1
        if blocks > 2 + (len(out) - WINDOW) // BYTES_PER_BLOCK:
            raise Unreadable(f"{blocks} blocks for {len(out) - WINDOW} bytes")
        codes = bits.take(16)
        if codes == 0:
            raise Unreadable("a block of no codes")
        lengths_code = _lengths_table(bits, LENGTH_CODES, 5, 3)
        matches = _match_table(bits, lengths_code)
        distances = _lengths_table(bits, method.distance_codes, method.distance_width, -1)
        for index in range(codes):
            entry = matches[bits.peek()]
            if entry == _EMPTY:
                raise Unreadable("no such code")
            bits.position += entry & 31
            symbol = entry >> 5
            if symbol < LITERALS:
                out.append(symbol)
            else:
                entry = distances[bits.peek()]
                if entry == _EMPTY:
                    raise Unreadable("no such code")
                bits.position += entry & 31
                extra = entry >> 5
                distance = (1 << (extra - 1)) + bits.take(extra - 1) + 1 if extra else 1
                copy_match(out, distance, symbol - LITERALS + MIN_MATCH)
            if bits.over:
                raise Unreadable("the packed bytes end inside a code")
            if index % _PAUSE == _PAUSE - 1:
                yield
        yield


def _fastest(bits: _Bits, out: bytearray, size: int) -> Iterator[None]:
    """ARJ method 4: a length in unary-prefixed bits (0: a literal byte follows), then
    a distance the same way, from 9 bits up to 13; up to ``size`` bytes."""
    while len(out) - WINDOW < size:
        for _ in range(_PAUSE):
            if len(out) - WINDOW >= size:
                break
            length = _unary(bits, 0, 7)
            if length == 0:
                out.append(bits.take(8))
                continue
            distance = _unary(bits, 9, 13) + 1
            copy_match(out, distance, length - 1 + MIN_MATCH)
        yield


def _unary(bits: _Bits, first: int, last: int) -> int:
    """ARJ's variable-width number: a 1 bit per extra width (from ``first`` bits, at
    most ``last``), a 0 to stop, then that many bits, over what the widths skipped."""
    value, width = 0, first
    while width < last and bits.take(1):
        value += 1 << width
        width += 1
    return value + (bits.take(width) if width else 0)
