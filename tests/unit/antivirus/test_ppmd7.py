"""PPMd variant H (``ppmd7``): 7z folders 7-Zip itself packed with PPMd, and RAR 3's PPMd
blocks as the tests' packer writes them (checked against libarchive's reader), come back
exactly; a model larger than the bound is refused before anything is allocated; damage of
any kind is Unreadable, never another error."""

from __future__ import annotations

import random
import zlib

import pytest

from portcullis.antivirus import ppmd7, rar3, sevenzip
from portcullis.antivirus.archives import Limits
from portcullis.antivirus.readers import Unreadable, Unsupported
from tests.support.attachments import Rar3Packer, executable, rar3_ppmd_block, seven_zip
from tests.support.attachments import rar3 as rar3_archive
from tests.support.rar_samples import by_bsdtar
from tests.unit.antivirus.test_archives import inventory_of, judged, sample_text

pytestmark = pytest.mark.antivirus

# Small inputs: PPMd in Python decodes some 100 KB a second.
TEXT = sample_text(24_000)
BINARY = executable() + random.Random(7).randbytes(6_000) + bytes(range(256)) * 20


def unpacked(archive: bytes) -> dict[str, bytes]:
    opened = sevenzip.Archive(archive, max_members=100)
    assert all(opened.readable(m) and opened.slowly_decoded(m) for m in opened.members)
    return {m.name: opened.read(m, 1 << 30, budget=1 << 30) for m in opened.members}


@pytest.mark.parametrize("options", [
    ("-m0=PPMd:o=4:mem=1m",),
    ("-m0=PPMd:o=32:mem=192m",),            # 7-Zip's "ultra": within the bound
    ("-m0=PPMd:o=16:mem=64k",),             # memory runs out: the model starts over
    ("-m0=PPMd:o=2:mem=2m", "-ms=off"),     # a folder each
    ("-mf=BCJ", "-m0=PPMd"),                # behind the x86 branch filter
    ("-mf=Delta:4", "-m0=PPMd:o=6"),
], ids=["o4 1m", "o32 192m", "o16 64k", "o2 not solid", "bcj", "delta"])
def test_7z_folders_packed_by_ppmd_unpack_to_their_bytes(options):
    files = {"notes.txt": TEXT, "tool.bin": BINARY, "more.txt": TEXT[::-1][:5000]}
    archive = seven_zip(files, *options)
    assert unpacked(archive) == files


def test_the_model_stops_where_asked_and_goes_on_from_there():
    archive = seven_zip({"a.txt": TEXT}, "-m0=PPMd")
    opened = sevenzip.Archive(archive, max_members=10)
    [member] = opened.members
    assert opened.read(member, 100, budget=1 << 30) == TEXT[:100]
    assert opened.unpacked == 100
    assert opened.read(member, 1 << 30, budget=1 << 30) == TEXT


def with_ppmd_properties(archive: bytes, order: int, memory: int) -> bytes:
    """``archive`` (its header not packed) with its PPMd coder's properties replaced."""
    at = archive.index(b"\x03\x04\x01\x05") + 4
    return archive[:at] + bytes((order,)) + memory.to_bytes(4, "little") + archive[at + 5:]


def test_a_model_larger_than_the_bound_is_refused_and_the_file_known_by_name():
    archive = seven_zip({"setup.pdf": executable() * 4}, "-m0=PPMd:o=6:mem=1m", "-mhc=off")
    assert unpacked(archive) == {"setup.pdf": executable() * 4}
    for order, memory in ((6, 0xFFFFFFDB), (6, ppmd7.MAX_MEMORY + 1), (1, 1 << 20),
                          (65, 1 << 20), (6, 100)):
        claimed = with_ppmd_properties(archive, order, memory)
        opened = sevenzip.Archive(claimed, max_members=10)
        assert not opened.readable(opened.members[0])
        found = inventory_of("hi", ("a.7z", claimed))
        assert [(f.shown, f.opened) for f in found.files] == [("a.7z", True),
                                                              ("a.7z > setup.pdf", False)]
    with pytest.raises(Unsupported, match="PPMd memory of 4095 MiB"):
        ppmd7.SevenZipDecoder(bytes((6,)) + (0xFFFFFFFF).to_bytes(4, "little"))


def test_an_executable_under_a_harmless_name_in_a_ppmd_7z_is_seen_for_what_it_is():
    files = {"Invoice.pdf": executable() * 30, "notes.txt": TEXT}
    archive = seven_zip(files, "-m0=PPMd", "-ms=off")
    found = inventory_of("hi", ("a.7z", archive))
    assert judged(found, "a.7z") == {"Invoice.pdf": "exe", "notes.txt": None}
    # ClamAV's 7z reader has the LZMA SDK's PPMd: the bytes need not go to it.
    assert found.expanded == []
    # Decoded in Python: within the slow budget, past it known by name.
    tight = inventory_of("hi", ("a.7z", archive), limits=Limits(max_slow_unpacked=20_000))
    assert [(f.shown, f.opened) for f in tight.files][1:] == [
        ("a.7z > Invoice.pdf", True), ("a.7z > notes.txt", False)]
    # ... and within PPMd's own allowance, far smaller (PPMd is the slowest decoder here).
    tight = inventory_of("hi", ("a.7z", archive), limits=Limits(max_ppmd_unpacked=20_000))
    assert [(f.shown, f.opened) for f in tight.files][1:] == [
        ("a.7z > Invoice.pdf", True), ("a.7z > notes.txt", False)]


