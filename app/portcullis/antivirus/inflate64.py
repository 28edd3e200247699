"""Deflate64 ("enhanced deflate", PKWARE's method 9), which zlib does not read: what
Windows writes for big zip members and 7-Zip for ``-mm=Deflate64`` or ``-m0=Deflate64``
(a 7z folder ClamAV 1.4 does not decode either).

It is Deflate (RFC 1951) with three changes: a 64 KiB window, length code 285 taking 16
extra bits over a base of 3 (not a fixed 258), and distance codes 30 and 31 (bases 32769
and 49153, 14 extra bits).  The same decoder reads plain Deflate, which is how it is
checked against zlib.

Bits come least significant first; Huffman codes are canonical and read most significant
bit first, through a 9-bit table with a bit-by-bit walk for longer codes (so that a block's
tables cost little to build: a stream of tiny blocks cannot make table building the
cost).  Decoding is pure Python and resumable, so ``decompress(data, max_length)`` stops
at the bytes asked for.  Damage raises Unreadable, as does a stream whose blocks average
under BYTES_PER_BLOCK of output.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from portcullis.antivirus.readers import Unreadable

WINDOW = 1 << 16
# Blocks must average this much output (beyond BLOCKS_SLACK): zlib writes blocks of tens of
# KB, 7-Zip's -mx9 splits finer (1.5 KB on average over an executable); a block costs
# about 0.4 ms of table building, so a stream of tiny blocks would cost far more per byte.
BYTES_PER_BLOCK = 512
BLOCKS_SLACK = 16
_PAUSE = 4096                   # symbols decoded between looks at how far to go
_QUICK = 9                      # bits of the direct lookup table
_KEEP = 1 << 20                 # output kept before the part past the window is dropped

_LENGTH_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67,
                83, 99, 115, 131, 163, 195, 227, 258)
_LENGTH_EXTRA = (0,) * 8 + (1,) * 4 + (2,) * 4 + (3,) * 4 + (4,) * 4 + (5,) * 4 + (0,)
_DISTANCE_BASE = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
                  769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577, 32769,
                  49153)
_DISTANCE_EXTRA = (0, 0, 0, 0, *(n // 2 for n in range(2, 30)))
_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


_REVERSED = [int(f"{n:0{_QUICK}b}"[::-1], 2) for n in range(1 << _QUICK)]


class _Code:
    """A canonical Huffman code from its code lengths."""

    def __init__(self, lengths: list[int]) -> None:
        self.counts = [0] * 16
        for length in lengths:
            self.counts[length] += 1
        self.counts[0] = 0
        left = 1
        for length in range(1, 16):
            left = (left << 1) - self.counts[length]
            if left < 0:
                raise Unreadable("a Huffman table with more codes than fit")
        if left and sum(self.counts) > 1:       # only a lone code may leave space unused
            raise Unreadable("an incomplete Huffman table")
        self.symbols = sorted((s for s, n in enumerate(lengths) if n),
                              key=lambda s: lengths[s])       # stable: by symbol within
        # quick[bits]: (symbol, length) for codes of _QUICK bits or fewer, by the next
        # _QUICK bits of input (least significant first, so each code bit-reversed).
        self.quick: list[tuple[int, int] | None] = [None] * (1 << _QUICK)
        code, index = 0, 0
        for length in range(1, _QUICK + 1):
            for _ in range(self.counts[length]):
                entry = (self.symbols[index], length)
                self.quick[_REVERSED[code << (_QUICK - length)]::1 << length] = \
                    [entry] * (1 << (_QUICK - length))
                code, index = code + 1, index + 1
            code <<= 1

    def slow(self, bits: int) -> tuple[int, int]:
        """(symbol, length) of a code longer than the quick table, from ``bits`` (the
        next 15 bits, least significant first), walked as RFC 1951's canonical order."""
        code = first = index = 0
        for length in range(1, 16):
            code |= bits >> (length - 1) & 1
            count = self.counts[length]
            if code - first < count:
                return self.symbols[index + code - first], length
            index += count
            first = (first + count) << 1
            code <<= 1
        raise Unreadable("no such Huffman code")


_FIXED = (_Code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8), _Code([5] * 32))


