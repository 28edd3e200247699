"""RAR 3 decompression (RAR 2.9's format: WinRAR 2.9 to 4.x, and WinRAR 5 and later when
"RAR4" is chosen), in pure Python: Debian's ClamAV has no unrar, and no external tool is
run here, so without this an executable packed into such a RAR under a harmless name would
be known by that name alone.

Methods 1 to 5 ("fastest" to "best") write one bit stream per member, read from the most
significant bit of each byte on.  It is a run of blocks, each starting on a byte: a
first bit set means a PPMd block (variant H with RAR's own range coder: what WinRAR
picks for text in its better modes), decoded by ``ppmd7``: flags (a new model and its
memory in MB, a new escape byte, the order), then symbols; after the escape byte a code
ends the block (new tables follow), ends the member, brings a filter record, a match
(distance in three bytes, length) or a run, or stands for the escape byte itself.
Otherwise an LZ block: a bit "keep the old lengths" (when clear they start from zero),
20 code lengths of 4 bits (15 then 0 is a length of 15; 15 then n, n + 2 zero lengths)
giving a code that spells out 404 lengths, each added (modulo 16) to the old one (0-15;
16 and 17 repeat the previous length 3 + 3 bits or 11 + 7 bits times, 18 and 19 give
that many zeros): four tables, 299 main symbols, 60 distance slots, 17 low distance
symbols, 28 length slots.  Codes are canonical, at most 15 bits.

Main symbols: 0-255 a literal byte; 256 the block's end (a bit set: new tables follow;
clear: the member's end, and a bit telling whether the next member of a solid run starts
with tables); 257 a filter record; 258 the last match again; 259-262 one of the four last
distances (moved to the front) with a length from the length table (slot base + 2); 263-270
a two-byte match at a short distance (base + 1 and 2-6 bits); 271-298 a length slot (base +
3, and 0-5 bits), then a distance slot (base + 1, then 0-18 bits; from slot 10 on, the low
four bits come from the low-distance table, whose symbol 16 means "the last low bits,
this time and the next 15").  A match of a distance of 0x2000 or more is one byte longer,
of 0x40000 or more two.

Filters are RAR's virtual machine programs, carried in the stream as bytecode and run over
a range of the output (the output itself stays unfiltered, for matches to refer to): a
record names the program (a new one, or one seen before: numbered in order, the last one
used when none is named), the range's start (after the current position) and length
(else the program's last), initial registers and global data.  Real archives carry only
WinRAR's six standard programs, told by the CRC32 and length of their code, and run here
natively: E8 and E8E9 (x86 call and jump targets made absolute), ITANIUM (IA-64 branch
targets), DELTA (bytes stored as differences, per channel), RGB (pixels predicted from
their neighbours) and AUDIO (samples predicted, per channel).  Any other program is
refused (Unreadable: "a RAR VM program not run here").  Records for the same range and
length chain: each runs on the output of the one before.  The output is handed on only
once every filter over it has run.

Bounds, since hostile input is the normal case: no window is allocated from the
dictionary size the header claims; only the output produced so far is kept (the caller
never asks for more than its limit), and a match reaching before its start is damage.
Tables must average 4 KiB of output each (they cost a few milliseconds to build), filter
records one per 4 KiB; a filter's range is at most the VM's working memory (240 KiB),
inside the member, not overlapping another's, and at most three programs chain on one.

Solid archives pack members as one stream: each member's bits start anew, but the
tables, the last distances, the filter programs and the output so far carry on from the
member before; ``Stream`` passes that state on, as ``rar5.Stream`` does (a member of a
solid run is decoded only when every member before it was decoded to its end).

Decoding is resumable (``first(n)`` goes on from where the last call stopped) and never
goes past the bytes asked for.  Damage, a stream that ends early, or a CRC32 that does not
match once the whole member is decoded raises Unreadable; a solid member carrying on
the PPMd block of the member before raises Unsupported.  RAR
2.0's older method (unpack version 20 and 26, with its own audio coder) is not read here.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Generator, Iterator
from itertools import accumulate

from portcullis.antivirus import ppmd7
from portcullis.antivirus.rar5 import huffman_table
from portcullis.antivirus.readers import (
    Allowance,
    SolidRun,
    Unreadable,
    Unsupported,
    copy_match,
)

MAIN, DISTANCES, LOW_DISTANCES, LENGTHS = 299, 60, 17, 28
TABLES = MAIN + DISTANCES + LOW_DISTANCES + LENGTHS
LENGTH_CODES = 20
BYTES_PER_TABLE = 4096          # the least output a table may average (two of slack)
BYTES_PER_FILTER = 4096         # and a filter record,
FILTER_SLACK = 16               # after the first few (WinRAR names ranges ahead of output)
MAX_FILTER = 0x3C000            # the VM's working memory: no range of a filter is longer
MAX_CHAIN = 3                   # programs run one after another over the same range
MAX_PROGRAMS = 1024
E8, E8E9, ITANIUM, DELTA, RGB, AUDIO = "e8", "e8e9", "itanium", "delta", "rgb", "audio"
# WinRAR's standard programs, by (length, CRC32) of their bytecode.
STANDARD = {(53, 0xAD576887): E8, (57, 0x3CD7E57E): E8E9, (120, 0x3769893F): ITANIUM,
            (29, 0x0E06077D): DELTA, (149, 0x1C2C5DC8): RGB, (216, 0xBC85E701): AUDIO}
_PAUSE = 4096                   # codes decoded between looks at how far to go
_EMPTY = -1

_LENGTH_BITS = [0] * 8 + [n for n in range(1, 6) for _ in range(4)]
_LENGTH_BASES = list(accumulate((1 << b for b in _LENGTH_BITS[:-1]), initial=0))
_DISTANCE_BITS = [0, 0, 0, 0] + [n // 2 - 1 for n in range(4, 36)] + [16] * 12 + [18] * 12
_DISTANCE_BASES = list(accumulate((1 << b for b in _DISTANCE_BITS[:-1]), initial=0))
_SHORT_BASES = [0, 4, 8, 16, 32, 64, 128, 192]
_SHORT_BITS = [2, 2, 3, 4, 5, 6, 6, 6]
_E8 = re.compile(b"\xe8")
_E8E9 = re.compile(b"[\xe8\xe9]")


class _Program:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.uses = 0
        self.last_length = 0


class _State:
    """What a run of members shares: all of it in a solid archive; in another, each
    member starts anew."""

    def __init__(self, ppmd_allowance: Allowance | None = None) -> None:
        self.out = bytearray()          # every byte the run has produced, unfiltered
        self.lengths = [0] * TABLES     # the code lengths, which new ones are added to
        self.tables: tuple[list[int], ...] | None = None
        self.new_tables = True          # the next member starts with tables
        self.distances = [0, 0, 0, 0]   # the last four, most recent first
        self.last_distance = self.last_length = 0
        self.low_distance = self.low_repeats = 0
        self.programs: list[_Program] = []
        self.last_program = 0
        # PPMd blocks: the model (kept from block to block, and member to member in a
        # solid run, until a block resets it), its range decoder, the escape byte.
        self.ppmd: ppmd7.Model | None = None
        self.range_decoder: ppmd7.RarRangeDecoder | None = None
        self.escape = 2
        self.in_ppmd = False            # the current block is PPMd
        self.ppmd_allowance = ppmd_allowance


class Stream(SolidRun):
    """The members of one archive, in order: a member marked solid carries on from the
    decoder state the member before it left.  PPMd symbols are spent from
    ``ppmd_allowance``, the message's."""

    def __init__(self, ppmd_allowance: Allowance | None = None) -> None:
        super().__init__(lambda packed, size, crc, state, solid:
                         Expansion(packed, size, crc, state, solid=solid),
                         lambda: _State(ppmd_allowance))


