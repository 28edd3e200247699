"""LZX, as Microsoft cabinets carry it ([MS-PATCH] 2, libmspack's ``lzxd.c``): what makecab
writes with ``CompressionType=LZX``, and what Windows updates and drivers come in.

LZ77 over a window of 32 KiB to 2 MiB, in blocks whose Huffman trees are sent as
differences from the previous block's (verbatim blocks; aligned-offset blocks, whose
offsets end in a tree of their own; stored blocks), three repeated offsets, and x86 call
targets made absolute before compression (E8 translation, undone frame by frame).  The
output comes in frames of 32 KiB, one per cabinet data block, and the bit stream is
realigned to 16 bits after each.

Decoded in Python, one step per literal or match: the cabinet reader counts its output
within the message's allowance for slow decoders.
"""

from __future__ import annotations

import itertools
import struct

from portcullis.antivirus.readers import Unreadable, copy_match

FRAME = 32 * 1024
VERBATIM, ALIGNED, UNCOMPRESSED = 1, 2, 3
MIN_WINDOW_BITS, MAX_WINDOW_BITS = 15, 21
# Position slots of each window size.
SLOTS = {15: 30, 16: 32, 17: 34, 18: 36, 19: 38, 20: 42, 21: 50}
EXTRA_BITS = [min(17, max(0, slot // 2 - 1)) for slot in range(51)]
POSITION_BASE = list(itertools.accumulate((1 << bits for bits in EXTRA_BITS), initial=0))
PRETREE, ALIGNED_TREE, LENGTHS = 20, 8, 249
CODE_BITS = 16                  # the longest code of any tree
SAFETY = 64                     # a run of lengths may run this far past its table
E8_FRAMES = 32768               # E8 translation stops after this many frames
# Each block header builds up to six decoding tables: a stream of tiny blocks would cost
# milliseconds a byte.  Real compressors write blocks of a frame or more.
MAX_BLOCKS_PER_FRAME = 16


def _table(lengths: list[int], *, empty_allowed: bool = False,
           bits: int = CODE_BITS) -> list[int] | None:
    """Decoding table of a canonical Huffman code: for every ``bits``-bit prefix of the
    stream, ``symbol << 5 | code length``.  None for a tree with no codes, where
    ``empty_allowed`` (the length tree of a block without long matches)."""
    order = sorted((length, symbol) for symbol, length in enumerate(lengths) if length)
    if not order:
        if empty_allowed:
            return None
        raise Unreadable("a Huffman tree without codes")
    table = [0] * (1 << bits)
    at = 0
    for length, symbol in order:
        if length > bits:
            raise Unreadable(f"a Huffman code of {length} bits")
        span = 1 << (bits - length)
        if at + span > len(table):
            raise Unreadable("an over-subscribed Huffman tree")
        table[at:at + span] = [symbol << 5 | length] * span
        at += span
    if at != len(table):
        raise Unreadable("an incomplete Huffman tree")
    return table


class Decoder:
    """One cabinet folder's LZX stream (its data blocks' bytes, joined), decoded a frame at
    a time (``frame``)."""

    def __init__(self, window_bits: int, data: bytes) -> None:
        if window_bits not in SLOTS:
            raise Unreadable(f"LZX window of 2^{window_bits} bytes")
        self.window_size = 1 << window_bits
        self.data = data
        # Read 16-bit little-endian words, most significant bit first: as one big-endian
        # bit string once each pair is swapped (zeros after the end, for peeking).
        padded = data + bytes(len(data) % 2)
        swapped = bytearray(len(padded))
        swapped[0::2], swapped[1::2] = padded[1::2], padded[0::2]
        self._bits = bytes(swapped) + bytes(8)
        self._end = len(padded) * 8
        self.position = 0                            # bits read
        self.window = bytearray()                    # output, the window's worth kept
        self._frame_start = 0                        # where the next frame starts in it
        self._frames = 0
        self._translated_to = 0                      # output position of the next frame
        self._main_lengths = [0] * (256 + SLOTS[window_bits] * 8 + SAFETY)
        self._main_symbols = 256 + SLOTS[window_bits] * 8
        self._length_lengths = [0] * (LENGTHS + SAFETY)
        self._main: list[int] | None = None
        self._lengths: list[int] | None = None
        self._aligned: list[int] | None = None
        self._block_type = 0
        self._blocks = 0
        self._block_length = 0
        self._remaining = 0
        self._bytewise = False                       # inside a stored block's bytes
        self._repeated = (1, 1, 1)
        self._header_read = False
        self._damage = ""                            # why a frame could not be decoded
        self._e8_size = 0
        self._e8_started = False

    def frame(self, size: int) -> bytes:
        """The next ``size`` bytes of output (a data block's, at most 32 KiB).  Once a frame
        was found damaged, every later one is too: the stream's state is lost."""
        if self._damage:
            raise Unreadable(self._damage)
        try:
            return self._frame(size)
        except Unreadable as exc:
            self._damage = str(exc)
            raise

    def _frame(self, size: int) -> bytes:
        if not 0 < size <= FRAME:
            raise Unreadable(f"an LZX frame of {size} bytes")
        if not self._header_read:
            self._header_read = True
            if self._read(1):
                self._e8_size = self._read(16) << 16 | self._read(16)
        window, end = self.window, self._frame_start + size
        while len(window) < end:
            if self._remaining == 0:
                self._block_header()
            before = len(window)
            run = min(self._remaining, end - before)
            if self._block_type == UNCOMPRESSED:
                at = self.position >> 3
                if at + run > len(self.data):
                    raise Unreadable("a stored LZX block ends early")
                window += self.data[at:at + run]
                self.position += run * 8
            else:
                self._symbols(before + run, self._block_type == ALIGNED)
            produced = len(window) - before
            if produced > self._remaining:
                raise Unreadable("an LZX match runs past the end of its block")
            self._remaining -= produced
        if self.position > self._end:
            raise Unreadable("LZX data ends early")
        if not self._bytewise and self.position % 16:
            self.position += 16 - self.position % 16
        out = self._translated(window[self._frame_start:end])
        self._frame_start = end
        self._frames += 1
        # Keep the window's worth of output (and what a match ran into the next frame).
        if len(window) > 2 * self.window_size:
            cut = len(window) - self.window_size
            del window[:cut]
            self._frame_start -= cut
        return out

    def _read(self, count: int) -> int:
        if count == 0:
            return 0
        at = self.position
        value = int.from_bytes(self._bits[at >> 3:(at >> 3) + 4], "big")
        self.position = at + count
        return value >> (32 - (at & 7) - count) & ((1 << count) - 1)

    def _symbol(self, table: list[int], bits: int) -> int:
        """One symbol of a tree whose table is indexed by ``bits`` bits."""
        at = self.position
        entry = table[int.from_bytes(self._bits[at >> 3:(at >> 3) + 3], "big")
                      >> (24 - (at & 7) - bits) & ((1 << bits) - 1)]
        self.position = at + (entry & 31)
        return entry >> 5

    def _block_header(self) -> None:
        if self.position > self._end:
            raise Unreadable("LZX data ends early")
        self._blocks += 1
        if self._blocks > MAX_BLOCKS_PER_FRAME * (self._frames + 1):
            raise Unreadable("more LZX blocks than a compressor writes (under 2 KiB each)")
        if self._block_type == UNCOMPRESSED and self._block_length & 1:
            self.position += 8                       # a stored block is padded to 16 bits
        self._bytewise = False
        self._block_type = self._read(3)
        self._block_length = self._remaining = self._read(16) << 8 | self._read(8)
        if self._block_type == ALIGNED:
            self._aligned = _table([self._read(3) for _ in range(ALIGNED_TREE)], bits=7)
        if self._block_type in (VERBATIM, ALIGNED):
            self._read_lengths(self._main_lengths, 0, 256)
            self._read_lengths(self._main_lengths, 256, self._main_symbols)
            self._main = _table(self._main_lengths[:self._main_symbols])
            if self._main_lengths[0xE8]:
                self._e8_started = True
            self._read_lengths(self._length_lengths, 0, LENGTHS)
            self._lengths = _table(self._length_lengths[:LENGTHS], empty_allowed=True)
        elif self._block_type == UNCOMPRESSED:
            self._e8_started = True
            # To a 16-bit boundary: 1 to 16 bits, then the three repeated offsets.
            self.position += 16 - self.position % 16
            at = self.position >> 3
            if at + 12 > len(self.data):
                raise Unreadable("a stored LZX block ends early")
            self._repeated = struct.unpack_from("<3I", self.data, at)
            self.position += 96
            self._bytewise = True
        else:
            raise Unreadable(f"LZX block type {self._block_type}")

    def _read_lengths(self, lengths: list[int], first: int, last: int) -> None:
        """Code lengths ``first`` to ``last``, sent through a pretree as differences from
        the previous block's (mod 17), with runs of zeros and of one length."""
        pretree_lengths = [self._read(4) for _ in range(PRETREE)]
        bits = max(pretree_lengths)                  # a table of 2^bits, not 2^16
        pretree = _table(pretree_lengths, bits=bits)
        assert pretree is not None
        at = first
        while at < last:
            code = self._symbol(pretree, bits)
            if code == 17:
                run, value = self._read(4) + 4, 0
            elif code == 18:
                run, value = self._read(5) + 20, 0
            elif code == 19:
                run, difference = self._read(1) + 4, self._symbol(pretree, bits)
                if difference > 16:
                    raise Unreadable("a damaged LZX length run")
                value = (lengths[at] - difference) % 17
            else:
                run, value = 1, (lengths[at] - code) % 17
            lengths[at:at + run] = [value] * run
            at += run
            if at > len(lengths):
                raise Unreadable("an LZX length run past its table")

    def _symbols(self, stop: int, aligned: bool) -> None:
        """Literals and matches until the window reaches ``stop`` (a match may end past
        it)."""
        window, main, lengths = self.window, self._main, self._lengths
        aligned_tree = self._aligned
        bits, limit = self._bits, self.window_size
        assert main is not None
        r0, r1, r2 = self._repeated
        at = self.position
        while len(window) < stop:
            entry = main[int.from_bytes(bits[at >> 3:(at >> 3) + 3], "big") >> (8 - (at & 7))
                         & 0xFFFF]
            at += entry & 31
            symbol = entry >> 5
            if symbol < 256:
                window.append(symbol)
                continue
            symbol -= 256
            length = symbol & 7
            if length == 7:
                if lengths is None:
                    raise Unreadable("a long LZX match in a block without a length tree")
                entry = lengths[int.from_bytes(bits[at >> 3:(at >> 3) + 3], "big")
                                >> (8 - (at & 7)) & 0xFFFF]
                at += entry & 31
                length += entry >> 5
            length += 2
            slot = symbol >> 3
            if slot > 2:
                extra = EXTRA_BITS[slot]
                offset = POSITION_BASE[slot] - 2
                self.position = at
                if aligned and extra >= 3:
                    offset += self._read(extra - 3) << 3
                    assert aligned_tree is not None
                    offset += self._symbol(aligned_tree, 7)
                else:
                    offset += self._read(extra)
                at = self.position
                r0, r1, r2 = offset, r0, r1
            elif slot == 1:
                r0, r1 = r1, r0
            elif slot == 2:
                r0, r2 = r2, r0
            if r0 > limit:
                raise Unreadable("an LZX match reaches beyond the window")
            copy_match(window, r0, length)
        self.position = at
        self._repeated = (r0, r1, r2)

    def _translated(self, frame: bytearray) -> bytes:
        """The frame with its E8 call targets made relative again."""
        start, self._translated_to = self._translated_to, self._translated_to + len(frame)
        if not (self._e8_started and self._e8_size and self._frames < E8_FRAMES
                and len(frame) > 10):
            return bytes(frame)
        out, size, last = bytearray(frame), self._e8_size, len(frame) - 10
        at = out.find(0xE8, 0, last)
        while at >= 0:
            position = start + at
            target = int.from_bytes(out[at + 1:at + 5], "little", signed=True)
            if -position <= target < size:
                relative = target - position if target >= 0 else target + size
                out[at + 1:at + 5] = (relative & 0xFFFFFFFF).to_bytes(4, "little")
            at = out.find(0xE8, at + 5, last)
        return bytes(out)