FILES_FOR_MEMORY = {"a.txt": b"some text " * 100}


def mutations(packed: bytes, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cases = [packed[:cut] for cut in range(0, len(packed), max(1, len(packed) // 40))]
    for _ in range(count):
        damaged = bytearray(packed)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cases.append(bytes(damaged))
    return cases


def test_damaged_7z_ppmd_streams_only_ever_raise_unreadable():
    data = TEXT[:600] + BINARY[:300]
    archive = seven_zip({"a": data}, "-m0=PPMd:o=8:mem=64k")
    opened = sevenzip.Archive(archive, max_members=10)
    [(start, size)] = opened._packed[0]
    properties = opened._streams.folders[0].chain[0][1]
    outcomes = {"read": 0, "unreadable": 0}
    for case in mutations(archive[start:start + size], 150, 2026):
        try:
            out = ppmd7.SevenZipDecoder(properties).decompress(case, len(data))
            outcomes["read" if out == data else "unreadable"] += 1   # wrong bytes: the CRC's job
        except Unreadable:
            outcomes["unreadable"] += 1
    assert outcomes["unreadable"] > 100


# -- RAR 3 ---------------------------------------------------------------------------------

PPMD_CASES = {
    "text": (TEXT, {}),
    "binary, order 16": (BINARY, {"order": 16, "memory_mb": 2}),
    "order 2, literals only": (TEXT[:8000], {"order": 2, "matches": False}),
    "another escape byte": (TEXT[:6000] + b"\x1b" * 9 + bytes(range(40)), {"escape": 0x1B}),
}


@pytest.mark.parametrize("case", PPMD_CASES)
def test_rar3_ppmd_blocks_libarchive_reads_are_decoded_exactly(case):
    data, options = PPMD_CASES[case]
    packed, _ = rar3_ppmd_block(data, **options)
    archive = rar3_archive({"member": data}, packed={"member": packed})
    assert by_bsdtar(archive, "member") == data          # the packer writes real RAR 3
    first = rar3.unpacker(packed, len(data), zlib.crc32(data))
    assert first(100) == data[:100]                     # only as far as asked,
    assert first(1 << 30) == data                       # and on from there


def test_a_ppmd_block_then_lz_blocks_share_one_output():
    head, tail = TEXT[:6000], TEXT[:3000] + BINARY[:2000]    # the LZ part reaches back
    ppmd_part, _ = rar3_ppmd_block(head, last=False)
    packer = Rar3Packer()
    packer.history += head
    data = head + tail
    packed = ppmd_part + packer.pack(tail)
    assert packer.used["match"]
    archive = rar3_archive({"member": data}, packed={"member": packed})
    assert by_bsdtar(archive, "member") == data
    assert rar3.unpacker(packed, len(data), zlib.crc32(data))(1 << 30) == data


def test_a_solid_member_carrying_on_a_ppmd_block_is_known_by_name_not_damage():
    first, _ = rar3_ppmd_block(TEXT[:500])                 # ends inside its PPMd block
    run = rar3.Stream()
    assert run.unpacker(first, 500, zlib.crc32(TEXT[:500]))(1 << 30) == TEXT[:500]
    with pytest.raises(Unsupported, match="PPMd"):
        run.unpacker(bytes(20), 100, None, solid=True)(100)


def test_damaged_rar3_ppmd_streams_only_ever_raise_unreadable():
    data = TEXT[:700] + BINARY[:300]
    packed, _ = rar3_ppmd_block(data, order=8)
    crc = zlib.crc32(data)
    outcomes = {"read": 0, "unreadable": 0}
    for case in mutations(packed, 150, 7):
        try:
            assert rar3.unpacker(case, len(data), crc)(1 << 30) == data
            outcomes["read"] += 1
        except Unreadable:
            outcomes["unreadable"] += 1
    assert outcomes["unreadable"] > 100


def test_a_model_whose_memory_cannot_be_mapped_leaves_the_file_known_by_name(monkeypatch):
    text = FILES_FOR_MEMORY["a.txt"]
    archives = {"a.7z": seven_zip(FILES_FOR_MEMORY, "-m0=PPMd"),
                "a.rar": rar3_archive(FILES_FOR_MEMORY,
                                      packed={"a.txt": rar3_ppmd_block(text)[0]})}

    def refuse(*_args):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(ppmd7.mmap, "mmap", refuse)     # a host that overcommits nothing
    with pytest.raises(ppmd7.Unsupported, match="memory for a PPMd model"):
        ppmd7.Model(1 << 20, 6)
    for name, archive in archives.items():
        found = inventory_of("hi", (name, archive))
        assert [(f.shown, f.opened) for f in found.files] == [
            (name, True), (f"{name} > a.txt", False)]