def unpacker(packed: bytes, size: int, crc: int | None) -> Callable[[int], bytes]:
    """The ``first(n)`` of a member that does not carry on from another."""
    return Stream().unpacker(packed, size, crc)


class _Filter:
    """A range of the member's output (start, length) and the programs run over it, in
    order, with their registers."""

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length
        self.programs: list[tuple[str, list[int]]] = []


class Expansion:
    """A member being decoded: ``first(n)`` is its first n bytes (all, when shorter)."""

    def __init__(self, packed: bytes, size: int, crc: int | None, state: _State, *,
                 solid: bool = False) -> None:
        self.state = state
        self._size = size
        self._crc = crc
        self._base = len(state.out)
        self._done = bytearray()
        self._filters: list[_Filter] = []
        self.finished = False
        self._steps = _decode(packed, state, self._base, size, self._filters, solid)

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
            del self.state.out[self._base + self._size:]
            if self._crc is not None and zlib.crc32(self._done) != self._crc:
                raise Unreadable(f"damaged: CRC {zlib.crc32(self._done):08x}, "
                                 f"{self._crc:08x} expected")
        return bytes(self._done[:want])

    def _flush(self) -> None:
        out, done, base = self.state.out, self._done, self._base
        written = min(len(out) - base, self._size)
        filters = self._filters
        while filters and filters[0].start + filters[0].length <= written:
            flt = filters.pop(0)
            done += out[base + len(done):base + flt.start]
            block = bytes(out[base + flt.start:base + flt.start + flt.length])
            for kind, registers in flt.programs:
                block = _filtered(kind, block, flt.start, registers)
            done += block
        end = min(filters[0].start, written) if filters else written
        if end > len(done):
            done += out[base + len(done):base + end]


