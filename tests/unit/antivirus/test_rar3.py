"""RAR 3 decompression (``rar3``): what the tests' packer writes, checked against
libarchive's reader (bsdtar), and what WinRAR wrote, comes back exactly; damage of any kind
is Unreadable, never another error; PPMd blocks are read too; the bounds hold."""

from __future__ import annotations

import io
import random
import zlib

import pytest
import rarfile

from portcullis.antivirus import rar3
from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.antivirus.readers import Allowance, OverBudget, Unreadable, Unsupported
from portcullis.mime import parse_message
from tests.support.attachments import (
    RAR3_E8E9_CODE,
    Rar3Packer,
    _BitWriter,
    mail,
    rar3_ppmd_block,
)
from tests.support.attachments import rar3 as rar3_archive
from tests.support.rar_samples import arm_code, by_bsdtar, repeats, text, x86_code

pytestmark = pytest.mark.antivirus

CASES = {
    "text": (text(150_000), {}),
    # Fixed bytes: libarchive 3.6.2 refuses Rar3Packer's packing of most random inputs
    # ("Bad RAR file data", before any output; the cause is not found), which our decoder
    # reads; WinRAR's own binaries decode with their CRCs, so these cases need only be
    # ones libarchive takes.
    "binary": (random.Random(4).randbytes(20_000) * 3, {}),
    "e8e9": (x86_code(60_000), {"filter": "e8e9"}),
    "e8e9 in ranges": (x86_code(50_000), {"filter": "e8e9", "filter_bytes": 8192}),
    "delta": (bytes((n * 3 + n % 4 * 60) & 255 for n in range(30_000)),
              {"filter": "delta", "channels": 4}),
    "arm code, no filter": (arm_code(40_000), {}),
    "repeats": (repeats(), {}),
    "blocks": (text(200_000, 3), {"block_bytes": 20_000}),
    "blocks keeping lengths": (text(200_000, 4), {"block_bytes": 20_000, "keep": True}),
    # Past 0x2000 a match is a byte longer.  (libarchive 3.6 misreads matches over
    # 128 KiB back, so longer ones are left to the WinRAR-made files.)
    "long distances": ((lambda far: far + random.Random(3).randbytes(100_000) + far)(
        random.Random(4).randbytes(2000)), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_what_libarchive_reads_is_decoded_exactly(case):
    data, options = CASES[case]
    packer = Rar3Packer()
    packed = packer.pack(data, **options)
    archive = rar3_archive({"member": data}, packed={"member": packed})
    assert by_bsdtar(archive, "member") == data          # the packer writes real RAR 3
    [member] = rarfile.RarFile(io.BytesIO(archive)).infolist()   # and rarfile lists it
    assert (member.filename, member.file_size, member.extract_version) == ("member",
                                                                          len(data), 29)
    first = rar3.unpacker(packed, len(data), zlib.crc32(data))
    assert first(100) == data[:100]                     # decodes only as far as asked,
    assert first(1 << 30) == data                       # and then on from there
    if case == "repeats":
        assert packer.used["old distance"] and packer.used["last match"]
        assert packer.used["short"]
    if case.startswith("blocks"):
        assert packer.used["tables"] == 10
    if "filter" in options:
        assert packer.used["filter"] == -(-len(data) // options.get("filter_bytes", 0x3C000))


def test_ppmd_members_are_decoded_and_judged_by_their_content():
    # PPMd blocks (what WinRAR's "good" and "best" modes pick for text): decoded here.
    program = x86_code(3000)
    packed = {"readme.txt": rar3_ppmd_block(text(8000))[0],
              "invoice.pdf": rar3_ppmd_block(program, order=4)[0]}
    archive = rar3_archive({"readme.txt": text(8000), "invoice.pdf": program}, packed=packed)
    found = inventory(parse_message(mail("x", attachments=[("p.rar", archive)])))
    assert {f.shown: (f.detected, f.opened) for f in found.files} == {
        "p.rar": ("rar", True), "p.rar > readme.txt": (None, True),
        "p.rar > invoice.pdf": ("exe", True)}
    assert (("p.rar", "invoice.pdf"), program) in found.expanded
    # A block naming an order of 1 is damage; a header cut short too.
    with pytest.raises(Unreadable, match="PPMd order 1"):
        rar3.unpacker(b"\xe0\x00\x02" + bytes(30), 100, None)(100)
    with pytest.raises(Unreadable):
        rar3.unpacker(b"\x80", 100, None)(100)


def test_ppmd_spends_the_messages_own_allowance_and_past_it_files_are_known_by_name():
    # PPMd in Python is some 30 times slower than the LZ decoders: it has an allowance of
    # its own, shared by every archive of the message.
    first, second = text(6000, 1), text(6000, 2)
    archive = rar3_archive({"a.txt": first, "b.txt": second},
                           packed={"a.txt": rar3_ppmd_block(first)[0],
                                   "b.txt": rar3_ppmd_block(second)[0]})
    limits = Limits(max_ppmd_unpacked=8000)
    found = inventory(parse_message(mail("x", attachments=[("p.rar", archive)])), limits)
    assert [(f.shown, f.opened) for f in found.files] == [
        ("p.rar", True), ("p.rar > a.txt", True), ("p.rar > b.txt", False)]
    # Two archives in one message draw on the same allowance.
    single = rar3_archive({"a.txt": first}, packed={"a.txt": rar3_ppmd_block(first)[0]})
    found = inventory(parse_message(mail("x", attachments=[("1.rar", single),
                                                            ("2.rar", single)])), limits)
    assert [(f.shown, f.opened) for f in found.files if len(f.path) == 2] == [
        ("1.rar > a.txt", True), ("2.rar > a.txt", False)]
    # Nothing scanned the one known by name: said, not silently passed.
    assert [(f.shown, f.problem) for f in found.findings] == [
        ("2.rar > a.txt", Problem.UNSCANNED)]


def test_encrypted_members_stay_locked_and_older_methods_unopened():
    archive = rar3_archive({"open.txt": b"hi", "secret.exe": b"x" * 40},
                           compressed=frozenset({"open.txt"}),
                           encrypted=frozenset({"secret.exe"}))
    found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])))
    assert [f.path for f in found.files if f.encrypted] == [("a.rar", "secret.exe")]
    assert [f.path for f in found.problems(Problem.LOCKED)] == [("a.rar", "secret.exe")]


