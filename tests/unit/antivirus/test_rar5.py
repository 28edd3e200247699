"""RAR 5 decompression (``rar5``): what the tests' packer writes, checked against
libarchive's reader (bsdtar), and what WinRAR wrote, comes back exactly; damage of any kind
is Unreadable, never another error; the bounds hold."""

from __future__ import annotations

import random
import zlib

import pytest

from portcullis.antivirus import rar5
from portcullis.antivirus.archives import Problem, inventory
from portcullis.antivirus.readers import Unreadable
from portcullis.mime import parse_message
from tests.support.attachments import Rar5Packer, mail
from tests.support.attachments import rar5 as rar5_archive
from tests.support.rar_samples import arm_code, by_bsdtar, repeats, text, x86_code

pytestmark = pytest.mark.antivirus

CASES = {
    "text": (text(150_000), {}),
    "binary": (random.Random(2).randbytes(20_000) * 3, {}),
    "e8e9": (x86_code(60_000), {"filter": "e8e9"}),
    "e8": (x86_code(30_000), {"filter": "e8"}),
    "arm": (arm_code(40_000), {"filter": "arm"}),
    "delta": (bytes((n * 3 + n % 4 * 60) & 255 for n in range(30_000)),
              {"filter": "delta", "channels": 4}),
    "filters in ranges": (x86_code(50_000), {"filter": "e8e9", "filter_bytes": 8192}),
    "repeats": (repeats(), {}),
    "blocks": (text(200_000, 3), {"block_bytes": 20_000}),
    "blocks sharing tables": (text(200_000, 4), {"block_bytes": 20_000, "new_tables": False}),
    "far": ((lambda far: far + random.Random(3).randbytes(300_000) + far)(
        random.Random(4).randbytes(2000)), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_what_libarchive_reads_is_decoded_exactly(case):
    data, options = CASES[case]
    packer = Rar5Packer()
    packed = packer.pack(data, **options)
    archive = rar5_archive({"member": data}, packed={"member": packed})
    assert by_bsdtar(archive, "member") == data          # the packer writes real RAR 5
    first = rar5.unpacker(packed, len(data), zlib.crc32(data))
    assert first(100) == data[:100]                     # decodes only as far as asked,
    assert first(1 << 30) == data                       # and then on from there
    if case == "repeats":
        assert packer.used["old distance"] and packer.used["last match"]
    if case == "far":
        assert packer.used["far"]
    if "filter" in options:
        assert packer.used["filter"] == -(-len(data) // options.get("filter_bytes", 1 << 22))


def test_undecodable_bytes_are_damage_and_later_solid_members_stay_unopened():
    archive = rar5_archive({"a.exe": b"MZ" * 100, "b.exe": b"MZ" * 100},
                           packed={"a.exe": b"\xff" * 40, "b.exe": b"\x00" * 10}, solid=True)
    found = inventory(parse_message(mail("x", attachments=[("x.rar", archive)])))
    assert [(f.shown, f.opened) for f in found.files[1:]] == [("x.rar > a.exe", False),
                                                              ("x.rar > b.exe", False)]
    assert len(found.problems(Problem.UNREADABLE)) == 2


def test_damaged_streams_only_ever_raise_unreadable():
    data = x86_code(12_000) + text(12_000, 9)
    packed = Rar5Packer().pack(data, filter="e8e9", filter_bytes=8192, block_bytes=6000)
    crc = zlib.crc32(data)
    rng = random.Random(2026)
    cases = [packed[:cut] for cut in range(0, len(packed), 37)]
    for _ in range(800):
        damaged = bytearray(packed)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cases.append(bytes(damaged))
    outcomes = {"read": 0, "unreadable": 0}
    for case in cases:
        try:
            assert rar5.unpacker(case, len(data), crc)(1 << 30) == data
            outcomes["read"] += 1
        except Unreadable:
            outcomes["unreadable"] += 1
    assert sum(outcomes.values()) == len(cases) and outcomes["unreadable"] > len(cases) // 2


def test_a_stream_of_tiny_blocks_is_refused_before_it_costs_much():
    data = text(5000)
    packed = Rar5Packer().pack(data, block_bytes=1)          # tables and a code per block
    with pytest.raises(Unreadable, match="3 blocks for 2 bytes"):
        rar5.unpacker(packed, len(data), None)(len(data))


def test_a_flood_of_filters_is_refused():
    data = x86_code(20_000)
    packed = Rar5Packer().pack(data, filter="e8", filter_bytes=4)
    with pytest.raises(Unreadable, match="filters for"):
        rar5.unpacker(packed, len(data), None)(len(data))


def crafted(tokens: list[tuple[int, ...]]) -> bytes:
    """One block of the given packer tokens (a filter: (4, start, length, type, channels,
    0); a match: (1, length, distance, length); a literal: (0, byte, 1))."""
    packer = Rar5Packer()
    return packer._block(tokens, packer._tables(tokens), last=True, with_tables=True)


@pytest.mark.parametrize(("tokens", "error"), [
    ([(4, 0, 0x400001, 1, 0, 0), (0, 65, 1)], "a filter over 4194305 bytes"),
    ([(4, 0, 3, 1, 0, 0), (0, 65, 1)], "a filter over 3 bytes"),
    ([(4, 0, 8, 5, 0, 0), (0, 65, 1)], "a filter of unknown type 5"),
    ([(4, 0, 100, 1, 0, 0), (4, 50, 100, 1, 0, 0)], "out of order"),
    ([(4, 9000, 100, 1, 0, 0), (0, 65, 1)], "past the end"),
    ([(0, 65, 1), (1, 10, 5, 10)], "a match before the start of the output"),
])
def test_filters_out_of_bounds_and_matches_before_the_start_are_damage(tokens, error):
    with pytest.raises(Unreadable, match=error):
        rar5.unpacker(crafted(tokens), 5000, None)(5000)


def test_a_claimed_dictionary_allocates_nothing():
    # The header may claim a dictionary of gigabytes; only what is produced is kept.
    packed = crafted([(0, 65, 1), (1, 4000, 1, 4000)])
    assert rar5.unpacker(packed, 4001, None)(1 << 30) == b"A" * 4001