class Inflater:
    """Decodes one stream, given whole on the first call, in the manner of zlib's
    decompress objects: each ``decompress(data, max_length)`` returns up to
    ``max_length`` more bytes (all that is left when it is negative)."""

    def __init__(self, *, deflate64: bool = True) -> None:
        self._deflate64 = deflate64
        self._data = b""
        self._out = bytearray()
        self._taken = 0                 # bytes of _out already returned
        self._steps: Iterator[None] | None = None
        self.eof = False

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._steps is None:
            self._data = bytes(data) + bytes(8)     # zeros to peek past the end
            self._end = len(data) * 8
            self._steps = self._stream()
        elif data:
            raise Unreadable("the packed stream is given in one piece")
        want = max_length if max_length >= 0 else 1 << 62
        while len(self._out) - self._taken < want and not self.eof:
            try:
                next(self._steps)
            except StopIteration:
                self.eof = True
        chunk = bytes(self._out[self._taken:self._taken + want])
        self._taken += len(chunk)
        if self._taken > _KEEP:                     # only the window is needed from here
            drop = self._taken - WINDOW
            del self._out[:drop]
            self._taken -= drop
        return chunk

    # -- the stream ------------------------------------------------------------------------

    def _stream(self) -> Iterator[None]:
        data, end, out = self._data, self._end, self._out
        position = 0                    # in bits
        produced = blocks = 0
        length_base = _LENGTH_BASE[:-1] + ((3,) if self._deflate64 else (258,))
        length_extra = _LENGTH_EXTRA[:-1] + ((16,) if self._deflate64 else (0,))
        distances = 32 if self._deflate64 else 30
        window = WINDOW if self._deflate64 else 32768

        def bits(count: int) -> int:
            nonlocal position
            at = position >> 3
            value = int.from_bytes(data[at:at + 4], "little") >> (position & 7)
            position += count
            if position > end:
                raise Unreadable("the packed stream ends inside a block")
            return value & ((1 << count) - 1)

        def symbol(code: _Code) -> int:
            nonlocal position
            at = position >> 3
            peek = int.from_bytes(data[at:at + 3], "little") >> (position & 7)
            entry = code.quick[peek & ((1 << _QUICK) - 1)]
            if entry is None:
                entry = code.slow(peek & 0x7FFF)
            position += entry[1]
            if position > end:
                raise Unreadable("the packed stream ends inside a code")
            return entry[0]

        final = False
        while not final:
            blocks += 1
            if blocks > BLOCKS_SLACK + produced // BYTES_PER_BLOCK:
                raise Unreadable(f"{blocks} blocks for {produced} bytes")
            final, kind = bool(bits(1)), bits(2)
            if kind == 0:                           # stored
                position = (position + 7) & ~7
                size, check = bits(16), bits(16)
                if size != check ^ 0xFFFF:
                    raise Unreadable("a stored block's length fails its check")
                at = position >> 3
                if position + 8 * size > end:
                    raise Unreadable("a stored block runs past the end")
                out += data[at:at + size]
                position += 8 * size
                produced += size
                yield
                continue
            if kind == 1:
                literals, distance_code = _FIXED
            elif kind == 2:
                literals, distance_code = _tables(bits, symbol)
            else:
                raise Unreadable("block type 3")
            quick, mask = literals.quick, (1 << _QUICK) - 1
            while True:
                for _ in range(_PAUSE):
                    # symbol(literals), written out: most of the time goes here.
                    at = position >> 3
                    peek = (data[at] | data[at + 1] << 8 | data[at + 2] << 16) \
                        >> (position & 7)
                    entry = quick[peek & mask] or literals.slow(peek & 0x7FFF)
                    position += entry[1]
                    if position > end:
                        raise Unreadable("the packed stream ends inside a code")
                    value = entry[0]
                    if value < 256:
                        out.append(value)
                        produced += 1
                        continue
                    if value == 256:
                        break
                    value -= 257
                    if value >= 29:
                        raise Unreadable(f"length code {value + 257}")
                    length = length_base[value] + bits(length_extra[value])
                    value = symbol(distance_code)
                    if value >= distances:
                        raise Unreadable(f"distance code {value}")
                    distance = _DISTANCE_BASE[value] + bits(_DISTANCE_EXTRA[value])
                    if distance > window or distance > produced:
                        raise Unreadable("a match reaches before the start")
                    start = len(out) - distance
                    if distance >= length:
                        out += out[start:start + length]
                    else:                           # overlapping: a repeated pattern
                        pattern = out[start:]
                        out += (pattern * (length // distance + 1))[:length]
                    produced += length
                else:
                    yield
                    continue
                break
            yield


def _tables(take: Callable[[int], int], read: Callable[[_Code], int]) -> tuple[_Code, _Code]:
    """A dynamic block's literal/length and distance codes, read from its header
    (``take(n)``: the next n bits; ``read(code)``: the next symbol of ``code``)."""
    literal_count, distance_count, length_count = take(5) + 257, take(5) + 1, take(4) + 4
    if literal_count > 288 or distance_count > 32:
        raise Unreadable("too many codes in a block header")
    order = [0] * 19
    for index in range(length_count):
        order[_LENGTH_ORDER[index]] = take(3)
    lengths_code = _Code(order)
    lengths: list[int] = []
    while len(lengths) < literal_count + distance_count:
        value = read(lengths_code)
        if value < 16:
            lengths.append(value)
            continue
        if value == 16:
            if not lengths:
                raise Unreadable("a repeat with nothing before it")
            lengths += [lengths[-1]] * (3 + take(2))
        elif value == 17:
            lengths += [0] * (3 + take(3))
        else:
            lengths += [0] * (11 + take(7))
    if len(lengths) > literal_count + distance_count:
        raise Unreadable("code lengths run past the tables")
    if lengths[256] == 0:
        raise Unreadable("a block with no end code")
    return _Code(lengths[:literal_count]), _Code(lengths[literal_count:])


def unpacker(packed: bytes, size: int, crc: int | None = None) -> Callable[[int], bytes]:
    """``first(n)``: the first n bytes a Deflate64 stream unpacks to (all, when shorter),
    decoded on from where the last call stopped; once the whole ``size`` bytes are out,
    they must match ``crc`` (CRC-32), or it raises Unreadable."""
    inflater = Inflater()
    out = bytearray()
    started = False

    def first(limit: int) -> bytes:
        nonlocal started
        want = min(limit, size)
        if len(out) < want:
            out.extend(inflater.decompress(b"" if started else packed, want - len(out)))
            started = True
            if len(out) < want:
                raise Unreadable(f"cut short after {len(out)} of {size} bytes")
            if len(out) == size and crc is not None and zlib.crc32(out) != crc:
                raise Unreadable("its CRC does not match what it unpacks to")
        return bytes(out[:want])

    return first
