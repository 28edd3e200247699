"""RAR 5 decompression (``rar5``): what the tests' packer writes, checked against
libarchive's reader (bsdtar), and what WinRAR wrote, comes back exactly; damage of any kind
is Unreadable, never another error; the bounds hold."""

from __future__ import annotations

import random
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from portcullis.antivirus import rar5
from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.antivirus.readers import Unreadable
from portcullis.mime import parse_message
from tests.support.attachments import Rar5Packer, executable, mail
from tests.support.attachments import rar5 as rar5_archive

pytestmark = pytest.mark.antivirus

WINRAR_SOLID = Path(__file__).parents[2] / "support" / "rar" / "winrar-solid.rar"
LINES = b"".join(b"%03d\n" % n for n in range(512))          # what both its members hold


def text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnop", k=n % 9 + 2)) for n in range(300)]
    return b" ".join(rng.choice(words) for _ in range(size // 6))[:size]


def x86_code(size: int) -> bytes:
    """An executable's look: a PE header, then calls and jumps (E8, E9) between bytes."""
    rng = random.Random(size)
    body = bytearray(executable())
    while len(body) < size:
        body += bytes([rng.choice([0xE8, 0xE9])]) + rng.randrange(-5000, 5000).to_bytes(
            4, "little", signed=True) + bytes(rng.choices([0x90, 0x8B, 0x55], k=rng.randrange(4)))
    return bytes(body[:size])


def arm_code(size: int) -> bytes:
    rng = random.Random(size)
    return b"".join(rng.randrange(1 << 12).to_bytes(3, "little") + bytes([rng.choice([0xEB, 0xE5])])
                    for _ in range(size // 4))


def repeats() -> bytes:
    """Records that reuse the same few distances: old-distance and last-match codes."""
    rng = random.Random(7)
    return b"".join(b"rec:" + bytes([65 + n % 3]) * 6 + rng.randbytes(2) + b"rec:"
                    + bytes([65 + n % 3]) * 6 + rng.randbytes(1) for n in range(2000))


def by_bsdtar(archive: bytes, name: str) -> bytes:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "archive.rar"
        path.write_bytes(archive)
        return subprocess.run(["bsdtar", "-xOf", str(path), name], capture_output=True,
                              check=True).stdout


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


def test_a_solid_pair_carries_on_from_the_member_before():
    first, second = text(60_000, 5), text(30_000, 5)[::-1] + text(20_000, 5)
    archive = rar5_archive({"a.txt": first, "b.txt": second},
                           compressed=frozenset({"a.txt", "b.txt"}), solid=True)
    assert by_bsdtar(archive, "b.txt") == second
    found = inventory(parse_message(mail("x", attachments=[("s.rar", archive)])))
    assert [(f.shown, f.size, f.opened) for f in found.files] == [
        ("s.rar", len(archive), True), ("s.rar > a.txt", 60_000, True),
        ("s.rar > b.txt", len(second), True)]
    assert [data for _, data in found.expanded] == [first, second]


def test_what_winrar_wrote_is_read_solid_members_too():
    archive = WINRAR_SOLID.read_bytes()
    found = inventory(parse_message(mail("x", attachments=[("w.rar", archive)])))
    assert found.expanded == [(("w.rar", "stest1.txt"), LINES), (("w.rar", "stest2.txt"), LINES)]
    assert found.findings == []


def test_an_executable_packed_under_a_harmless_name_is_found_and_goes_to_clamd():
    program = x86_code(40_000)
    archive = rar5_archive({"invoice.pdf": program, "note.txt": b"see the invoice"},
                           compressed=frozenset({"invoice.pdf", "note.txt"}),
                           filters={"invoice.pdf": "e8e9"})
    found = inventory(parse_message(mail("x", attachments=[("invoice.rar", archive)])))
    assert {f.shown: (f.detected, f.opened) for f in found.files} == {
        "invoice.rar": ("rar", True), "invoice.rar > invoice.pdf": ("exe", True),
        "invoice.rar > note.txt": (None, True)}
    assert (("invoice.rar", "invoice.pdf"), program) in found.expanded


def test_a_crc_mismatch_is_damage_and_the_name_is_still_judged():
    packed = Rar5Packer().pack(b"MZ" + b"not what the header says" * 50)
    archive = rar5_archive({"setup.exe": b"MZ" + b"what the header says" * 50},
                           packed={"setup.exe": packed})
    found = inventory(parse_message(mail("x", attachments=[("x.rar", archive)])))
    assert [(f.shown, f.opened) for f in found.files] == [("x.rar", True),
                                                          ("x.rar > setup.exe", False)]
    [problem] = found.problems(Problem.UNREADABLE)
    assert problem.detail.startswith("damaged rar member (damaged: CRC ")
    assert found.expanded == []


def test_undecodable_bytes_are_damage_and_later_solid_members_stay_unopened():
    archive = rar5_archive({"a.exe": b"MZ" * 100, "b.exe": b"MZ" * 100},
                           packed={"a.exe": b"\xff" * 40, "b.exe": b"\x00" * 10}, solid=True)
    found = inventory(parse_message(mail("x", attachments=[("x.rar", archive)])))
    assert [(f.shown, f.opened) for f in found.files[1:]] == [("x.rar > a.exe", False),
                                                              ("x.rar > b.exe", False)]
    assert len(found.problems(Problem.UNREADABLE)) == 2


def test_the_python_decoding_budget_stops_rar_members_and_the_solid_run_after_them():
    texts = {f"{n}.txt": text(90_000, n) for n in range(3)}
    for solid in (False, True):
        archive = rar5_archive(texts, compressed=frozenset(texts), solid=solid)
        found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])),
                          Limits(max_slow_unpacked=100_000))
        shown = [(f.shown, f.opened) for f in found.files[1:]]
        # The second is read as far as the budget goes (10 000 bytes); in a solid
        # archive, the third needs all of it before, so it is known by name alone.
        assert shown == [("a.rar > 0.txt", True), ("a.rar > 1.txt", True),
                         ("a.rar > 2.txt", False)]
        assert [len(data) for _, data in found.expanded] == [90_000, 10_000]
        assert found.unpacked == 100_000


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