def _filtered(kind: str, data: bytes, start: int, registers: list[int]) -> bytes:
    """``data``, the member's output from ``start`` on, with program ``kind`` undone."""
    length = len(data)
    if kind in (E8, E8E9):
        size, result = 0x1000000, bytearray(data)
        pattern, at, last = (_E8E9 if kind == E8E9 else _E8), 0, length - 4
        while (found := pattern.search(data, at, last)) is not None:
            at = found.start() + 1
            position = (start + at) & 0xFFFFFFFF
            address = int.from_bytes(data[at:at + 4], "little")
            if address & 0x80000000:
                if position >= 0x100000000 - address:
                    result[at:at + 4] = ((address + size) & 0xFFFFFFFF).to_bytes(4, "little")
            elif address < size:
                result[at:at + 4] = ((address - position) & 0xFFFFFFFF).to_bytes(4, "little")
            at += 4
        return bytes(result)
    if kind == ITANIUM:
        return _itanium(data, start)
    channels = registers[0]
    if kind == DELTA:
        if not 0 < channels <= length or length > MAX_FILTER // 2:
            raise Unreadable(f"a delta filter of {channels} channels")
        result = bytearray(length)
        at = 0
        for channel in range(channels):
            count = len(range(channel, length, channels))
            values = accumulate(data[at:at + count], lambda a, b: (a - b) & 0xFF, initial=0)
            result[channel::channels] = bytes(values)[1:]
            at += count
        return bytes(result)
    if kind == RGB:
        return _rgb(data, registers[0], registers[1])
    return _audio(data, channels)


def _itanium(data: bytes, start: int) -> bytes:
    """IA-64 bundles of 16 bytes: in the slots the template names, a branch's 20-bit
    target made absolute (in bundles), relative again."""
    masks = [4, 4, 6, 6, 0, 0, 7, 7, 4, 4, 0, 0, 4, 4, 0, 0]
    result = bytearray(data)
    bundle = start >> 4
    for at in range(0, max(len(data) - 21, 0), 16):
        template = (result[at] & 0x1F) - 0x10
        if template >= 0 and masks[template]:
            value = int.from_bytes(result[at:at + 16], "little")
            for slot in range(3):
                if masks[template] >> slot & 1:
                    first = slot * 41 + 5
                    if value >> (first + 37) & 15 == 5:
                        target = value >> (first + 13) & 0xFFFFF
                        value &= ~(0xFFFFF << (first + 13))
                        value |= ((target - bundle) & 0xFFFFF) << (first + 13)
            result[at:at + 16] = value.to_bytes(16, "little")
        bundle += 1
    return bytes(result)


def _rgb(data: bytes, width: int, red: int) -> bytes:
    """Pixels of three bytes, each byte predicted from the one before and the ones a row
    (``width`` bytes) above, then green added back to red and blue."""
    length = len(data)
    if length > MAX_FILTER // 2 or length < 3 or width > length or red > 2 or width < 3:
        raise Unreadable(f"an rgb filter of width {width} over {length} bytes")
    result = bytearray(length)
    source = 0
    for channel in range(3):
        byte = 0
        for at in range(channel, length, 3):
            above = at - width
            if above >= 0:
                left, up = result[above + 3], result[above]
                delta1 = abs(left - up)
                delta2 = abs(byte - up)
                delta3 = abs(left - up + byte - up)
                if delta1 > delta2 or delta1 > delta3:
                    byte = left if delta2 <= delta3 else up
            byte = (byte - data[source]) & 0xFF
            source += 1
            result[at] = byte
    for at in range(red, length - 2, 3):
        result[at] = (result[at] + result[at + 1]) & 0xFF
        result[at + 2] = (result[at + 2] + result[at + 1]) & 0xFF
    return bytes(result)