def test_damaged_streams_only_ever_raise_unreadable():
    data = x86_code(12_000) + text(12_000, 9)
    packed = Rar3Packer().pack(data, filter="e8e9", filter_bytes=8192, block_bytes=6000)
    crc = zlib.crc32(data)
    rng = random.Random(2026)
    cases = [packed[:cut] for cut in range(0, len(packed), 53)]
    for _ in range(400):
        damaged = bytearray(packed)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cases.append(bytes(damaged))
    # A PPMd bit where a header was: its garbage is decoded, within a PPMd allowance.
    outcomes = {"read": 0, "unreadable": 0, "ppmd": 0, "ppmd allowance": 0}
    for case in cases:
        try:
            stream = rar3.Stream(Allowance(2000))
            assert stream.unpacker(case, len(data), crc)(1 << 30) == data
            outcomes["read"] += 1
        except Unreadable:
            outcomes["unreadable"] += 1
        except Unsupported:                 # ... claiming a model (or state) not decoded
            outcomes["ppmd"] += 1
        except OverBudget:
            outcomes["ppmd allowance"] += 1
    assert sum(outcomes.values()) == len(cases) and outcomes["unreadable"] > len(cases) // 2


def test_a_stream_of_tiny_blocks_is_refused_before_it_costs_much():
    data = text(5000)
    packed = Rar3Packer().pack(data, block_bytes=1)          # tables and a code per block
    with pytest.raises(Unreadable, match="3 tables for 2 bytes"):
        rar3.unpacker(packed, len(data), None)(len(data))


def test_a_flood_of_filters_is_refused():
    data = x86_code(40_000)
    packed = Rar3Packer().pack(data, filter="e8e9", filter_bytes=5)
    with pytest.raises(Unreadable, match="filters for"):
        rar3.unpacker(packed, len(data), None)(len(data))


