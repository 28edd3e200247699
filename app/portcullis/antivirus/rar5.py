"""RAR 5 decompression (the format WinRAR writes by default since 5.0), in pure Python:
Debian's ClamAV has no unrar, and no external tool is run here, so without this an
executable packed into a RAR under a harmless name would be known by that name alone.

Compression methods 1 to 5 ("fastest" to "best") differ only in how hard the packer
looks for matches; all are read by one LZ77 + Huffman decoder (method 0 is store, read by
rarfile).  A member's packed data is a run of blocks.  Each block starts on a byte with a
header: a flags byte (bits 0-2: how many bits of the block's last byte are used, less
one; bits 3-4: how many bytes give the block's size, less one; bit 6: the member's last
block; bit 7: new Huffman tables follow), a check byte (0x5A xor the flags and the size
bytes) and the size, little-endian, of what follows.  Tables, when present, come first:
20 code lengths of 4 bits (15 then 0 is a length of 15; 15 then n, n + 2 zero lengths)
give a code that spells out 430 lengths (0-15 a length; 16 and 17 repeat the previous
one 3 + 3 bits or 11 + 7 bits times; 18 and 19 that many zeros), which are four tables:
306 main symbols, 64 distance slots, 16 low distance bits, 44 length slots for reused
distances.  Codes are canonical, read from the most significant bit, at most 15 bits;
a block without tables keeps the previous block's.

Main symbols: 0-255 a literal byte; 256 a filter; 257 the last match again (same length
and distance); 258-261 one of the four last distances (moved to the front), with a length
from the fourth table; 262 and up a length slot (2-9 directly, then a base and extra
bits), followed by a distance slot (1-4 directly, then a base and ``slot / 2 - 1`` extra
bits, whose low four come from the low-distance table when there are at least four).  A
match of a distance over 0x100, 0x2000 or 0x40000 is one byte longer per threshold.

Filters undo what the packer did to help compression, over a range of the output the
filter names (start after the current position, length 4 bytes to 4 MiB, in order, not
overlapping): DELTA (bytes stored as differences, per channel), E8 and E8E9 (x86 call and
jump targets made absolute: WinRAR applies this to every executable), ARM (BL targets).
The output is handed on only once every filter over it has run.

Bounds, since hostile input is the normal case: no window is allocated from the
dictionary size the header claims (RAR 5 allows gigabytes); only the output produced so
far is kept (the caller never asks for more than its limit), and a match reaching before
its start is damage.  Blocks must average 4 KiB of output (tables cost a few
milliseconds each to build), filters one per 4 KiB.

Solid archives (``rar -s``) pack members as one stream: each member's data starts with a
new block, but the tables, the last distances and the output so far carry on from the
member before.  ``Stream`` passes that state on: a member of a solid run is decoded only when
every member before it in the run was decoded to its end (the inventory decodes members
in order, each whole, within its budget); otherwise asking for it raises OverBudget.

Decoding is resumable (``first(n)`` goes on from where the last call stopped) and never
goes past the bytes asked for.  Damage, a stream that ends early, or a CRC32 that does
not match once the whole member is decoded (RAR 5 may carry BLAKE2sp instead: then no
check) raises Unreadable.  RAR 7's format (algorithm version 1, dictionaries beyond
4 GiB) is not read here; RAR 3's is read by ``rar3``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from itertools import accumulate

from portcullis.antivirus.readers import SolidRun, Unreadable, copy_match

MAX_BITS = 15                   # the longest code; tables are looked up by 15 bits
MAIN, DISTANCES, LOW_DISTANCES, REPEATS = 306, 64, 16, 44
TABLES = MAIN + DISTANCES + LOW_DISTANCES + REPEATS
LENGTH_CODES = 20
BYTES_PER_BLOCK = 4096          # the least output a block may average (two of slack)
BYTES_PER_FILTER = 4096         # and a filter
MAX_FILTER = 0x400000
DELTA, E8, E8E9, ARM = 0, 1, 2, 3
_PAUSE = 4096                   # codes decoded between looks at how far to go
_EMPTY = -1                     # a table entry no code leads to
_E8 = re.compile(b"\xe8")
_E8E9 = re.compile(b"[\xe8\xe9]")


class _State:
    """What a run of members shares: all of it in a solid archive; in another, each
    member starts anew."""

    def __init__(self) -> None:
        self.out = bytearray()          # every byte the run has produced, unfiltered
        self.tables: tuple[list[int], ...] | None = None
        self.distances = [0, 0, 0, 0]   # the last four, most recent first
        self.last_length = 0


class Stream(SolidRun):
    """The members of one archive, in order: a member marked solid carries on from the
    decoder state the member before it left."""

    def __init__(self) -> None:
        super().__init__(lambda packed, size, crc, state, solid:
                         Expansion(packed, size, crc, state), _State)


def unpacker(packed: bytes, size: int, crc: int | None) -> Callable[[int], bytes]:
    """The ``first(n)`` of a member that does not carry on from another."""
    return Stream().unpacker(packed, size, crc)


class Expansion:
    """A member being decoded: ``first(n)`` is its first n bytes (all, when shorter)."""

    def __init__(self, packed: bytes, size: int, crc: int | None, state: _State) -> None:
        self.state = state
        self._size = size
        self._crc = crc
        self._base = len(state.out)    # where this member starts in the run's output
        self._done = bytearray()        # its bytes, filtered, as far as they are final
        self._filters: list[tuple[int, int, int, int]] = []  # start, length, kind, channels
        self.finished = False
        self._steps = _decode(packed, state, self._base + size, self._filters, size)

    def first(self, limit: int) -> bytes:
        want = min(limit, self._size)
        try:
            while len(self._done) < want:
                next(self._steps)
                self._flush()
        except StopIteration:
            self._flush()
            if self._filters:
                raise Unreadable("a filter past the end of the member") from None
        if len(self._done) < want:
            raise Unreadable(f"cut short after {len(self._done)} of {self._size} bytes")
        if len(self._done) >= self._size and not self.finished:
            self.finished = True
            del self.state.out[self._base + self._size:]   # a match past the end
            if self._crc is not None and zlib.crc32(self._done) != self._crc:
                raise Unreadable(f"damaged: CRC {zlib.crc32(self._done):08x}, "
                                 f"{self._crc:08x} expected")
        return bytes(self._done[:want])

    def _flush(self) -> None:
        """Move what is final of the output to ``_done``: up to the first filter not yet
        run, running each filter whose range is complete."""
        out, done, base = self.state.out, self._done, self._base
        written = min(len(out) - base, self._size)
        while self._filters and self._filters[0][0] + self._filters[0][1] <= written:
            start, length, kind, channels = self._filters.pop(0)
            done += out[base + len(done):base + start]
            done += _filtered(bytes(out[base + start:base + start + length]), start, kind,
                              channels)
        end = min(self._filters[0][0], written) if self._filters else written
        if end > len(done):
            done += out[base + len(done):base + end]


def _filtered(data: bytes, start: int, kind: int, channels: int) -> bytes:
    """``data``, the output from ``start`` (within the member) on, with the filter undone."""
    if kind == DELTA:
        # Each channel's bytes are stored one after another, as differences.
        result = bytearray(len(data))
        at = 0
        for channel in range(channels):
            count = len(range(channel, len(data), channels))
            values = accumulate(data[at:at + count], lambda a, b: (a - b) & 0xFF, initial=0)
            result[channel::channels] = bytes(values)[1:]
            at += count
        return bytes(result)
    result = bytearray(data)
    if kind == ARM:
        for at in range(0, len(data) - 3, 4):
            if data[at + 3] == 0xEB:
                target = (int.from_bytes(data[at:at + 3], "little") - (start + at) // 4) \
                    & 0xFFFFFF
                result[at:at + 3] = target.to_bytes(3, "little")
        return bytes(result)
    # E8, E8E9: a call (and jump) target made absolute, relative again.
    size = 0x1000000
    pattern, at, last = (_E8E9 if kind == E8E9 else _E8), 0, len(data) - 4
    while (found := pattern.search(data, at, last)) is not None:
        at = found.start() + 1
        offset = (start + at) % size
        address = int.from_bytes(data[at:at + 4], "little")
        if address & 0x80000000:
            if not (address + offset) & 0x80000000:
                result[at:at + 4] = ((address + size) & 0xFFFFFFFF).to_bytes(4, "little")
        elif address < size:
            result[at:at + 4] = ((address - offset) & 0xFFFFFFFF).to_bytes(4, "little")
        at += 4
    return bytes(result)


def huffman_table(lengths: list[int]) -> list[int]:
    """The lookup by the next 15 bits: each entry ``symbol << 4 | code length``.  Codes
    are assigned by length, then by symbol; a code need not be complete (a table of one
    symbol has a one-bit code), but where none leads the entry is _EMPTY."""
    used = sorted((length, symbol) for symbol, length in enumerate(lengths) if length)
    if sum(1 << (MAX_BITS - length) for length, _ in used) > 1 << MAX_BITS:
        raise Unreadable("a Huffman table with more codes than bits")
    table = [_EMPTY] * (1 << MAX_BITS)
    code = 0
    for length, symbol in used:
        span = 1 << (MAX_BITS - length)
        table[code:code + span] = [symbol << 4 | length] * span
        code += span
    return table


class _Bits:
    """A block's bytes as bits, most significant first, up to ``end`` (a bit position):
    past it, a code was never written."""

    def __init__(self, data: bytes, position: int, end: int) -> None:
        self.data = data
        self.position = position
        self.end = end

    def take(self, count: int) -> int:
        """The next ``count`` bits (at most 32) as a number."""
        at, data = self.position >> 3, self.data
        value = (int.from_bytes(data[at:at + 5], "big") >> (40 - count - (self.position & 7))) \
            & ((1 << count) - 1)
        self.position += count
        if self.position > self.end:
            raise Unreadable("a code past the end of its block")
        return value

    def symbol(self, table: list[int]) -> int:
        at, data, position = self.position >> 3, self.data, self.position
        entry = table[((data[at] << 16 | data[at + 1] << 8 | data[at + 2])
                       >> (9 - (position & 7))) & 0x7FFF]
        if entry == _EMPTY:
            raise Unreadable("no such code")
        self.position = position + (entry & 15)
        if self.position > self.end:
            raise Unreadable("a code past the end of its block")
        return entry >> 4


def _tables(bits: _Bits) -> tuple[list[int], ...]:
    lengths: list[int] = []
    while len(lengths) < LENGTH_CODES:
        length = bits.take(4)
        if length == 15:
            zeros = bits.take(4)
            lengths += [0] * (zeros + 2) if zeros else [15]
        else:
            lengths.append(length)
    code = huffman_table(lengths[:LENGTH_CODES])
    lengths = []
    while len(lengths) < TABLES:
        symbol = bits.symbol(code)
        if symbol < 16:
            lengths.append(symbol)
        elif symbol < 18:
            if not lengths:
                raise Unreadable("a repeat of no length")
            lengths += [lengths[-1]] * (bits.take(3) + 3 if symbol == 16 else bits.take(7) + 11)
        else:
            lengths += [0] * (bits.take(3) + 3 if symbol == 18 else bits.take(7) + 11)
    del lengths[TABLES:]
    ends = (MAIN, MAIN + DISTANCES, MAIN + DISTANCES + LOW_DISTANCES, TABLES)
    return tuple(huffman_table(lengths[a:b]) for a, b in zip((0, *ends[:3]), ends, strict=True))


def _length(bits: _Bits, slot: int) -> int:
    if slot < 8:
        return slot + 2
    extra = slot // 4 - 1
    return 2 + ((4 | slot & 3) << extra) + bits.take(extra)


def _filter_number(bits: _Bits) -> int:
    value = 0
    for index in range(bits.take(2) + 1):
        value |= bits.take(8) << (8 * index)
    return value


def _decode(packed: bytes, state: _State, end: int,
            filters: list[tuple[int, int, int, int]], size: int) -> Iterator[None]:
    """Block after block into ``state.out``, pausing every _PAUSE codes, until it holds
    ``end`` bytes or the last block ends; filters found go to ``filters``."""
    out = state.out
    base = end - size
    data = packed + bytes(8)
    at = 0                          # the byte where the next block header starts
    blocks = filters_seen = 0
    filtered_to = 0                 # where the last filter's range ends
    distances = state.distances
    while len(out) < end:
        blocks += 1
        if blocks > 2 + (len(out) - base) // BYTES_PER_BLOCK:
            raise Unreadable(f"{blocks} blocks for {len(out) - base} bytes")
        if at + 3 > len(packed):
            raise Unreadable("the packed data ends before a block")
        flags, check = data[at], data[at + 1]
        width = (flags >> 3 & 3) + 1
        if flags >> 3 & 7 > 2:
            raise Unreadable("a block header of more than 3 size bytes")
        block_size = int.from_bytes(data[at + 2:at + 2 + width], "little")
        if check != 0x5A ^ flags ^ block_size & 0xFF ^ block_size >> 8 & 0xFF ^ block_size >> 16:
            raise Unreadable("a block header that fails its check")
        start = at + 2 + width
        at = start + block_size
        if at > len(packed):
            raise Unreadable("a block past the end of the packed data")
        bits = _Bits(data, start * 8, (at - 1) * 8 + (flags & 7) + 1 if block_size else start * 8)
        if flags & 0x80:
            state.tables = _tables(bits)
        if state.tables is None:
            raise Unreadable("a block without tables first")
        main, distance_code, low_code, repeat_code = state.tables
        # The hot path, literals, kept to local names; ``bits.position`` follows
        # ``position`` whenever anything else reads bits.
        position, block_end, append = bits.position, bits.end, out.append
        codes = 0
        while position < block_end and len(out) < end:
            codes += 1
            if codes & (_PAUSE - 1) == 0:
                yield
            byte = position >> 3
            entry = main[((data[byte] << 16 | data[byte + 1] << 8 | data[byte + 2])
                          >> (9 - (position & 7))) & 0x7FFF]
            position += entry & 15
            if entry < 256 << 4:
                if entry == _EMPTY or position > block_end:
                    raise Unreadable("no such code, or a code past the end of its block")
                append(entry >> 4)
                continue
            if position > block_end:
                raise Unreadable("a code past the end of its block")
            bits.position = position
            symbol = entry >> 4
            if symbol >= 262:           # a match: inline too, as common as literals
                slot = symbol - 262
                if slot < 8:
                    length = slot + 2
                else:
                    extra = (slot >> 2) - 1
                    byte = position >> 3
                    length = 2 + ((4 | slot & 3) << extra) + (
                        int.from_bytes(data[byte:byte + 4], "big")
                        >> (32 - extra - (position & 7)) & ((1 << extra) - 1))
                    position += extra
                byte = position >> 3
                entry = distance_code[((data[byte] << 16 | data[byte + 1] << 8 | data[byte + 2])
                                       >> (9 - (position & 7))) & 0x7FFF]
                if entry == _EMPTY:
                    raise Unreadable("no such code")
                position += entry & 15
                slot = entry >> 4
                if slot < 4:
                    distance = slot + 1
                else:
                    extra = (slot >> 1) - 1
                    distance = 1 + ((2 | slot & 1) << extra)
                    if extra < 4:
                        byte = position >> 3
                        distance += int.from_bytes(data[byte:byte + 2], "big") \
                            >> (16 - extra - (position & 7)) & ((1 << extra) - 1)
                        position += extra
                    else:
                        if extra > 4:
                            high, byte = extra - 4, position >> 3
                            distance += (int.from_bytes(data[byte:byte + 5], "big")
                                         >> (40 - high - (position & 7))
                                         & ((1 << high) - 1)) << 4
                            position += high
                        byte = position >> 3
                        entry = low_code[((data[byte] << 16 | data[byte + 1] << 8
                                           | data[byte + 2]) >> (9 - (position & 7))) & 0x7FFF]
                        if entry == _EMPTY:
                            raise Unreadable("no such code")
                        position += entry & 15
                        distance += entry >> 4
                if position > block_end:
                    raise Unreadable("a code past the end of its block")
                bits.position = position
                if distance > 0x100:
                    length += 1 + (distance > 0x2000) + (distance > 0x40000)
                distances[1:] = distances[:3]
                distances[0] = distance
            elif symbol == 256:
                filters_seen += 1
                if filters_seen > 2 + (len(out) - base) // BYTES_PER_FILTER:
                    raise Unreadable(f"{filters_seen} filters for {len(out) - base} bytes")
                offset = len(out) - base + _filter_number(bits)
                length = _filter_number(bits)
                kind = bits.take(3)
                channels = bits.take(5) + 1 if kind == DELTA else 0
                if kind > ARM:
                    raise Unreadable(f"a filter of unknown type {kind}")
                if not 4 <= length <= MAX_FILTER:
                    raise Unreadable(f"a filter over {length} bytes")
                if offset < filtered_to or offset + length > size:
                    raise Unreadable("a filter out of order or past the end")
                filtered_to = offset + length
                filters.append((offset, length, kind, channels))
                position = bits.position
                continue
            elif symbol == 257:
                if not state.last_length:
                    continue
                length, distance = state.last_length, distances[0]
            else:
                index = symbol - 258
                distance = distances[index]
                del distances[index]
                distances.insert(0, distance)
                length = _length(bits, bits.symbol(repeat_code))
            state.last_length = length
            position = bits.position
            copy_match(out, distance, length)
        yield
        if flags & 0x40:
            return
