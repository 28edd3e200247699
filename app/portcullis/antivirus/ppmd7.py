"""PPMd variant H (Dmitry Shkarin's model, as 7-Zip's Ppmd7 and RAR 3 use it), in pure
Python: 7z folders packed with ``-m0=PPMd`` and RAR 3's text blocks.

The model predicts each byte from the ones before it (contexts of up to ``order`` bytes),
with the probabilities coded by a range coder: 7z's (``SevenZipRangeDecoder``, LZMA's
coder) or RAR 3's carry-less one after Subbotin (``RarRangeDecoder``).  ``Model`` is one
class for both, and for the tests' encoder, which calls ``encode_symbol`` with a range
encoder of its own.

The model keeps its contexts in memory of its own, of the size the stream names, with a
sub-allocator of 12-byte units; what it predicts depends on that size (when memory runs
out the model starts over), so a size cannot be cut down the way an LZ window can: a size
above ``MAX_MEMORY`` is refused (``Unsupported``).  The memory is an anonymous mapping,
so only the pages the model has written cost anything; the model writes at most a few
hundred bytes per byte decoded.

Hostile input is the normal case.  Every way a stream can go wrong ends in
``Unreadable``: a code outside the range the model allows, a range worn down to nothing,
the input read more than 4 bytes past its end.  Each byte costs bounded work: a symbol
is looked for in at most ``order`` contexts of at most 256 states each, and the
sub-allocator's occasional defragmentation (whose cost grows with the memory, not the
byte) is counted, and refused once it passes ``GLUE_WORK_PER_BYTE`` units per byte
decoded (plus one pass over the whole memory).
"""

from __future__ import annotations

import mmap
from bisect import bisect_right
from itertools import accumulate

from portcullis.antivirus.readers import Allowance, Unreadable, Unsupported

MAX_MEMORY = 256 << 20     # WinRAR's largest (255 + 1 MB), 7-Zip's ultra (192 MB) within
MIN_MEMORY = 1 << 11
MIN_ORDER, MAX_ORDER = 2, 64
GLUE_WORK_PER_BYTE = 4096  # free-block visits allowed per byte, beyond one per unit
OVERRUN = 4                # bytes a range decoder may read past its input (zeros)

UNIT = 12
MAX_FREQ = 124
INT_BITS, PERIOD_BITS = 7, 7
BIN_SCALE = 1 << (INT_BITS + PERIOD_BITS)
TOP, BOTTOM = 1 << 24, 1 << 15
MASK32 = 0xFFFFFFFF
EXP_ESCAPE = (25, 14, 9, 7, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2)
_INIT_BIN_ESC = (0x3CDD, 0x1F3F, 0x59BF, 0x48F3, 0x64A1, 0x5ABC, 0x6632, 0x6051)
END = -1                   # what decoding the end marker gives
IDENTITY = bytes(range(256))
ALL_ONES = b"\xff" * 256


def _tables() -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    index_units: list[int] = []
    units_index: list[int] = []
    units = 0
    for index in range(38):
        units += 1 if index < 4 else 2 if index < 8 else 3 if index < 12 else 4
        units_index += [index] * (units - len(units_index))
        index_units.append(units)
    ns_bs = [0, 2] + [4] * 9 + [6] * (256 - 11)
    ns_index = [0, 1, 2]
    value, step = 3, 1
    while len(ns_index) < 256:
        ns_index.append(value)
        step -= 1
        if step == 0:
            value += 1
            step = value - 2
    hb_flag = [0] * 0x40 + [8] * 0xC0
    return index_units, units_index, ns_bs, ns_index, hb_flag


INDEX_UNITS, UNITS_INDEX, NS_TO_BS_INDEX, NS_TO_INDEX, HB_TO_FLAG = _tables()
NUM_INDEXES = len(INDEX_UNITS)


class _See:
    """A secondary escape estimate: for contexts alike in their counts and masking."""

    __slots__ = ("count", "shift", "summ")

    def __init__(self, summ: int = 0, shift: int = PERIOD_BITS, count: int = 64) -> None:
        self.summ, self.shift, self.count = summ, shift, count

    def update(self) -> None:
        if self.shift < PERIOD_BITS:
            self.count = (self.count - 1) & 0xFF
            if self.count == 0:
                self.summ = (self.summ << 1) & 0xFFFF
                self.count = (3 << self.shift) & 0xFF
                self.shift += 1


class Input:
    """The packed bytes a range decoder reads, a few zeros past their end allowed (a
    coder reads ahead), then Unreadable."""

    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data = data
        self.position = position

    def byte(self) -> int:
        position = self.position
        self.position = position + 1
        if position < len(self.data):
            return self.data[position]
        if position >= len(self.data) + OVERRUN:
            raise Unreadable("the PPMd data ends early")
        return 0


def _first_code(source: Input) -> int:
    """A range decoder's first code: four bytes, never all ones."""
    code = 0
    for _ in range(4):
        code = code << 8 | source.byte()
    if code == MASK32:
        raise Unreadable("PPMd data starting with a code of all ones")
    return code