def filter_stream(code: bytes, *, length: int = 100, start: int = 0) -> bytes:
    """Tables, a filter record running ``code`` over ``length`` bytes from ``start``,
    then 200 literals 'A'."""
    symbols = Rar3Packer._filter(start, length, "e8e9", 3, True)
    symbols = [(t, s, w, v) for t, s, w, v in symbols if not (t == 4 and w == 8)][:1] + [
        s for s in symbols if s[0] == 4 and s[2] == 8]
    record = bytes(v for t, _, w, v in symbols[1:])
    record = record[:1] + record[1:].replace(RAR3_E8E9_CODE, code)
    if len(code) != len(RAR3_E8E9_CODE):
        raise ValueError("same length only")
    packer = Rar3Packer()
    tokens = [(4, [(0, 257, 0, 0)] + [(4, 0, 8, b) for b in record], 0)] + \
        [(0, [(0, 65, 0, 0)], 1)] * 200
    bits = _BitWriter()
    counts = [[0] * n for n in (299, 60, 17, 28)]
    for _, symbols_, _ in tokens:
        for table, symbol, _, _ in symbols_:
            if table < 4:
                counts[table][symbol] += 1
    counts[0][256] += 1
    from tests.support.attachments import _canonical_codes, _huffman_lengths
    tables = [_huffman_lengths(c) for c in counts]
    packer._write_tables(bits, [n for t in tables for n in t], False)
    codes = [(_canonical_codes(t), t) for t in tables]
    for _, symbols_, _ in tokens:
        for table, symbol, width, value in symbols_:
            if table == 4:
                bits.put(width, value)
            else:
                bits.put(codes[table][1][symbol], codes[table][0][symbol])
    bits.put(codes[0][1][256], codes[0][0][256])
    bits.put(2, 1)
    return bits.finish()[0]


def test_a_standard_program_is_run_and_any_other_refused():
    assert rar3.unpacker(filter_stream(RAR3_E8E9_CODE), 200, None)(200) == b"A" * 200
    other = bytearray(RAR3_E8E9_CODE)
    other[-1] ^= 1
    other[0] ^= 1                                   # its check byte still right
    with pytest.raises(Unreadable, match="a RAR VM program not run here"):
        rar3.unpacker(filter_stream(bytes(other)), 200, None)(200)


def test_a_claimed_dictionary_allocates_nothing_and_matches_stay_inside():
    packer = Rar3Packer()
    packed = packer.pack(b"A" * 5000)
    assert rar3.unpacker(packed, 5000, None)(1 << 30) == b"A" * 5000
    archive = rar3_archive({"a": b"A" * 5000}, packed={"a": packed})
    assert rarfile.RarFile(io.BytesIO(archive)).infolist()[0].file_size == 5000


def test_native_filters_undo_what_a_packer_does():
    rng = random.Random(5)
    # ITANIUM: a branch (opcode 5 in a slot the template names) made absolute, relative
    # again; everything else untouched.
    bundle = bytearray(rng.randbytes(16))
    bundle[0] = 0x10                                # template 0x10: slot 2 only
    value = int.from_bytes(bundle, "little")
    first = 2 * 41 + 5
    value = value & ~(15 << (first + 37)) | 5 << (first + 37)
    value = value & ~(0xFFFFF << (first + 13)) | 0x12345 << (first + 13)
    data = value.to_bytes(16, "little") * 4 + bytes(16)
    out = rar3._filtered(rar3.ITANIUM, data, 32, [0] * 7)
    for index in range(4):
        target = int.from_bytes(out[16 * index:16 * index + 16], "little") >> (first + 13)
        assert target & 0xFFFFF == (0x12345 - (2 + index)) & 0xFFFFF
    # RGB and AUDIO: predictions that only depend on bytes before; all-zero differences
    # of a flat picture or silence give back flat bytes.
    assert rar3._filtered(rar3.RGB, bytes(300), 0, [30, 0, 0, 0, 0, 0, 0]) == bytes(300)
    assert rar3._filtered(rar3.AUDIO, bytes(300), 0, [2, 0, 0, 0, 0, 0, 0]) == bytes(300)
    with pytest.raises(Unreadable):
        rar3._filtered(rar3.RGB, bytes(300), 0, [400, 0, 0, 0, 0, 0, 0])
    with pytest.raises(Unreadable):
        rar3._filtered(rar3.DELTA, bytes(300), 0, [0] * 7)