def _audio(data: bytes, channels: int) -> bytes:
    """Samples of one byte per channel, each predicted from the ones before with weights
    that adapt every 32 samples."""
    length = len(data)
    if not 0 < channels <= length or length > MAX_FILTER // 2:
        raise Unreadable(f"an audio filter of {channels} channels")
    result = bytearray(length)
    source = 0
    for channel in range(channels):
        weights = [0, 0, 0]
        d0 = d1 = d2 = 0
        last_delta = last_byte = 0
        errors = [0] * 7
        for count, at in enumerate(range(channel, length, channels)):
            delta = data[source] - 256 if data[source] > 127 else data[source]
            source += 1
            d2 = d1
            d1 = last_delta - d0
            d0 = last_delta
            predicted = ((8 * last_byte + weights[0] * d0 + weights[1] * d1
                          + weights[2] * d2) >> 3) & 0xFF
            byte = (predicted - delta) & 0xFF
            error = delta << 3
            errors[0] += abs(error)
            errors[1] += abs(error - d0)
            errors[2] += abs(error + d0)
            errors[3] += abs(error - d1)
            errors[4] += abs(error + d1)
            errors[5] += abs(error - d2)
            errors[6] += abs(error + d2)
            last_delta = (byte - last_byte + 128) % 256 - 128
            result[at] = last_byte = byte
            if count & 0x1F == 0:
                best = min(range(7), key=lambda k: (errors[k], k))
                errors = [0] * 7
                if best:
                    weight = (best - 1) // 2
                    if best & 1 and weights[weight] >= -16:
                        weights[weight] -= 1
                    elif not best & 1 and weights[weight] < 16:
                        weights[weight] += 1
    return bytes(result)


class _Bits:
    """The member's bytes as bits, most significant first; past ``end`` (a bit
    position) nothing was written."""

    def __init__(self, data: bytes, end: int) -> None:
        self.data = data + bytes(8)
        self.position = 0
        self.end = end

    def take(self, count: int) -> int:
        """The next ``count`` bits (at most 32) as a number."""
        at = self.position >> 3
        value = (int.from_bytes(self.data[at:at + 5], "big")
                 >> (40 - count - (self.position & 7))) & ((1 << count) - 1)
        self.position += count
        if self.position > self.end:
            raise Unreadable("the packed data ends in a code")
        return value

    def symbol(self, table: list[int]) -> int:
        at, data, position = self.position >> 3, self.data, self.position
        entry = table[((data[at] << 16 | data[at + 1] << 8 | data[at + 2])
                       >> (9 - (position & 7))) & 0x7FFF]
        if entry == _EMPTY:
            raise Unreadable("no such code")
        self.position = position + (entry & 15)
        if self.position > self.end:
            raise Unreadable("the packed data ends in a code")
        return entry >> 4


def _tables(bits: _Bits, state: _State) -> None:
    """A block's header, from the next byte on: PPMd's (``state.in_ppmd``), or new LZ
    tables."""
    bits.position = (bits.position + 7) & ~7
    state.in_ppmd = bool(bits.take(1))
    if state.in_ppmd:
        _ppmd_header(bits, state)
        return
    if not bits.take(1):
        state.lengths = [0] * TABLES
    code_lengths: list[int] = []
    while len(code_lengths) < LENGTH_CODES:
        length = bits.take(4)
        if length == 15:
            zeros = bits.take(4)
            code_lengths += [0] * (zeros + 2) if zeros else [15]
        else:
            code_lengths.append(length)
    code = huffman_table(code_lengths[:LENGTH_CODES])
    lengths = state.lengths
    at = 0
    while at < TABLES:
        symbol = bits.symbol(code)
        if symbol < 16:
            lengths[at] = (lengths[at] + symbol) & 15
            at += 1
        elif symbol < 18:
            if not at:
                raise Unreadable("a repeat of no length")
            count = bits.take(3) + 3 if symbol == 16 else bits.take(7) + 11
            for _ in range(min(count, TABLES - at)):
                lengths[at] = lengths[at - 1]
                at += 1
        else:
            count = bits.take(3) + 3 if symbol == 18 else bits.take(7) + 11
            for _ in range(min(count, TABLES - at)):
                lengths[at] = 0
                at += 1
    ends = (MAIN, MAIN + DISTANCES, MAIN + DISTANCES + LOW_DISTANCES, TABLES)
    state.tables = tuple(huffman_table(lengths[a:b])
                         for a, b in zip((0, *ends[:3]), ends, strict=True))
    state.new_tables = False


