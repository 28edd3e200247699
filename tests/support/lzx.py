"""An LZX compressor for cabinets ([MS-PATCH] 2), for the tests: makecab, which writes
LZX cabinets, does not run here, so the tests write their own, and 7-Zip's reader of
them is the judge that they are right (``test_archives``).

Greedy matching with the three repeated offsets; verbatim, aligned-offset and stored
blocks, in the order a ``plan`` gives, any of them spanning several 32 KiB frames (the bit
stream realigned after each); code lengths sent through the pretree with its runs of zeros
and of one length; E8 translation of x86 call targets.
"""

from __future__ import annotations

import heapq
import struct

from portcullis.antivirus.lzx import (
    ALIGNED,
    E8_FRAMES,
    EXTRA_BITS,
    FRAME,
    LENGTHS,
    POSITION_BASE,
    SLOTS,
    UNCOMPRESSED,
    VERBATIM,
)

MAX_MATCH = 257


class _Bits:
    """16-bit little-endian words, filled from their most significant bit."""

    def __init__(self) -> None:
        self.out = bytearray()
        self._value = 0
        self._count = 0

    def write(self, value: int, count: int) -> None:
        self._value = self._value << count | value
        self._count += count
        while self._count >= 16:
            self._count -= 16
            self.out += (self._value >> self._count & 0xFFFF).to_bytes(2, "little")
        self._value &= (1 << self._count) - 1

    def align(self) -> None:
        """To the next word (nothing when there already): after each frame."""
        if self._count:
            self.write(0, 16 - self._count)

    def before_stored(self) -> None:
        """1 to 16 bits, as a stored block's header is followed."""
        self.write(0, 16 - self._count)

    def raw(self, data: bytes) -> None:
        assert self._count == 0
        self.out += data


def _code_lengths(frequencies: list[int], limit: int) -> list[int]:
    """Huffman code lengths of at most ``limit`` bits, at least two symbols coded (a
    single code would be an incomplete tree)."""
    frequencies = list(frequencies)
    for symbol in range(len(frequencies)):
        if sum(1 for f in frequencies if f) >= 2:
            break
        frequencies[symbol] = frequencies[symbol] or 1
    while True:
        heap = [(f, symbol, (symbol,)) for symbol, f in enumerate(frequencies) if f]
        heapq.heapify(heap)
        depth = [0] * len(frequencies)
        tie = len(frequencies)
        while len(heap) > 1:
            f1, _, first = heapq.heappop(heap)
            f2, _, second = heapq.heappop(heap)
            for symbol in first + second:
                depth[symbol] += 1
            tie += 1
            heapq.heappush(heap, (f1 + f2, tie, first + second))
        if max(depth) <= limit:
            return depth
        frequencies = [(f >> 1) | 1 if f else 0 for f in frequencies]


def _codes(lengths: list[int]) -> dict[int, tuple[int, int]]:
    """Canonical codes: (code, length) of each coded symbol."""
    codes, code, previous = {}, 0, 0
    for length, symbol in sorted((n, s) for s, n in enumerate(lengths) if n):
        code <<= length - previous
        codes[symbol] = (code, length)
        code, previous = code + 1, length
    return codes


def _pretree_tokens(new: list[int], old: list[int]) -> list[tuple[int, int, int]]:
    """(pretree symbol, extra bits, their count) turning ``old`` lengths into ``new``."""
    tokens, at = [], 0
    while at < len(new):
        run = 1
        while at + run < len(new) and new[at + run] == new[at]:
            run += 1
        if new[at] == 0 and run >= 20:
            run = min(run, 51)
            tokens.append((18, run - 20, 5))
        elif new[at] == 0 and run >= 4:
            run = min(run, 19)
            tokens.append((17, run - 4, 4))
        elif new[at] and run >= 4:
            run = min(run, 5)
            tokens.append((19, run - 4, 1))
            tokens.append(((old[at] - new[at]) % 17, 0, 0))
        else:
            run = 1
            tokens.append(((old[at] - new[at]) % 17, 0, 0))
        at += run
    return tokens


def _write_lengths(bits: _Bits, new: list[int], old: list[int]) -> None:
    tokens = _pretree_tokens(new, old)
    frequencies = [0] * 20
    for symbol, _, _ in tokens:
        frequencies[symbol] += 1
    lengths = _code_lengths(frequencies, 15)
    for length in lengths:
        bits.write(length, 4)
    codes = _codes(lengths)
    for symbol, extra, count in tokens:
        bits.write(*codes[symbol])
        if count:
            bits.write(extra, count)


def _slot(value: int) -> int:
    """The position slot of a formatted offset (offset + 2)."""
    slot = 0
    while POSITION_BASE[slot + 1] <= value:
        slot += 1
    return slot