class SevenZipRangeDecoder:
    """7z's range decoder (LZMA's, with PPMd's frequencies): a zero byte, then four of
    code."""

    def __init__(self, source: Input) -> None:
        self.source = source
        if source.byte() != 0:
            raise Unreadable("PPMd data not starting with a zero byte")
        self.range = MASK32
        self.code = _first_code(source)

    def threshold(self, total: int) -> int:
        self.range //= total
        if not self.range:
            raise Unreadable("PPMd range worn down to nothing")
        return self.code // self.range

    def decode(self, start: int, size: int) -> None:
        rng = self.range
        code = (self.code - start * rng) & MASK32
        rng = (rng * size) & MASK32
        while rng < TOP:
            code = (code << 8 | self.source.byte()) & MASK32
            rng = (rng << 8) & MASK32
        self.code, self.range = code, rng

    def bit(self, size0: int) -> int:
        code, rng = self.code, self.range
        bound = (rng >> 14) * size0
        if code < bound:
            rng = bound
            symbol = 0
        else:
            code -= bound
            rng -= bound
            symbol = 1
        while rng < TOP:
            code = (code << 8 | self.source.byte()) & MASK32
            rng = (rng << 8) & MASK32
        self.code, self.range = code, rng
        return symbol


class RarRangeDecoder:
    """RAR 3's carry-less range decoder (Subbotin's): four bytes of code."""

    def __init__(self, source: Input) -> None:
        self.source = source
        self.low, self.range = 0, MASK32
        self.code = _first_code(source)

    def threshold(self, total: int) -> int:
        self.range //= total
        if not self.range:
            raise Unreadable("PPMd range worn down to nothing")
        return ((self.code - self.low) & MASK32) // self.range

    def decode(self, start: int, size: int) -> None:
        low = (self.low + start * self.range) & MASK32
        rng = (self.range * size) & MASK32
        code, source = self.code, self.source
        while True:
            if low ^ ((low + rng) & MASK32) >= TOP:
                if rng >= BOTTOM:
                    break
                rng = -low & (BOTTOM - 1)
            code = (code << 8 | source.byte()) & MASK32
            rng = (rng << 8) & MASK32
            low = (low << 8) & MASK32
        self.low, self.range, self.code = low, rng, code

    def bit(self, size0: int) -> int:
        if self.threshold(BIN_SCALE) < size0:
            self.decode(0, size0)
            return 0
        self.decode(size0, BIN_SCALE - size0)
        return 1