def _ppmd_header(bits: _Bits, state: _State) -> None:
    """A PPMd block's header (after its first bit): flags (0x20: a new model, whose
    memory in MB follows; 0x40: a new escape byte follows; the low five bits the model's
    order), then the range decoder's first four bytes."""
    flags = bits.take(7)
    memory = bits.take(8) + 1 << 20 if flags & 0x20 else 0
    if flags & 0x40:
        state.escape = bits.take(8)
    if flags & 0x20:
        order = (flags & 0x1F) + 1
        if order > 16:
            order = 16 + (order - 16) * 3
        if state.ppmd is not None:
            state.ppmd.release()
            state.ppmd = None
        # Unreadable for an order of 1.
        state.ppmd = ppmd7.Model(memory, order, state.ppmd_allowance)
    elif state.ppmd is None:
        raise Unreadable("a PPMd block carrying on a model never started")
    source = ppmd7.Input(bits.data[:bits.end >> 3], bits.position >> 3)
    state.range_decoder = ppmd7.RarRangeDecoder(source)
    bits.position = source.position * 8


class _Code:
    """A filter record's bytes, as bits from the most significant."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def take(self, count: int) -> int:
        if count > self.left:
            raise Unreadable("a filter record cut short")
        self.left -= count
        return self.value >> self.left & ((1 << count) - 1)

    def number(self) -> int:
        kind = self.take(2)
        if kind == 0:
            return self.take(4)
        if kind == 1:
            value = self.take(8)
            return value if value >= 16 else 0xFFFFFF00 | value << 4 | self.take(4)
        return self.take(16) if kind == 2 else self.take(32)


def _filter_record(bits: _Bits, state: _State, produced: int, size: int,
                   filters: list[_Filter], filtered_to: int) -> int:
    """Read a filter record (symbol 257) into ``filters``; returns where the filtered
    ranges now end.  ``produced``: the member's output so far."""
    flags = bits.take(8)
    length = (flags & 7) + 1
    if length == 7:
        length = bits.take(8) + 7
    elif length == 8:
        length = bits.take(16)
    return _filter(flags, bytes(bits.take(8) for _ in range(length)), state, produced, size,
                   filters, filtered_to)


def _filter(flags: int, record: bytes, state: _State, produced: int, size: int,
            filters: list[_Filter], filtered_to: int) -> int:
    """A filter record's ``flags`` and its bytes (from an LZ block's bits or a PPMd
    block's symbols) into ``filters``; returns where the filtered ranges now end."""
    code = _Code(record)
    programs = state.programs
    if flags & 0x80:
        number = code.number()
        if number == 0:
            programs.clear()
        else:
            number -= 1
        if number > len(programs) or number >= MAX_PROGRAMS:
            raise Unreadable(f"a filter record naming program {number} of {len(programs)}")
        state.last_program = number
    else:
        number = state.last_program
    program = programs[number] if number < len(programs) else None
    start = produced + code.number() + (258 if flags & 0x40 else 0)
    block = code.number() if flags & 0x20 else program.last_length if program else 0
    registers = [0] * 7
    if flags & 0x10:
        mask = code.take(7)
        for index in range(7):
            if mask >> index & 1:
                registers[index] = code.number()
    if program is None:
        size_of_code = code.number()
        if not 0 < size_of_code <= 0x10000:
            raise Unreadable("a filter program of no length or too long")
        bytecode = bytes(code.take(8) for _ in range(size_of_code))
        kind = STANDARD.get((size_of_code, zlib.crc32(bytecode)))
        if kind is None:
            raise Unreadable("a RAR VM program not run here")
        program = _Program(kind)
        programs.append(program)
    program.uses += 1
    program.last_length = block
    if flags & 0x08:
        global_size = code.number()
        if global_size > 0x2000 - 0x40:
            raise Unreadable("a filter's global data too long")
        code.take(8 * global_size)
    if not 4 <= block <= MAX_FILTER:
        raise Unreadable(f"a filter over {block} bytes")
    if filters and filters[-1].start == start and filters[-1].length == block:
        if len(filters[-1].programs) >= MAX_CHAIN:
            raise Unreadable("too many filters over one range")
        filters[-1].programs.append((program.kind, registers))
        return filtered_to
    if start < filtered_to or start + block > size:
        raise Unreadable("a filter out of order or past the end")
    flt = _Filter(start, block)
    flt.programs.append((program.kind, registers))
    filters.append(flt)
    return start + block