def _translate_e8(data: bytes, size: int) -> bytes:
    """What the compressor packs: call targets made absolute, frame by frame."""
    out = bytearray(data)
    for start in range(0, min(len(out), E8_FRAMES * FRAME), FRAME):
        end = min(start + FRAME, len(out))
        if end - start <= 10:
            continue
        at = out.find(0xE8, start, end - 10)
        while at >= 0:
            relative = int.from_bytes(out[at + 1:at + 5], "little", signed=True)
            if -at <= relative < size - at:
                relative += at
            elif size - at <= relative < size:
                relative -= size
            out[at + 1:at + 5] = (relative & 0xFFFFFFFF).to_bytes(4, "little")
            at = out.find(0xE8, at + 5, end - 10)
    return bytes(out)


def _take_offset(repeated: list[int], offset: int) -> int | None:
    """R0-R2 updated as the decoder will for a match at ``offset``: which of them it was
    (0-2), or None for a new offset."""
    for index in (0, 1, 2):
        if offset == repeated[index]:
            repeated[0], repeated[index] = repeated[index], repeated[0]
            return index
    repeated[:] = [offset, repeated[0], repeated[1]]
    return None


def _tokens(data: bytes, start: int, end: int, window: int, heads: dict[bytes, list[int]],
            repeated: list[int]) -> list[tuple[int, int, int | None]]:
    """(length, offset, repeated offset used) matches and (0, byte, None) literals for
    data[start:end], greedy; no match crosses a frame; ``repeated`` (R0, R1, R2) is
    updated as the decoder will."""
    tokens, at = [], start
    while at < end:
        frame_end = min(end, (at // FRAME + 1) * FRAME)
        best, best_offset = 0, 0
        offsets = [*repeated, *(at - p for p in reversed(heads.get(data[at:at + 3], [])[-8:]))]
        for offset in offsets:
            if not 0 < offset <= min(at, window - 3):
                continue
            length = 0
            limit = min(MAX_MATCH, frame_end - at)
            while length < limit and data[at + length] == data[at + length - offset]:
                length += 1
            if length > best:
                best, best_offset = length, offset
        step = best if best >= 3 else 1
        for position in range(at, at + step):
            heads.setdefault(data[position:position + 3], []).append(position)
        if best >= 3:
            tokens.append((best, best_offset, _take_offset(repeated, best_offset)))
        else:
            tokens.append((0, data[at], None))
        at += step
    return tokens


def compress(data: bytes, window_bits: int = 16, *, e8_size: int = 0,
             plan: tuple[tuple[int, int], ...] = ((VERBATIM, 1 << 30),),
             block_bytes: int = 0) -> list[bytes]:
    """Each frame's packed bytes (a cabinet data block each).  ``plan``: (block type,
    frames) in turn, the last one taking what is left; ``block_bytes``: blocks of that
    many bytes instead; ``e8_size``: the file size for E8 translation (0: none)."""
    packed = _translate_e8(data, e8_size) if e8_size else data
    window, slots = 1 << window_bits, SLOTS[window_bits]
    bits = _Bits()
    bits.write(1 if e8_size else 0, 1)
    if e8_size:
        bits.write(e8_size >> 16, 16)
        bits.write(e8_size & 0xFFFF, 16)
    main_old, length_old = [0] * (256 + slots * 8), [0] * LENGTHS
    heads: dict[bytes, list[int]] = {}
    repeated = [1, 1, 1]
    frames: list[bytes] = []
    taken = 0
    at = 0
    steps = list(plan)
    while at < len(data):
        kind, count = steps.pop(0) if steps else plan[-1]
        end = min(len(data), at + (block_bytes or count * FRAME))
        if kind == UNCOMPRESSED:
            before = list(repeated)
            bits.write(kind, 3)
            bits.write((end - at) >> 8, 16)
            bits.write((end - at) & 0xFF, 8)
            bits.before_stored()
            bits.raw(struct.pack("<3I", *before))
            for start in range(at, end, FRAME):
                bits.raw(packed[start:min(start + FRAME, end)])
                frames.append(bytes(bits.out[taken:]))
                taken = len(bits.out)
            if (end - at) & 1:
                bits.raw(b"\0")
            for position in range(at, end):
                heads.setdefault(packed[position:position + 3], []).append(position)
            at = end
            continue
        tokens = _tokens(packed, at, end, window, heads, repeated)
        main_frequencies, length_frequencies = [0] * (256 + slots * 8), [0] * LENGTHS
        aligned_frequencies = [1] * 8
        if e8_size:
            main_frequencies[0xE8] = 1      # else the decoder would not start translating
        formatted = []
        for length, value, repeated_index in tokens:
            if not length:
                main_frequencies[value] += 1
                formatted.append((value, None, 0, 0))
                continue
            if repeated_index is not None:
                slot, extra_value = repeated_index, 0
            else:
                slot = _slot(value + 2)
                extra_value = value + 2 - POSITION_BASE[slot]
            assert slot < slots
            header = min(length - 2, 7)
            symbol = 256 + (slot << 3 | header)
            main_frequencies[symbol] += 1
            long = length - 2 - 7 if header == 7 else None
            if long is not None:
                length_frequencies[long] += 1
            if kind == ALIGNED and slot > 2 and EXTRA_BITS[slot] >= 3:
                aligned_frequencies[extra_value & 7] += 1
            formatted.append((symbol, long, slot, extra_value))
        main_new = _code_lengths(main_frequencies, 16)
        length_new = _code_lengths(length_frequencies, 16) if any(length_frequencies) \
            else [0] * LENGTHS
        bits.write(kind, 3)
        bits.write((end - at) >> 8, 16)
        bits.write((end - at) & 0xFF, 8)
        aligned_codes = {}
        if kind == ALIGNED:
            aligned_lengths = _code_lengths(aligned_frequencies, 7)
            for length in aligned_lengths:
                bits.write(length, 3)
            aligned_codes = _codes(aligned_lengths)
        _write_lengths(bits, main_new[:256], main_old[:256])
        _write_lengths(bits, main_new[256:], main_old[256:])
        _write_lengths(bits, length_new, length_old)
        main_old, length_old = main_new, length_new
        main_codes, length_codes = _codes(main_new), _codes(length_new)
        position = at
        for (symbol, long, slot, extra_value), (length, _, _) in zip(formatted, tokens,
                                                                      strict=True):
            bits.write(*main_codes[symbol])
            if long is not None:
                bits.write(*length_codes[long])
            if symbol >= 256 and slot > 2:
                extra = EXTRA_BITS[slot]
                if kind == ALIGNED and extra >= 3:
                    bits.write(extra_value >> 3, extra - 3)
                    bits.write(*aligned_codes[extra_value & 7])
                elif extra:
                    bits.write(extra_value, extra)
            position += length or 1
            if position % FRAME == 0 or position == len(data):
                bits.align()
                frames.append(bytes(bits.out[taken:]))
                taken = len(bits.out)
        at = end
    return frames


def chm_content(chm: bytes) -> tuple[int, bytes, int, dict[str, tuple[int, int]]]:
    """The LZX stream of a CHM help file (Microsoft's HTML Help compiler packs its pages
    with LZX, so this is the format as Microsoft's own compressor writes it): (window
    bits, the stream, its unpacked size, each file's (offset, size) in what it unpacks
    to).  Only a stream of one reset interval, as small files have."""
    def number(data: bytes, at: int) -> tuple[int, int]:     # ENCINT: 7 bits a byte
        value = 0
        while True:
            value, at = value << 7 | (data[at] & 0x7F), at + 1
            if not data[at - 1] & 0x80:
                return value, at

    assert chm[:4] == b"ITSF"
    directory, directory_size, content = struct.unpack_from("<QQQ", chm, 0x48)
    chunk, header = struct.unpack_from("<I", chm, directory + 0x10)[0], \
        struct.unpack_from("<I", chm, directory + 0x08)[0]
    entries: dict[str, tuple[int, int, int]] = {}
    for at in range(directory + header, directory + directory_size, chunk):
        page = chm[at:at + chunk]
        if page[:4] != b"PMGL":
            continue
        position, used = 0x14, chunk - struct.unpack_from("<I", page, 4)[0]
        while position < used:
            size, position = number(page, position)
            name = page[position:position + size].decode()
            section, position = number(page, position + size)
            offset, position = number(page, position)
            length, position = number(page, position)
            entries[name] = (section, offset, length)

    def stored(name: str) -> bytes:
        _, offset, length = entries[f"::DataSpace/Storage/MSCompressed/{name}"]
        return chm[content + offset:content + offset + length]

    _, signature, version, _, window = struct.unpack_from("<I4sIII", stored("ControlData"))
    assert signature == b"LZXC" and version == 2
    reset = stored("Transform/{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable")
    intervals, size = struct.unpack_from("<I", reset, 4)[0], struct.unpack_from("<Q", reset, 16)[0]
    assert intervals == 1
    files = {name.lstrip("/"): (offset, length) for name, (section, offset, length)
             in entries.items() if section == 1 and length}
    return 14 + window.bit_length(), stored("Content"), size, files