class Model:
    """The PPMd (H) model over ``size`` bytes of memory, predicting from up to ``order``
    bytes of context.  ``decode_symbol(rc)`` is the next byte (-1: the end marker),
    ``encode_symbol(rc, byte)`` its mirror; ``restart(order)`` starts afresh (RAR's
    reset flag)."""

    def __init__(self, size: int, order: int, allowance: Allowance | None = None) -> None:
        if not MIN_ORDER <= order <= MAX_ORDER:
            raise Unreadable(f"PPMd order {order}")
        if size > MAX_MEMORY:
            raise Unsupported(f"PPMd memory of {size >> 20} MiB (at most {MAX_MEMORY >> 20} "
                              "decoded here)")
        if size < MIN_MEMORY:
            raise Unreadable(f"PPMd memory of {size} bytes")
        self.size = size
        self.align = 4 - (size & 3)
        try:
            self._map = mmap.mmap(-1, self.align + size + UNIT)
        except (OSError, MemoryError) as exc:   # a host that overcommits no memory
            raise Unsupported(f"no {size:,} bytes of memory for a PPMd model") from exc
        self.m8 = memoryview(self._map)
        self.m16 = self.m8.cast("H")
        self.m32 = self.m8.cast("I")
        self.glue_work = 0
        self.symbols = 0                       # decoded (or coded) so far
        self.allowance = allowance             # symbols the message may still decode
        self.restart(order)

    def release(self) -> None:
        """Give the memory back (the model cannot be used after)."""
        self.m32.release()
        self.m16.release()
        self.m8.release()
        self._map.close()

    # -- memory --------------------------------------------------------------------------

    def _successor(self, s: int) -> int:
        m16 = self.m16
        return m16[(s >> 1) + 1] | m16[(s >> 1) + 2] << 16

    def _set_successor(self, s: int, value: int) -> None:
        m16 = self.m16
        m16[(s >> 1) + 1] = value & 0xFFFF
        m16[(s >> 1) + 2] = value >> 16

    def _insert_node(self, node: int, index: int) -> None:
        self.m32[node >> 2] = self.free_list[index]
        self.free_list[index] = node

    def _remove_node(self, index: int) -> int:
        node = self.free_list[index]
        self.free_list[index] = self.m32[node >> 2]
        return node

    def _split_block(self, ptr: int, old_index: int, new_index: int) -> None:
        units = INDEX_UNITS[old_index] - INDEX_UNITS[new_index]
        self._free_units(ptr + INDEX_UNITS[new_index] * UNIT, units)

    def _free_units(self, ptr: int, units: int) -> None:
        """File ``units`` free units at ``ptr`` (at most 128) in the free lists, as one
        block of a listed size or two when no size fits."""
        index = UNITS_INDEX[units - 1]
        if INDEX_UNITS[index] != units:
            index -= 1
            k = INDEX_UNITS[index]
            self._insert_node(ptr + k * UNIT, units - k - 1)
        self._insert_node(ptr, index)

    def _glue_free_blocks(self) -> None:
        """Join free blocks next to each other, and file them again by size."""
        m16, m32 = self.m16, self.m32
        head = self.align + self.size          # the spare unit past the memory
        n = head
        self.glue_count = 255
        visits = 0
        # A doubly linked list of every free block: stamp 0 (where a context keeps its
        # number of states, never 0), units, next, previous.
        for index in range(NUM_INDEXES):
            units = INDEX_UNITS[index]
            following = self.free_list[index]
            self.free_list[index] = 0
            while following:
                visits += 1
                node = following
                m32[(node >> 2) + 1] = n       # next
                m32[(n >> 2) + 2] = node       # n's previous
                n = node
                following = m32[node >> 2]
                m16[node >> 1] = 0
                m16[(node >> 1) + 1] = units
        m16[head >> 1] = 1
        m32[(head >> 2) + 1] = n
        m32[(n >> 2) + 2] = head
        if self.lo_unit != self.hi_unit:
            m16[self.lo_unit >> 1] = 1
        while n != head:
            visits += 1
            node = n
            units = m16[(node >> 1) + 1]
            while True:
                node2 = node + units * UNIT
                units += m16[(node2 >> 1) + 1]
                if m16[node2 >> 1] != 0 or units >= 0x10000:
                    break
                previous, following = m32[(node2 >> 2) + 2], m32[(node2 >> 2) + 1]
                m32[(previous >> 2) + 1] = following
                m32[(following >> 2) + 2] = previous
                m16[(node >> 1) + 1] = units
            n = m32[(node >> 2) + 1]
        n = m32[(head >> 2) + 1]
        while n != head:
            visits += 1
            node = n
            following = m32[(node >> 2) + 1]
            units = m16[(node >> 1) + 1]
            while units > 128:
                self._insert_node(node, NUM_INDEXES - 1)
                units -= 128
                node += 128 * UNIT
            self._free_units(node, units)
            n = following
        self.glue_work += visits
        if self.glue_work > GLUE_WORK_PER_BYTE * self.symbols + self.size // UNIT * 3:
            raise Unreadable("PPMd memory defragmented too often for the bytes decoded")

    def _alloc_units_rare(self, index: int) -> int:
        if self.glue_count == 0:
            self._glue_free_blocks()
            if self.free_list[index]:
                return self._remove_node(index)
        i = index
        while True:
            i += 1
            if i == NUM_INDEXES:
                count = INDEX_UNITS[index] * UNIT
                self.glue_count = (self.glue_count - 1) & 0xFF
                if self.units_start - self.text > count:
                    self.units_start -= count
                    return self.units_start
                return 0
            if self.free_list[i]:
                break
        block = self._remove_node(i)
        self._split_block(block, i, index)
        return block

    def _alloc_units(self, index: int) -> int:
        if self.free_list[index]:
            return self._remove_node(index)
        count = INDEX_UNITS[index] * UNIT
        if count <= self.hi_unit - self.lo_unit:
            block = self.lo_unit
            self.lo_unit += count
            return block
        return self._alloc_units_rare(index)

    def _copy_units(self, dest: int, source: int, units: int) -> None:
        self.m8[dest:dest + units * UNIT] = self.m8[source:source + units * UNIT].tobytes()

    def _shrink_units(self, old: int, old_units: int, new_units: int) -> int:
        i0, i1 = UNITS_INDEX[old_units - 1], UNITS_INDEX[new_units - 1]
        if i0 == i1:
            return old
        if self.free_list[i1]:
            block = self._remove_node(i1)
            self._copy_units(block, old, new_units)
            self._insert_node(old, i0)
            return block
        self._split_block(old, i0, i1)
        return old

    # -- the model -----------------------------------------------------------------------

    def restart(self, order: int | None = None) -> None:
        """Empty the memory and start predicting afresh."""
        if order is not None:
            self.max_order = order
        m8, m16, m32 = self.m8, self.m16, self.m32
        self.free_list = [0] * NUM_INDEXES
        self.text = self.align
        self.hi_unit = self.text + self.size
        self.lo_unit = self.units_start = self.hi_unit - self.size // 8 // UNIT * 7 * UNIT
        self.glue_count = 0
        self.order_fall = self.max_order
        self.run_length = self.init_rl = -min(self.max_order, 12) - 1
        self.prev_success = 0
        self.init_esc = 0
        self.hi_bits_flag = 0
        self.hi_unit -= UNIT
        context = self.min_context = self.max_context = self.hi_unit
        m32[(context >> 2) + 2] = 0            # suffix
        m16[context >> 1] = 256                # states
        m16[(context >> 1) + 1] = 257          # their frequencies' sum
        stats = self.found_state = self.lo_unit
        self.lo_unit += 128 * UNIT
        m32[(context >> 2) + 1] = stats
        m8[stats:stats + 256 * 6] = b"".join(bytes((i, 1, 0, 0, 0, 0)) for i in range(256))
        self.bin_summ = [[0] * 64 for _ in range(128)]
        for i in range(128):
            row = self.bin_summ[i]
            for k in range(8):
                value = BIN_SCALE - _INIT_BIN_ESC[k] // (i + 2)
                for m in range(0, 64, 8):
                    row[k + m] = value
        self.see = [[_See((5 * i + 10) << (PERIOD_BITS - 4), PERIOD_BITS - 4, 4)
                     for _ in range(16)] for i in range(25)]
        self.dummy_see = _See()

    def _create_successors(self, skip: bool) -> int:
        m8, m16, m32 = self.m8, self.m16, self.m32
        c = self.min_context
        found = self.found_state
        up_branch = m16[(found >> 1) + 1] | m16[(found >> 1) + 2] << 16
        symbol = m8[found]
        states: list[int] = [] if skip else [found]
        while True:
            suffix = m32[(c >> 2) + 2]
            if not suffix:
                break
            c = suffix
            if m16[c >> 1] != 1:
                s = m32[(c >> 2) + 1]
                while m8[s] != symbol:
                    s += 6
            else:
                s = c + 2
            successor = m16[(s >> 1) + 1] | m16[(s >> 1) + 2] << 16
            if successor != up_branch:
                c = successor
                if not states:
                    return c
                break
            states.append(s)
        up_symbol = m8[up_branch]
        if m16[c >> 1] == 1:
            up_freq = m8[c + 3]
        else:
            s = m32[(c >> 2) + 1]
            while m8[s] != up_symbol:
                s += 6
            cf = m8[s + 1] - 1
            s0 = m16[(c >> 1) + 1] - m16[c >> 1] - cf
            up_freq = 1 + ((5 * cf > s0) if 2 * cf <= s0 else (2 * cf + 3 * s0 - 1) // (2 * s0))
        up_successor = up_branch + 1
        while states:
            if self.hi_unit != self.lo_unit:
                self.hi_unit -= UNIT
                c1 = self.hi_unit
            elif self.free_list[0]:
                c1 = self._remove_node(0)
            else:
                c1 = self._alloc_units_rare(0)
                if not c1:
                    return 0
            m16[c1 >> 1] = 1
            m8[c1 + 2] = up_symbol
            m8[c1 + 3] = up_freq & 0xFF
            m32[(c1 >> 2) + 1] = up_successor
            m32[(c1 >> 2) + 2] = c
            s = states.pop()
            m16[(s >> 1) + 1] = c1 & 0xFFFF
            m16[(s >> 1) + 2] = c1 >> 16
            c = c1
        return c

    def _swap_states(self, a: int, b: int) -> None:
        m8 = self.m8
        m8[a:a + 6], m8[b:b + 6] = m8[b:b + 6].tobytes(), m8[a:a + 6].tobytes()

    def _update_model(self) -> None:
        m8, m16, m32 = self.m8, self.m16, self.m32
        found = self.found_state
        symbol, freq = m8[found], m8[found + 1]
        f_successor = m16[(found >> 1) + 1] | m16[(found >> 1) + 2] << 16
        min_context = self.min_context
        c = m32[(min_context >> 2) + 2]
        if freq < MAX_FREQ // 4 and c:
            if m16[c >> 1] == 1:
                if m8[c + 3] < 32:
                    m8[c + 3] += 1
            else:
                s = m32[(c >> 2) + 1]
                if m8[s] != symbol:
                    s += 6
                    while m8[s] != symbol:
                        s += 6
                    if m8[s + 1] >= m8[s - 5]:
                        self._swap_states(s, s - 6)
                        s -= 6
                if m8[s + 1] < MAX_FREQ - 9:
                    m8[s + 1] += 2
                    m16[(c >> 1) + 1] = (m16[(c >> 1) + 1] + 2) & 0xFFFF
        if self.order_fall == 0:
            context = self._create_successors(True)
            self.min_context = self.max_context = context
            if not context:
                self.restart()
                return
            m16[(found >> 1) + 1] = context & 0xFFFF
            m16[(found >> 1) + 2] = context >> 16
            return
        text = self.text
        m8[text] = symbol
        successor = self.text = text = text + 1
        if text >= self.units_start:
            self.restart()
            return
        if f_successor:
            if f_successor <= successor:
                created = self._create_successors(False)
                if not created:
                    self.restart()
                    return
                f_successor = created
            self.order_fall -= 1
            if self.order_fall == 0:
                successor = f_successor
                if self.max_context != min_context:
                    self.text -= 1
        else:
            m16[(found >> 1) + 1] = successor & 0xFFFF
            m16[(found >> 1) + 2] = successor >> 16
            f_successor = min_context
        ns = m16[min_context >> 1]
        s0 = m16[(min_context >> 1) + 1] - ns - (freq - 1)
        init_esc = self.init_esc
        alloc_units = self._alloc_units
        c = self.max_context
        while c != min_context:
            ns1 = m16[c >> 1]
            if ns1 != 1:
                if ns1 & 1 == 0:
                    old_units = ns1 >> 1
                    i = UNITS_INDEX[old_units - 1]
                    if i != UNITS_INDEX[old_units]:
                        block = alloc_units(i + 1)
                        if not block:
                            self.restart()
                            return
                        old = m32[(c >> 2) + 1]
                        self._copy_units(block, old, old_units)
                        self._insert_node(old, i)
                        m32[(c >> 2) + 1] = block
                summ = m16[(c >> 1) + 1]
                summ = (summ + (2 * ns1 < ns)
                        + 2 * ((4 * ns1 <= ns) & (summ <= 8 * ns1))) & 0xFFFF
            else:
                s = alloc_units(0)
                if not s:
                    self.restart()
                    return
                m8[s:s + 6] = m8[c + 2:c + 8]
                m32[(c >> 2) + 1] = s
                one_freq = m8[s + 1]
                one_freq = one_freq << 1 if one_freq < MAX_FREQ // 4 - 1 else MAX_FREQ - 4
                m8[s + 1] = one_freq
                summ = one_freq + init_esc + (ns > 3)
            cf = 2 * freq * (summ + 6)
            sf = s0 + summ
            if cf < 6 * sf:
                cf = 1 + (cf > sf) + (cf >= 4 * sf)
                summ += 3
            else:
                cf = 4 + (cf >= 9 * sf) + (cf >= 12 * sf) + (cf >= 15 * sf)
                summ += cf
            m16[(c >> 1) + 1] = summ & 0xFFFF
            s = m32[(c >> 2) + 1] + ns1 * 6
            m16[(s >> 1) + 1] = successor & 0xFFFF
            m16[(s >> 1) + 2] = successor >> 16
            m8[s] = symbol
            m8[s + 1] = cf
            m16[c >> 1] = ns1 + 1
            c = m32[(c >> 2) + 2]
        self.max_context = self.min_context = f_successor

    def _rescale(self) -> None:
        m8, m16, m32 = self.m8, self.m16, self.m32
        context = self.min_context
        stats = m32[(context >> 2) + 1]
        s = self.found_state
        if s != stats:                          # the found state first
            m8[stats:s + 6] = (m8[s:s + 6].tobytes() + m8[stats:s].tobytes())
            s = stats
        ns = m16[context >> 1]
        esc_freq = m16[(context >> 1) + 1] - m8[s + 1]
        adder = 1 if self.order_fall != 0 else 0
        m8[s + 1] = (((m8[s + 1] + 4) & 0xFF) + adder) >> 1
        sum_freq = m8[s + 1]
        for _ in range(ns - 1):
            s += 6
            esc_freq -= m8[s + 1]
            m8[s + 1] = (m8[s + 1] + adder) >> 1
            sum_freq += m8[s + 1]
            if m8[s + 1] > m8[s - 5]:
                moving = m8[s:s + 6].tobytes()
                target = s - 6
                while target != stats and moving[1] > m8[target - 5]:
                    target -= 6
                m8[target + 6:s + 6] = m8[target:s].tobytes()
                m8[target:target + 6] = moving
        if m8[s + 1] == 0:
            zeros = 0
            while m8[s + 1] == 0:
                zeros += 1
                s -= 6
            esc_freq += zeros
            left = ns - zeros
            m16[context >> 1] = left
            if left == 1:
                symbol, freq = m8[stats], m8[stats + 1]
                successor = self._successor(stats)
                while True:
                    freq -= freq >> 1
                    esc_freq >>= 1
                    if esc_freq <= 1:
                        break
                self._insert_node(stats, UNITS_INDEX[((ns + 1) >> 1) - 1])
                self.found_state = context + 2
                m8[context + 2] = symbol
                m8[context + 3] = freq
                m32[(context >> 2) + 1] = successor
                return
            n0, n1 = (ns + 1) >> 1, (left + 1) >> 1
            if n0 != n1:
                m32[(context >> 2) + 1] = self._shrink_units(stats, n0, n1)
        m16[(context >> 1) + 1] = (sum_freq + esc_freq - (esc_freq >> 1)) & 0xFFFF
        self.found_state = m32[(context >> 2) + 1]

    def _make_esc_freq(self, masked: int) -> tuple[_See, int]:
        m16, m32 = self.m16, self.m32
        context = self.min_context
        ns = m16[context >> 1]
        if ns == 256:
            return self.dummy_see, 1
        unmasked = ns - masked
        suffix = m32[(context >> 2) + 2]
        see = self.see[NS_TO_INDEX[unmasked - 1]][
            (unmasked < m16[suffix >> 1] - ns)
            + 2 * (m16[(context >> 1) + 1] < 11 * ns)
            + 4 * (masked > unmasked) + self.hi_bits_flag]
        r = see.summ >> see.shift
        see.summ = (see.summ - r) & 0xFFFF
        return see, r + (r == 0)

    def _next_context(self) -> None:
        c = self._successor(self.found_state)
        if self.order_fall == 0 and c > self.text:
            self.min_context = self.max_context = c
        else:
            self._update_model()

    def _update1(self) -> None:
        m8, m16 = self.m8, self.m16
        s = self.found_state
        m8[s + 1] = (m8[s + 1] + 4) & 0xFF
        context = self.min_context
        m16[(context >> 1) + 1] = (m16[(context >> 1) + 1] + 4) & 0xFFFF
        if m8[s + 1] > m8[s - 5]:
            self._swap_states(s, s - 6)
            self.found_state = s = s - 6
            if m8[s + 1] > MAX_FREQ:
                self._rescale()
        self._next_context()

    def _update1_0(self) -> None:
        m8, m16 = self.m8, self.m16
        s, context = self.found_state, self.min_context
        summ = m16[(context >> 1) + 1]
        self.prev_success = 1 if 2 * m8[s + 1] > summ else 0
        self.run_length += self.prev_success
        m16[(context >> 1) + 1] = (summ + 4) & 0xFFFF
        m8[s + 1] = (m8[s + 1] + 4) & 0xFF
        if m8[s + 1] > MAX_FREQ:
            self._rescale()
        self._next_context()

    def _update_bin(self) -> None:
        s = self.found_state
        if self.m8[s + 1] < 128:
            self.m8[s + 1] += 1
        self.prev_success = 1
        self.run_length += 1
        self._next_context()

    def _update2(self) -> None:
        m8, m16 = self.m8, self.m16
        s, context = self.found_state, self.min_context
        m16[(context >> 1) + 1] = (m16[(context >> 1) + 1] + 4) & 0xFFFF
        m8[s + 1] = (m8[s + 1] + 4) & 0xFF
        if m8[s + 1] > MAX_FREQ:
            self._rescale()
        self.run_length = self.init_rl
        self._update_model()

    def _bin_summ(self) -> tuple[list[int], int]:
        m8, m16, m32 = self.m8, self.m16, self.m32
        context = self.min_context
        self.hi_bits_flag = HB_TO_FLAG[m8[self.found_state]]
        suffix = m32[(context >> 2) + 2]
        return self.bin_summ[m8[context + 3] - 1], (
            self.prev_success + NS_TO_BS_INDEX[m16[suffix >> 1] - 1] + self.hi_bits_flag
            + 2 * HB_TO_FLAG[m8[context + 2]] + ((self.run_length >> 26) & 0x20))

    def _escape_to_suffix(self, masked_count: int) -> bool:
        """Up to the next shorter context with states not yet masked; False at the root."""
        m16, m32 = self.m16, self.m32
        while True:
            self.order_fall += 1
            suffix = m32[(self.min_context >> 2) + 2]
            if not suffix:
                return False
            self.min_context = suffix
            if m16[suffix >> 1] != masked_count:
                return True

    def decode_symbol(self, rc: SevenZipRangeDecoder | RarRangeDecoder) -> int:
        """The next byte, or END for the end marker; as ``decode_many``."""
        out = bytearray()
        stopped = self.decode_many(rc, out, 1)
        return END if stopped == END else out[0]

    def decode_many(self, rc: SevenZipRangeDecoder | RarRangeDecoder, out: bytearray,
                    limit: int, stop: int = END) -> int | None:
        """Decode up to ``limit`` bytes onto ``out``, ending early after the byte ``stop``
        (decoded, not appended) or the end marker: returns which of the two ended it
        (``stop`` or END), None when ``limit`` bytes were appended.  Unreadable for a
        code the model does not allow; OverBudget once the message's allowance is spent
        (at most one symbol past it is decoded)."""
        allowance = self.allowance
        if allowance is not None:
            limit = min(limit, max(allowance.left, 0) + 1)
        before = self.symbols
        try:
            return self._decode_many(rc, out, limit, stop)
        except (IndexError, ValueError, ZeroDivisionError) as exc:
            # The model's invariants hold whatever symbols are decoded (an encoder could
            # have coded any of them), so this is a safety net: a reference outside the
            # memory, a count outside a byte, is damage, never a crash.
            raise Unreadable(f"PPMd model in a state it cannot be in ({exc})") from None
        finally:
            if allowance is not None:
                allowance.spend(self.symbols - before)

    def _decode_many(self, rc: SevenZipRangeDecoder | RarRangeDecoder, out: bytearray,
                     limit: int, stop: int) -> int | None:
        # The hot loop: some 10 million times a second in C, here every attribute look-up
        # and call counts.  The two commonest cases (the most probable state of a context,
        # the one state of a binary context) are decoded and updated inline, mirroring
        # _update1_0, _update_bin and _next_context, which the encoder calls.
        m8, m16, m32 = self.m8, self.m16, self.m32
        threshold, decode, bit = rc.threshold, rc.decode, rc.bit
        append = out.append
        for _ in range(limit):
            self.symbols += 1
            context = self.min_context
            ns = m16[context >> 1]
            if ns != 1:
                s = m32[(context >> 2) + 1]
                summ = m16[(context >> 1) + 1]
                count = threshold(summ)
                freq = m8[s + 1]
                if count < freq:                # the most probable state (_update1_0)
                    decode(0, freq)
                    symbol = m8[s]
                    self.found_state = s
                    success = 1 if 2 * freq > summ else 0
                    self.prev_success = success
                    self.run_length += success
                    m16[(context >> 1) + 1] = (summ + 4) & 0xFFFF
                    freq = m8[s + 1] = (freq + 4) & 0xFF
                    if freq > MAX_FREQ:
                        self._rescale()
                        s = self.found_state
                else:
                    self.prev_success = 0
                    block = m8[s:s + 6 * ns].tobytes()
                    cumulative = list(accumulate(block[1::6]))
                    index = bisect_right(cumulative, count)
                    if index < ns:
                        freq = block[6 * index + 1]
                        decode(cumulative[index] - freq, freq)
                        self.found_state = s + 6 * index
                        self._update1()
                        symbol = block[6 * index]
                    else:
                        if count >= summ:
                            raise Unreadable("a PPMd code past its context's total")
                        self.hi_bits_flag = HB_TO_FLAG[m8[self.found_state]]
                        high = cumulative[-1]
                        decode(high, summ - high)
                        symbol = self._decode_escaped(rc, block[0::6])
                        if symbol == END:
                            return END
                    if symbol == stop:
                        return stop
                    append(symbol)
                    continue
            else:                               # a binary context (_bin_summ, _update_bin)
                symbol = m8[context + 2]
                hi_bits_flag = self.hi_bits_flag = HB_TO_FLAG[m8[self.found_state]]
                row = self.bin_summ[m8[context + 3] - 1]
                column = (self.prev_success + hi_bits_flag + 2 * HB_TO_FLAG[symbol]
                          + NS_TO_BS_INDEX[m16[m32[(context >> 2) + 2] >> 1] - 1]
                          + ((self.run_length >> 26) & 0x20))
                prob = row[column]
                if bit(prob):
                    prob = row[column] = (prob - ((prob + 32) >> 7)) & 0xFFFF
                    self.init_esc = EXP_ESCAPE[prob >> 10]
                    self.prev_success = 0
                    symbol = self._decode_escaped(rc, bytes((symbol,)))
                    if symbol == END:
                        return END
                    if symbol == stop:
                        return stop
                    append(symbol)
                    continue
                row[column] = (prob + (1 << INT_BITS) - ((prob + 32) >> 7)) & 0xFFFF
                s = self.found_state = context + 2
                if m8[context + 3] < 128:
                    m8[context + 3] += 1
                self.prev_success = 1
                self.run_length += 1
            # _next_context
            successor = m16[(s >> 1) + 1] | m16[(s >> 1) + 2] << 16
            if self.order_fall == 0 and successor > self.text:
                self.min_context = self.max_context = successor
            else:
                self._update_model()
            if symbol == stop:
                return stop
            append(symbol)
        return None

    def _decode_escaped(self, rc: SevenZipRangeDecoder | RarRangeDecoder,
                        masked: bytes) -> int:
        """The symbol after an escape from the context whose states are ``masked``, from
        the shorter contexts below it, or END past the root."""
        m8, m16, m32 = self.m8, self.m16, self.m32
        while True:
            # Every state of the context escaped from is masked (its suffixes hold them
            # all): their number is that context's, as the reference coders count it.
            num_masked = m16[self.min_context >> 1]
            if not self._escape_to_suffix(num_masked):
                return END
            context = self.min_context
            ns = m16[context >> 1]
            s = m32[(context >> 2) + 1]
            block = m8[s:s + 6 * ns].tobytes()
            symbols = block[0::6]
            # Masking without a loop over the states: a table taking the masked symbols
            # to 0 and the others to 0xFF, so that the states' symbols translated by it,
            # and-ed with their frequencies, leave the frequencies of the unmasked ones.
            unmasked = IDENTITY.translate(None, masked)
            keep = symbols.translate(bytes.maketrans(
                masked + unmasked, bytes(len(masked)) + ALL_ONES[:len(unmasked)]))
            if keep.count(0) != num_masked:
                raise Unreadable("a PPMd context missing states of the one below it")
            freqs = (int.from_bytes(block[1::6], "little") & int.from_bytes(keep, "little")
                     ).to_bytes(ns, "little")
            cumulative = list(accumulate(freqs))
            high = cumulative[-1]
            see, esc_freq = self._make_esc_freq(num_masked)
            total = esc_freq + high
            count = rc.threshold(total)
            if count < high:
                index = bisect_right(cumulative, count)    # a state not masked
                freq = freqs[index]
                rc.decode(cumulative[index] - freq, freq)
                see.update()
                self.found_state = s + 6 * index
                self._update2()
                return symbols[index]
            if count >= total:
                raise Unreadable("a PPMd code past its context's total")
            rc.decode(high, total - high)
            see.summ = (see.summ + total) & 0xFFFF
            masked = symbols

    def encode_symbol(self, rc: RangeEncoder, symbol: int) -> None:
        """Code ``symbol`` (-1: the end marker) with ``rc``, updating the model exactly as
        ``decode_symbol`` does."""
        self.symbols += 1
        m8, m16, m32 = self.m8, self.m16, self.m32
        context = self.min_context
        ns = m16[context >> 1]
        if ns != 1:
            s = m32[(context >> 2) + 1]
            summ = m16[(context >> 1) + 1]
            if m8[s] == symbol:
                rc.encode(0, m8[s + 1], summ)
                self.found_state = s
                self._update1_0()
                return
            self.prev_success = 0
            low = m8[s + 1]
            for _ in range(ns - 1):
                s += 6
                if m8[s] == symbol:
                    rc.encode(low, m8[s + 1], summ)
                    self.found_state = s
                    self._update1()
                    return
                low += m8[s + 1]
            self.hi_bits_flag = HB_TO_FLAG[m8[self.found_state]]
            rc.encode(low, summ - low, summ)
            first = m32[(context >> 2) + 1]
            masked = set(m8[first:first + 6 * ns:6])
        else:
            row, column = self._bin_summ()
            prob = row[column]
            if m8[context + 2] == symbol:
                rc.encode(0, prob, BIN_SCALE)
                row[column] = (prob + (1 << INT_BITS) - ((prob + 32) >> 7)) & 0xFFFF
                self.found_state = context + 2
                self._update_bin()
                return
            rc.encode(prob, BIN_SCALE - prob, BIN_SCALE)
            prob = row[column] = (prob - ((prob + 32) >> 7)) & 0xFFFF
            self.init_esc = EXP_ESCAPE[prob >> 10]
            masked = {m8[context + 2]}
            self.prev_success = 0
        while True:
            num_masked = m16[self.min_context >> 1]
            if not self._escape_to_suffix(num_masked):
                return                          # the end marker: escaped past the root
            context = self.min_context
            ns = m16[context >> 1]
            s = m32[(context >> 2) + 1]
            candidates = [at for at in range(s, s + 6 * ns, 6) if m8[at] not in masked]
            high = sum(m8[at + 1] for at in candidates)
            see, esc_freq = self._make_esc_freq(num_masked)
            total = esc_freq + high
            low = 0
            for at in candidates:
                if m8[at] == symbol:
                    rc.encode(low, m8[at + 1], total)
                    see.update()
                    self.found_state = at
                    self._update2()
                    return
                low += m8[at + 1]
            rc.encode(high, esc_freq, total)
            see.summ = (see.summ + total) & 0xFFFF
            masked.update(m8[at] for at in candidates)


class RangeEncoder:
    """What ``encode_symbol`` needs of an encoder (the tests' RAR one)."""

    def encode(self, start: int, size: int, total: int) -> None: ...


class SevenZipDecoder:
    """A 7z folder's PPMd coder (method 03 04 01): properties of 5 bytes (order, memory
    size little-endian), ``decompress(data, max_length)`` as lzma's decoders offer it,
    the packed data given once."""

    def __init__(self, properties: bytes, allowance: Allowance | None = None) -> None:
        if len(properties) != 5:
            raise Unreadable(f"PPMd properties of {len(properties)} bytes")
        self._order = properties[0]
        self._size = int.from_bytes(properties[1:], "little")
        if self._size > MAX_MEMORY:             # before anything is allocated
            raise Unsupported(f"PPMd memory of {self._size >> 20} MiB (at most "
                              f"{MAX_MEMORY >> 20} decoded here)")
        self._allowance = allowance
        self._model: Model | None = None
        self._rc: SevenZipRangeDecoder | None = None
        self._ended = False

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._rc is None:
            self._model = Model(self._size, self._order, self._allowance)
            self._rc = SevenZipRangeDecoder(Input(data))
        model, rc = self._model, self._rc
        assert model is not None
        out = bytearray()
        if max_length > 0 and not self._ended:
            # the end marker: nothing follows
            self._ended = model.decode_many(rc, out, max_length) == END
        return bytes(out)

    def release(self) -> None:
        """Give the model's memory back."""
        if self._model is not None:
            self._model.release()
            self._model = None
        self._ended = True