class _Counts:
    """What a member's blocks have cost so far, against the bounds: tables (or PPMd
    block headers) and filter records per byte of output."""

    def __init__(self) -> None:
        self.tables = self.filters = 0
        self.filtered_to = 0

    def table_read(self, produced: int) -> None:
        self.tables += 1
        if self.tables > 2 + produced // BYTES_PER_TABLE:
            raise Unreadable(f"{self.tables} tables for {produced} bytes")

    def filter_seen(self, produced: int) -> None:
        self.filters += 1
        if self.filters > FILTER_SLACK + produced // BYTES_PER_FILTER:
            raise Unreadable(f"{self.filters} filters for {produced} bytes")


def _decode(packed: bytes, state: _State, base: int, size: int, filters: list[_Filter],
            solid: bool) -> Iterator[None]:
    """The member's bits into ``state.out`` (whose first ``base`` bytes are the members
    before it in a solid run), pausing every _PAUSE codes, until it holds ``base + size``
    bytes or the member's end code; filter records go to ``filters``.  LZ and PPMd blocks
    may follow each other; both write to the same output (matches reach across)."""
    bits = _Bits(packed, len(packed) * 8)
    counts = _Counts()
    if solid and state.in_ppmd:
        # unrar carries the block (model and range decoder) on into the next member.
        raise Unsupported("a solid member carrying on its predecessor's PPMd block")
    if not solid or state.new_tables or (state.tables is None and not state.in_ppmd):
        _tables(bits, state)
        counts.tables = 1
    while True:
        if state.in_ppmd:
            if not (yield from _ppmd_block(bits, state, base, size, filters, counts)):
                break
            counts.table_read(len(state.out) - base)
            _tables(bits, state)
        elif not (yield from _lz_block(bits, state, base, size, filters, counts)):
            break
    yield


def _ppmd_block(bits: _Bits, state: _State, base: int, size: int, filters: list[_Filter],
                counts: _Counts) -> Generator[None, None, bool]:
    """A PPMd block's symbols into ``state.out``: bytes, and after the escape byte a
    code: 0 the block's end (new tables follow: returns True), 2 the member's end, 3 a
    filter record, 4 a match (distance in three bytes, length), 5 a run (the last byte
    again), anything else the escape byte itself."""
    model, decoder, escape = state.ppmd, state.range_decoder, state.escape
    assert model is not None and decoder is not None
    out = state.out
    end = base + size
    append = out.append

    def symbol() -> int:
        value = model.decode_symbol(decoder)
        if value < 0:
            raise Unreadable("PPMd's end marker inside a RAR block")
        return value

    paused = model.symbols
    while len(out) < end:
        if model.symbols - paused >= _PAUSE:
            paused = model.symbols
            yield
        # Bytes up to the next escape byte, many at a time (PPMd's own loop is the hot one).
        stopped = model.decode_many(decoder, out, min(end - len(out), _PAUSE), escape)
        if stopped is None:
            continue
        if stopped == ppmd7.END:
            raise Unreadable("PPMd's end marker inside a RAR block")
        byte = escape
        code = symbol()
        if code == 0:
            bits.position = decoder.source.position * 8
            return True
        if code == 2:
            break
        if code == 3:
            flags = symbol()
            length = (flags & 7) + 1
            if length == 7:
                length = symbol() + 7
            elif length == 8:
                length = symbol() << 8 | symbol()
            record = bytes(symbol() for _ in range(length))
            produced = len(out) - base
            counts.filter_seen(produced)
            counts.filtered_to = _filter(flags, record, state, produced, size, filters,
                                         counts.filtered_to)
            continue
        if code == 4:
            distance = (symbol() << 16 | symbol() << 8 | symbol()) + 2
            length = symbol() + 32
        elif code == 5:
            distance, length = 1, symbol() + 4
        else:
            append(byte)
            continue
        copy_match(out, distance, length)
    return False


def _lz_block(bits: _Bits, state: _State, base: int, size: int, filters: list[_Filter],
              counts: _Counts) -> Generator[None, None, bool]:
    """LZ blocks (one after another, as long as their tables say so) into
    ``state.out``; returns True when a PPMd block follows, False at the member's end."""
    out = state.out
    end = base + size
    data = bits.data
    distances = state.distances
    assert state.tables is not None
    main, distance_code, low_code, length_code = state.tables
    position, block_end, append = bits.position, bits.end, out.append
    codes = 0
    while len(out) < end:
        codes += 1
        if codes & (_PAUSE - 1) == 0:
            yield
        byte = position >> 3
        entry = main[((data[byte] << 16 | data[byte + 1] << 8 | data[byte + 2])
                      >> (9 - (position & 7))) & 0x7FFF]
        position += entry & 15
        if entry < 256 << 4:
            if entry == _EMPTY or position > block_end:
                raise Unreadable("no such code, or the packed data ends in one")
            append(entry >> 4)
            continue
        if position > block_end:
            raise Unreadable("the packed data ends in a code")
        bits.position = position
        symbol = entry >> 4
        if symbol >= 271:
            slot = symbol - 271
            length = _LENGTH_BASES[slot] + 3
            if _LENGTH_BITS[slot]:
                length += bits.take(_LENGTH_BITS[slot])
            slot = bits.symbol(distance_code)
            distance = _DISTANCE_BASES[slot] + 1
            extra = _DISTANCE_BITS[slot]
            if slot > 9:
                if extra > 4:
                    distance += bits.take(extra - 4) << 4
                if state.low_repeats:
                    state.low_repeats -= 1
                    distance += state.low_distance
                else:
                    low = bits.symbol(low_code)
                    if low == 16:
                        state.low_repeats = 15
                        distance += state.low_distance
                    else:
                        distance += low
                        state.low_distance = low
            elif extra:
                distance += bits.take(extra)
            if distance >= 0x2000:
                length += 1 + (distance >= 0x40000)
            distances[1:] = distances[:3]
            distances[0] = distance
        elif symbol >= 263:
            slot = symbol - 263
            distance = _SHORT_BASES[slot] + 1 + bits.take(_SHORT_BITS[slot])
            length = 2
            distances[1:] = distances[:3]
            distances[0] = distance
        elif symbol >= 259:
            index = symbol - 259
            distance = distances[index]
            del distances[index]
            distances.insert(0, distance)
            slot = bits.symbol(length_code)
            length = _LENGTH_BASES[slot] + 2
            if _LENGTH_BITS[slot]:
                length += bits.take(_LENGTH_BITS[slot])
        elif symbol == 258:
            position = bits.position
            if not state.last_length:
                continue
            length, distance = state.last_length, state.last_distance
        elif symbol == 257:
            produced = len(out) - base
            counts.filter_seen(produced)
            counts.filtered_to = _filter_record(bits, state, produced, size, filters,
                                                counts.filtered_to)
            position = bits.position
            continue
        else:                                   # 256: the block's end
            if bits.take(1):
                counts.table_read(len(out) - base)
                yield
                _tables(bits, state)
                if state.in_ppmd:
                    return True
                main, distance_code, low_code, length_code = state.tables
                position = bits.position
                continue
            state.new_tables = bool(bits.take(1))
            break
        state.last_length, state.last_distance = length, distance
        position = bits.position
        copy_match(out, distance, length)
    else:
        # The member is whole; its end code, when there is one, tells whether the next
        # member of a solid run starts with tables.
        bits.position = position
        try:
            if bits.symbol(main) == 256 and not bits.take(1):
                state.new_tables = bool(bits.take(1))
        except Unreadable:
            pass
    return False
