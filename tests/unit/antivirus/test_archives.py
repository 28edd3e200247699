"""The attachment inventory: every file, inside archives too, within hard bounds."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import random
import struct
import subprocess
import sys
import tarfile
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import msoffcrypto
import olefile
import pytest

from portcullis.antivirus import (
    arj,
    cabinet,
    inflate64,
    iso9660,
    lzh,
    lzx,
    office,
    officecrypt,
    onenote,
    sevenzip,
    static_huffman,
    szdd,
    udf,
)
from portcullis.antivirus.archives import HEAD, Limits, Problem, has_files, inventory
from portcullis.antivirus.filetypes import IMAGE_TYPES, detect
from portcullis.antivirus.readers import Unreadable
from portcullis.checks.attachments import blocked_because
from portcullis.mime import MAX_PARTS, parse_message
from tests.support import lzx as lzx_support
from tests.support.attachments import (
    CLAMAV_TESTFILES,
    FILES,
    WORD_MACROS,
    aes_zip,
    arj_archive,
    biff_workbook,
    binhex_text,
    cpio_archive,
    encrypted_office,
    executable,
    gcab_cabinet,
    handmade_cabinet,
    iso_image,
    lzh_archive,
    mail,
    nested_zip,
    ole_document,
    ole_package,
    onenote_section,
    package_native,
    pdf_document,
    rar5,
    rc4_workbook,
    rtf_document,
    seven_zip,
    standard_encrypted_office,
    szdd_file,
    tar_of,
    tnef_stream,
    two_tree_image,
    udf_image,
    uuencoded,
    zip_bomb_42,
    zip_of,
    zipcrypto_zip,
)
from tests.support.clamd import EICAR

pytestmark = pytest.mark.antivirus


DEFAULT = Limits()


def inventory_of(body: str, *attachments: tuple[str, bytes], limits: Limits = DEFAULT):
    return inventory(parse_message(mail("test", body, list(attachments))), limits)


def test_members_of_a_zip_are_listed_with_their_real_type():
    found = inventory_of("hi", ("docs.zip", zip_of({"report.txt": b"fine",
                                                     "sub/setup.pdf": executable()})))
    shown = {f.shown: f.detected for f in found.files}
    assert shown == {"docs.zip": "zip", "docs.zip > report.txt": None,
                     "docs.zip > setup.pdf": "exe"}
    assert found.findings == []


def test_both_names_of_a_mime_part_are_kept():
    raw = (b"From: a@remote.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream; name=\"payload.exe\"\r\n"
           b"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    [attachment] = inventory(parse_message(raw)).files
    assert set(attachment.names) == {"invoice.pdf", "payload.exe"}


def test_a_zipcrypto_archive_is_opened_with_the_password_from_the_body():
    archive = zipcrypto_zip({"price.exe": EICAR}, "34512")
    found = inventory_of("Here is the price list. Password: 34512", ("price.zip", archive))
    assert [(path, data) for path, data in found.decrypted] == [(("price.zip", "price.exe"),
                                                                EICAR)]
    assert found.problems(Problem.LOCKED) == []


def test_an_aes_archive_is_opened_with_the_password_from_the_body():
    archive = aes_zip({"doc.txt": b"secret text"}, "inv-2024")
    found = inventory_of("The archive password is 'inv-2024'.", ("doc.zip", archive))
    assert found.decrypted == [(("doc.zip", "doc.txt"), b"secret text")]


def test_an_encrypted_archive_without_its_password_is_reported_locked():
    archive = zipcrypto_zip({"a.txt": b"x" * 100, "b.txt": b"y" * 100}, "unguessable-9")
    found = inventory_of("No password here.", ("locked.zip", archive))
    assert {f.path for f in found.problems(Problem.LOCKED)} == {("locked.zip", "a.txt"),
                                                                 ("locked.zip", "b.txt")}
    assert found.decrypted == [] and found.encrypted_zips == 1
    assert all(not f.opened for f in found.files if f.encrypted)


def test_encrypted_files_past_the_messages_password_searches_are_locked_untried():
    first = zipcrypto_zip({"a.exe": EICAR}, "34512")
    second = zipcrypto_zip({"b.exe": EICAR}, "34512")
    document = encrypted_office({"word/document.xml": b"<w/>"}, "34512")
    found = inventory_of("Password: 34512", ("1.zip", first), ("2.zip", second),
                         ("3.docx", document), limits=Limits(max_encrypted_tries=1))
    assert found.decrypted == [(("1.zip", "a.exe"), EICAR)]
    assert [(f.path, f.detail) for f in found.problems(Problem.LOCKED)] == [
        (("2.zip", "b.exe"), "encrypted, not tried: the message's limit on password "
                             "searches is reached"),
        (("3.docx",), "encrypted document, not tried: the message's limit on password "
                      "searches is reached")]
    # The budget of bytes decrypted ends the searches as well.
    spent = inventory_of("Password: 34512", ("1.zip", first), ("2.zip", second),
                         limits=Limits(max_decrypted=10))
    assert [f.detail for f in spent.problems(Problem.LOCKED)] == [
        "encrypted, not tried: the message's limit on password searches is reached"]


def test_a_42_zip_style_bomb_is_refused_without_unpacking_it():
    bomb = zip_bomb_42()
    tracemalloc.start()
    try:
        found = inventory_of("hi", ("42.zip", bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [finding] = found.problems(Problem.BOMB)
    assert "compression ratio" in finding.detail or "nested" in finding.detail
    assert found.unpacked < Limits().max_unpacked
    assert peak < 100 * 1024 * 1024


def test_archives_nested_too_deep_are_refused():
    found = inventory_of("hi", ("deep.zip", nested_zip(12, {"x.txt": b"x"})))
    [finding] = found.problems(Problem.BOMB)
    assert "nested more than 4 deep" in finding.detail


def test_archives_nested_within_the_limit_are_walked_to_the_bottom():
    found = inventory_of("hi", ("ok.zip", nested_zip(3, {"bottom.txt": b"x"})))
    assert found.findings == []
    assert found.files[-1].path[-1] == "bottom.txt" and len(found.files[-1].path) == 4


def test_nested_archives_cannot_make_us_unpack_more_than_the_budget():
    limits = Limits(max_unpacked=2 * 1024 * 1024, max_member=8 * 1024 * 1024,
                    ratio_floor=2**40)          # ratio check off: only the budget stands
    # Each inner archive is 3 MiB as stored, a few KiB once the outer one compresses it.
    inner = zip_of({"z.bin": b"\0" * (3 * 1024 * 1024)}, zipfile.ZIP_STORED)
    found = inventory_of("hi", ("outer.zip", zip_of({"inner.zip": inner, "pad.zip": inner})),
                         limits=limits)
    assert "unpacked" in found.problems(Problem.BOMB)[0].detail
    assert found.unpacked <= limits.max_unpacked + 1


def test_too_many_members_is_refused():
    many = zip_of({f"f{n}.txt": b"" for n in range(60)}, zipfile.ZIP_STORED)
    found = inventory_of("hi", ("many.zip", many), limits=Limits(max_files=50))
    assert "members" in found.problems(Problem.BOMB)[0].detail


def test_a_gzip_bomb_is_refused():
    data = gzip.compress(b"\0" * (40 * 1024 * 1024))
    found = inventory_of("hi", ("logs.gz", data), limits=Limits(max_member=8 * 1024 * 1024))
    assert "unpacks to more than 8 MiB" in found.problems(Problem.BOMB)[0].detail


def test_files_inside_a_tar_gz_are_listed():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        payload = executable()
        info = tarfile.TarInfo("bin/tool.dat")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    found = inventory_of("hi", ("bundle.tar.gz", gzip.compress(buffer.getvalue())))
    assert ("bundle.tar.gz", "bundle.tar", "bin/tool.dat") in {f.path for f in found.files}
    assert {f.detected for f in found.files} >= {"gz", "tar", "exe"}


@pytest.mark.parametrize("garbage", [
    b"PK\x03\x04" + b"\xff" * 200,
    zip_of({"a.txt": b"hello" * 100})[:-30],
    b"PK\x03\x04" + bytes(range(256)) * 40,
])
def test_damaged_archives_are_reported_not_raised(garbage):
    found = inventory_of("hi", ("broken.zip", garbage))
    assert found.problems(Problem.UNREADABLE)


def test_members_of_a_rar_are_listed_and_stored_and_packed_ones_opened():
    inner = zip_of({"tool.scr": executable()})
    archive = rar5({"docs/readme.txt": b"hello", "setup.pdf": executable(),
                    "more.zip": inner, "packed.doc": executable(),
                    "packed.zip": zip_of({"deeper.scr": executable()})},
                   compressed=frozenset({"packed.doc", "packed.zip"}),
                   filters={"packed.doc": "e8e9"})
    found = inventory_of("hi", ("files.rar", archive))
    shown = {f.shown: (f.detected, f.opened) for f in found.files}
    assert shown == {"files.rar": ("rar", True), "files.rar > readme.txt": (None, True),
                     "files.rar > setup.pdf": ("exe", True),
                     "files.rar > more.zip": ("zip", True),
                     "files.rar > more.zip > tool.scr": ("exe", True),
                     # RAR 5's own compression, decoded here (rar5).
                     "files.rar > packed.doc": ("exe", True),
                     "files.rar > packed.zip": ("zip", True),
                     "files.rar > packed.zip > deeper.scr": ("exe", True)}
    assert found.findings == []


def test_encrypted_rar_members_and_encrypted_rar_names_are_locked():
    # The password is not in the message (see test_rarcrypt for those that are).
    members = inventory_of("hi", ("a.rar", rar5({"open.txt": b"hi", "secret.exe": b"x"},
                                                encrypted=frozenset({"secret.exe"}),
                                                password="elsewhere")))
    assert [f.path for f in members.files if f.encrypted] == [("a.rar", "secret.exe")]
    assert [f.path for f in members.problems(Problem.LOCKED)] == [("a.rar", "secret.exe")]
    names = inventory_of("hi", ("b.rar", rar5({"x.exe": b"x"}, encrypted=frozenset({"x.exe"}),
                                              encrypted_names=True, password="elsewhere")))
    assert names.problems(Problem.LOCKED)[0].detail == \
        "file names encrypted, no password found in the message"
    assert [f.path for f in names.files] == [("b.rar",)]


def test_rar_bounds_hold_like_zip_bounds():
    many = rar5({f"f{n}.txt": b"" for n in range(60)})
    found = inventory_of("hi", ("many.rar", many), limits=Limits(max_files=50))
    assert "more than 50 files" in found.problems(Problem.BOMB)[0].detail
    deep = rar5({"x.txt": b"x"})
    for level in range(6):
        deep = rar5({f"level{level}.rar": deep})
    assert inventory_of("hi", ("deep.rar", deep)).problems(Problem.BOMB)


@pytest.mark.parametrize("garbage", [
    b"Rar!\x1a\x07\x01\x00" + b"\xff" * 200,
    b"Rar!\x1a\x07\x00" + bytes(range(256)) * 4,
])
def test_damaged_rar_is_reported_not_raised(garbage):
    found = inventory_of("hi", ("broken.rar", garbage))
    assert found.problems(Problem.UNREADABLE)


def test_a_zip_member_without_a_name_is_inventoried_not_raised():
    # Found by hypothesis: zipfile's own is_dir() fails on an empty member name.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), executable())
    found = inventory_of("hi", ("noname.zip", buffer.getvalue()))
    assert [(f.path, f.detected) for f in found.files][1:] == [
        (("noname.zip", "(unnamed)"), "exe")]


SEVEN_ZIP_FILES = {"readme.txt": b"hello", "empty.txt": b"",
                   "bin/setup.exe": executable() * 40,
                   "docs/\u00fcn\u00efc\u00f8d\u00e9 \u6587\u4ef6.pdf": b"%PDF-1.4" * 500,
                   **{f"data/f{n}.bin": bytes([n]) * (n * 37) for n in range(1, 60)}}


def listed_by_7zip(archive: bytes, suffix: str) -> list[dict[str, str]]:
    """What 7-Zip itself says an archive holds: its fields (Path, Size, ...) per entry."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as file:
        file.write(archive)
        file.flush()
        listing = subprocess.run(["7zz", "l", "-slt", file.name], capture_output=True,
                                 text=True, check=True).stdout.split("----------\n", 1)[1]
    return [dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
            for block in listing.split("\n\n") if block.strip()]


def extracted_by_7zip(archive: bytes, suffix: str) -> dict[str, bytes]:
    """What 7-Zip itself unpacks an archive to: each file's bytes by its path."""
    with tempfile.TemporaryDirectory() as directory:
        packed = Path(directory) / f"packed{suffix}"
        packed.write_bytes(archive)
        subprocess.run(["7zz", "x", "-bso0", f"-o{directory}/out", str(packed)], check=True)
        out = Path(directory) / "out"
        return {str(f.relative_to(out)): f.read_bytes() for f in out.rglob("*") if f.is_file()}


def seven_zip_listing(archive: bytes) -> set[tuple[str, int, bool]]:
    """(path, size, is a directory) of each entry, as 7-Zip lists them."""
    return {(e["Path"], int(e.get("Size") or 0), e["Attributes"].startswith("D"))
            for e in listed_by_7zip(archive, ".7z")}


@pytest.mark.parametrize("options", [
    (),                          # LZMA2, solid, header packed with LZMA
    ("-ms=off", "-mf=BCJ"),      # one folder per file, two-coder chains (x86 filter)
    ("-mhc=off",),               # header not packed
    ("-mx0",),                   # stored
    ("-m0=lzma", "-mqs=on"),
    ("-mf=Delta:4",),            # Delta filter before LZMA2
])
def test_7z_members_are_what_7zip_itself_lists_and_unpack_to_their_bytes(options):
    archive = seven_zip(SEVEN_ZIP_FILES, *options)
    opened = sevenzip.Archive(archive, max_members=1000)
    assert {(m.name, m.size, m.is_dir) for m in opened.members} == seven_zip_listing(archive)
    for member in opened.members:
        if not member.is_dir:
            assert opened.readable(member), member.name
            assert opened.read(member, 2**30, budget=2**30) == SEVEN_ZIP_FILES[member.name]
    found = inventory_of("hi", ("files.7z", archive))
    assert found.findings == []
    shown = {f.shown: (f.detected, f.opened) for f in found.files}
    assert shown["files.7z > setup.exe"] == ("exe", True)
    assert shown["files.7z > \u00fcn\u00efc\u00f8d\u00e9 \u6587\u4ef6.pdf"] == ("pdf", True)


@pytest.mark.parametrize("options", [
    ("-mf=BCJ2",),                                 # BCJ2 over LZMA, LZMA and LZMA2, solid
    ("-mf=BCJ2", "-ms=off"),                       # one folder per file
    ("-m0=BCJ2", "-m1=LZMA", "-m2=LZMA", "-m3=LZMA", "-mb0:1", "-mb0s1:2", "-mb0s2:3"),
    ("-m0=BCJ2", "-m1=Copy", "-m2=Copy", "-m3=Copy", "-mb0:1", "-mb0s1:2", "-mb0s2:3"),
], ids=["default", "not-solid", "lzma", "stored"])
def test_7z_members_behind_bcj2_unpack_to_their_bytes_and_are_judged_by_them(options):
    # BCJ2 is what 7-Zip offers for programs: an .exe renamed .pdf in it must be seen.
    code = Path(sys.executable).resolve().read_bytes()[:400_000]   # real x86 calls, jumps
    files = {"setup.pdf": executable() * 40, "readme.txt": b"hello" * 99, "code.bin": code}
    archive = seven_zip(files, *options)
    opened = sevenzip.Archive(archive, max_members=10)
    for member in opened.members:
        assert opened.readable(member), member.name
        assert opened.read(member, 2**30, budget=2**30) == files[member.name], member.name
    found = inventory_of("hi", ("files.7z", archive))
    assert {f.shown: (f.detected, f.opened) for f in found.files}["files.7z > setup.pdf"] \
        == ("exe", True)
    assert found.findings == []


def test_a_bcj2_stream_of_nothing_but_opcodes_spends_the_slow_allowance():
    # Every byte an E8 whose target the range coder says was moved: decoded in Python one
    # opcode at a time, so the message's allowance for slow decoders bounds it.
    archive = seven_zip({"calls.pdf": b"\xe8" * 1_000_000}, "-mf=BCJ2")
    found = inventory_of("hi", ("calls.7z", archive), limits=Limits(max_ppmd_unpacked=10_000))
    assert {(f.shown, f.opened) for f in found.files} == {
        ("calls.7z", True), ("calls.7z > calls.pdf", False)}
    assert [(f.shown, f.detail) for f in found.findings] == [("calls.7z > calls.pdf",
                                                               PAST_BUDGET)]


@pytest.mark.parametrize("slot", [0, 1, 3], ids=["main", "calls", "ranges"])
def test_a_bcj2_folder_whose_stream_ends_early_is_damaged_not_a_crash(slot):
    code = Path(sys.executable).resolve().read_bytes()[:100_000]
    archive = seven_zip({"setup.pdf": code}, "-m0=BCJ2", "-m1=Copy", "-m2=Copy", "-m3=Copy",
                        "-mb0:1", "-mb0s1:2", "-mb0s2:3")
    opened = sevenzip.Archive(archive, max_members=10)
    folder, streams = opened._streams.folders[0], opened._packed[0]
    assert streams is not None and folder.bcj2 is not None
    # One of the four packed streams cut to half its length.
    index = folder.bcj2[slot].packed
    start, size = streams[index]
    streams[index] = (start, size // 2)
    for _ in range(2):                              # and again: not a state half-decoded
        with pytest.raises(Unreadable, match="ends before"):
            opened.read(opened.members[0], 2**30, budget=2**30)
    found = inventory_of("hi", ("setup.7z", archive))
    assert found.problems(Problem.UNREADABLE) == []             # the real one is whole


def test_a_7z_member_beyond_the_unpacking_budget_is_known_by_name_and_reported():
    """clamd decodes LZMA itself, so the member is scanned; but its type was never
    looked at, and it passed with no finding: an executable named payload.pdf behind
    filler went through the attachment rules unseen."""
    archive = seven_zip({"a/padding.bin": bytes(range(256)) * 4096, "b/payload.pdf": executable()},
                        "-mx1")
    found = inventory_of("hi", ("big.7z", archive), limits=Limits(max_unpacked=512 * 1024))
    assert {(f.shown, f.opened) for f in found.files} == {
        ("big.7z", True), ("big.7z > padding.bin", True), ("big.7z > payload.pdf", False)}
    assert found.unpacked <= 512 * 1024
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("big.7z > payload.pdf", Problem.UNREADABLE, PAST_BUDGET)]


def test_a_7z_member_clamd_cannot_decode_beyond_the_unpacking_budget_is_reported():
    """A 7z folder packed by Deflate (or BZip2) is decoded here for clamd, whose 7z reader
    has the LZMA SDK's coders only.  A member past the unpacking budget was known by
    name with no word: nobody scanned it, and a filler first let a virus through."""
    archive = seven_zip({"a/padding.bin": bytes(range(256)) * 800,
                         "b/payload.pdf": executable() + bytes(150_000)}, "-m0=Deflate")
    found = inventory_of("hi", ("big.7z", archive), limits=Limits(max_unpacked=512 * 1024))
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("big.7z > payload.pdf", Problem.UNSCANNED,
         "not all handed to the virus scanner, which cannot decode how it is packed")]


@pytest.mark.parametrize("method", ["-mf=ARM64", "-mf=RISCV", "-m0=Swap4"])
def test_a_7z_member_packed_by_a_method_nobody_decodes_is_reported(method):
    """7-Zip's newer filters (ARM64, RISC-V) and Swap are decoded neither here nor by
    clamd's 7z reader (the LZMA SDK's older coders): such a member was known by its
    name alone, with no finding, and an executable named invoice.pdf in it passed
    unscanned and unjudged."""
    archive = seven_zip({"invoice.pdf": executable() * 10}, method)
    found = inventory_of("hi", ("x.7z", archive))
    assert [(f.shown, f.opened) for f in found.files] == [("x.7z", True),
                                                          ("x.7z > invoice.pdf", False)]
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("x.7z > invoice.pdf", Problem.UNSCANNED,
         "not all handed to the virus scanner, which cannot decode how it is packed")]


def in_little_memory(code: str, archive: bytes) -> str:
    """Run ``code`` (``data`` holds the archive) in a fresh interpreter whose address space
    is capped at 1 GiB: liblzma allocates a decoder's whole dictionary up front, outside
    Python's sight (tracemalloc sees none of it), so a claimed 4 GiB would fail there."""
    with tempfile.NamedTemporaryFile(suffix=".7z") as file:
        file.write(archive)
        file.flush()
        prologue = ("import resource, sys\n"
                    "resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
                    "data = open(sys.argv[1], 'rb').read()\n")
        run = subprocess.run([sys.executable, "-c", prologue + code, file.name],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout.strip()


def claim_huge_dictionary(archive: bytes, which: int) -> bytes:
    """``archive`` with an LZMA coder (03 01 01, 5 property bytes) claiming a 4 GiB
    dictionary: ``which`` -1 is the last such coder in the file, -2 the one before."""
    marker = b"\x23\x03\x01\x01\x05"
    places = [n for n in range(len(archive)) if archive.startswith(marker, n)]
    changed = bytearray(archive)
    at = places[which] + 6
    changed[at:at + 4] = b"\xff\xff\xff\xff"
    return bytes(changed)


def test_a_7z_claiming_a_huge_dictionary_for_its_files_allocates_nothing_of_the_kind():
    archive = claim_huge_dictionary(seven_zip({"a.exe": executable()}, "-m0=lzma", "-mhc=off"),
                                    -1)
    detected = in_little_memory(
        "from portcullis.antivirus.archives import inventory\n"
        "from portcullis.mime import parse_message\n"
        "from tests.support.attachments import mail\n"
        "found = inventory(parse_message(mail('x', attachments=[('big.7z', data)])))\n"
        "print(','.join(str(f.detected) for f in found.files))\n", archive)
    assert detected == "7z,exe"


def test_zip_members_packed_by_lzma_go_to_clamd_whole():
    text = b"see the invoice " * 9000
    found = inventory_of("hi", ("a.zip", zip_of({"notes.txt": text}, zipfile.ZIP_LZMA)))
    assert found.expanded == [(("a.zip", "notes.txt"), text)]     # clamd has no LZMA
    big = inventory_of("hi", ("a.zip", zip_of({"big.txt": text * 30}, zipfile.ZIP_LZMA)),
                       limits=Limits(max_member=2**20))
    assert [len(data) for _, data in big.expanded] == [2**20]     # cut, not a bomb
    assert big.problems(Problem.BOMB) == []
    assert inventory_of("hi", ("a.zip", zip_of({"notes.txt": text}))).expanded == []


def test_what_goes_to_clamd_stays_under_its_stream_limit():
    # Past max_for_clamd the inventory's own judgement stands: a stream over clamd's
    # StreamMaxLength would fail the scan, and the message be deferred for ever.
    files = {f"{n}.txt": bytes([65 + n]) * 600_000 for n in range(3)}
    found = inventory_of("hi", ("a.zip", zip_of(files, zipfile.ZIP_LZMA)),
                         limits=Limits(max_for_clamd=2_600_000))
    # expanded files have half of it: the rest is kept for decrypted ones
    assert [path[-1] for path, _ in found.expanded] == ["0.txt", "1.txt"]
    assert len(found.files) == 4                          # all three judged all the same
    # ... and the one left out was scanned by nobody (clamd decodes no LZMA in a zip):
    # said, as for RAR content, where it had passed with no word.
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("a.zip > 2.txt", Problem.UNSCANNED,
         "too large to hand to the virus scanner, which cannot open it where it is")]


def test_a_filler_cannot_take_the_room_decrypted_content_needs_at_clamd():
    filler = ("filler.zip", zip_of({"f.txt": b"x" * 600_000}, zipfile.ZIP_LZMA))
    locked = ("invoice.zip", aes_zip({"invoice.exe": b"MZ" + b"v" * 500_000}, "hello"))
    limits = Limits(max_for_clamd=1_200_000)
    found = inventory_of("The password: hello", filler, locked, limits=limits)
    assert [path[-1] for path, _ in found.expanded] == ["f.txt"]
    assert [path[-1] for path, _ in found.decrypted] == ["invoice.exe"]
    assert found.unscanned_decrypted == 0 and found.problems(Problem.LOCKED) == []
    # decrypted content beyond the whole allowance is reported, not dropped in silence
    bigger = ("invoice.zip", aes_zip({"invoice.exe": b"MZ" + b"v" * 700_000}, "hello"))
    found = inventory_of("The password: hello", filler, bigger, limits=limits)
    assert found.decrypted == [] and found.unscanned_decrypted == 1
    assert [f.detail for f in found.problems(Problem.LOCKED)] == [
        "decrypted, but too large to hand to the virus scanner"]


@pytest.mark.parametrize("method", ["Deflate", "BZip2"])
def test_7z_members_packed_by_deflate_or_bzip2_are_read_and_go_to_clamd(method):
    files = {"Invoice.pdf": executable(), "notes.txt": b"see the invoice " * 9000}
    found = inventory_of("hi", ("a.7z", seven_zip(files, f"-m0={method}")))
    assert judged(found, "a.7z") == {"Invoice.pdf": "exe", "notes.txt": None}
    # clamd's 7z reader does not decode these coders: the files go to it whole.
    assert sorted(found.expanded) == sorted(((("a.7z", name), data)
                                             for name, data in files.items()))
    plain = inventory_of("hi", ("a.7z", seven_zip(files)))          # LZMA2: clamd reads it
    assert plain.expanded == []


def test_encrypted_7z_members_and_encrypted_7z_names_are_locked():
    members = inventory_of("hi", ("a.7z", seven_zip({"x.exe": b"MZ" * 99}, "-pSECRET")))
    assert [f.path for f in members.problems(Problem.LOCKED)] == [("a.7z", "x.exe")]
    names = inventory_of("hi", ("b.7z", seven_zip({"x.exe": b"MZ"}, "-pSECRET", "-mhe=on")))
    assert names.problems(Problem.LOCKED)[0].detail == \
        "file names encrypted, no password found in the message"
    assert [f.path for f in names.files] == [("b.7z",)]


def test_7z_bounds_hold():
    many = seven_zip({f"f{n}.txt": b"" for n in range(60)})
    found = inventory_of("hi", ("many.7z", many), limits=Limits(max_files=50))
    assert "files" in found.problems(Problem.BOMB)[0].detail


def test_a_7z_header_claiming_a_huge_dictionary_allocates_nothing_of_the_kind():
    # Enough names that 7-Zip packs the header (kind 0x17, "encoded header"); its coder
    # is described in the clear at the end of the file.
    archive = seven_zip({f"file{n:02}.txt": b"MZ" * 10 for n in range(40)}, "-m0=lzma")
    assert archive[32 + int.from_bytes(archive[12:20], "little")] == 0x17
    listed = in_little_memory(
        "from portcullis.antivirus import sevenzip\n"
        "print(len(sevenzip.Archive(data, max_members=100).members))\n",
        claim_huge_dictionary(archive, -1))
    assert listed == "40"


@pytest.mark.parametrize("damage", [
    lambda data: data[:40],
    lambda data: data[:32] + b"\xff" * (len(data) - 32),
    lambda data: data[:12] + b"\x00" * 8 + (2**40).to_bytes(8, "little") + data[28:],
    lambda data: b"7z\xbc\xaf\x27\x1c" + bytes(range(256)),
])
def test_damaged_7z_is_reported_not_raised(damage):
    found = inventory_of("hi", ("broken.7z", damage(seven_zip({"a.txt": b"hello" * 50}))))
    assert found.problems(Problem.UNREADABLE) or found.problems(Problem.BOMB)


def test_7z_coder_options_liblzma_refuses_are_damage_not_a_crash():
    # Found by a mutation run: LZMA with lc + lp > 4 makes liblzma refuse the decoder.
    archive = bytearray(seven_zip({"a.exe": b"MZ" * 10}, "-m0=lzma"))
    at = bytes(archive).rindex(b"\x23\x03\x01\x01\x05") + 5   # the header coder's
    archive[at] = 4 + 3 * 9                                      # lc=4, lp=3
    found = inventory_of("hi", ("odd.7z", bytes(archive)))
    assert "coder options refused" in found.problems(Problem.UNREADABLE)[0].detail


def test_a_7z_header_claiming_billions_of_files_is_refused_before_counting_them():
    # A hand-made header: 60,000 folders of one coder, each said to hold 60,000 files,
    # and no sizes for them (a list of zeros per file would need gigabytes).
    number = b"\xc0" + (60_000).to_bytes(2, "little")        # 7z NUMBER, 3 bytes
    header = (b"\x01\x04\x07\x0b" + number + b"\x00" + b"\x01\x00" * 60_000  # folders: COPY
              + b"\x0c" + b"\x00" * 60_000 + b"\x00"                            # unpack sizes
              + b"\x08\x0d" + number * 60_000 + b"\x00\x00\x00")
    start = (0).to_bytes(8, "little") + len(header).to_bytes(8, "little") + b"\0" * 4
    archive = b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 4 + start + header
    with pytest.raises(sevenzip.TooLarge):
        sevenzip.Archive(archive, max_members=5000)


def test_a_rar_file_copy_is_listed_but_never_followed_through_an_external_tool(monkeypatch):
    # rarfile opens the target of a link or file copy, with unrar (or 7z, bsdtar) when the
    # target is packed: no program may run on a hostile archive here.
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or 1 / 0)
    archive = rar5({"packed.exe": b"x" * 50}, compressed=frozenset({"packed.exe"}),
                   copies={"copy.txt": "packed.exe"})
    found = inventory_of("hi", ("links.rar", archive))
    assert {(f.shown, f.opened) for f in found.files} == {
        ("links.rar", True), ("links.rar > packed.exe", True),
        ("links.rar > copy.txt", False)}
    assert started == [] and found.findings == []


ISO_FILES = {"readme.txt": b"hello", "docs/Invoice \u2013 2026.pdf": executable(),
             "docs/deeper/tools.zip": zip_of({"setup.scr": executable()})}


def test_files_on_a_disc_image_are_judged_by_their_joliet_names_and_real_types():
    found = inventory_of("hi", ("disc.iso", iso_image(ISO_FILES, "-J")))
    shown = {f.shown: f.detected for f in found.files}
    assert shown == {"disc.iso": "iso", "disc.iso > readme.txt": None,
                     "disc.iso > Invoice \u2013 2026.pdf": "exe",
                     "disc.iso > tools.zip": "zip",
                     "disc.iso > tools.zip > setup.scr": "exe"}
    assert found.findings == []


def test_a_disc_image_without_joliet_gives_its_iso_9660_names():
    entries = iso9660.files(iso_image({"readme.txt": b"x", "sub/run.exe": b"MZ"}),
                            max_entries=10)
    assert sorted(e.path for e in entries) == ["README.TXT", "SUB/RUN.EXE"]


def test_a_disc_image_whose_directory_points_back_at_the_root_is_walked_once():
    image = bytearray(iso_image({"a.txt": b"x", "sub/b.exe": b"MZ"}))
    # The root directory's extent, from the primary volume descriptor (sector 16).
    root = image[16 * 2048 + 156 + 2:16 * 2048 + 156 + 6]
    # The record naming SUB in the root directory: name length 3 at 32, the name at 33.
    at = bytes(image).index(b"\x03SUB", int.from_bytes(root, "little") * 2048) - 32
    image[at + 2:at + 6] = root                             # SUB is now the root again
    entries = iso9660.files(bytes(image), max_entries=100)
    assert [e.path for e in entries] == ["A.TXT"]


def test_many_entries_sharing_one_big_extent_cannot_make_us_read_it_again_and_again():
    big = b"PK\x03\x04" + b"\0" * (600 * 1024)                 # looks like a zip: read whole
    image = iso_image({f"f{n:03}.zip": big for n in range(40)})
    found = inventory_of("hi", ("disc.iso", image),
                         limits=Limits(max_unpacked=8 * 1024 * 1024, max_member=1024 * 1024))
    assert "unpacked" in found.problems(Problem.BOMB)[0].detail


def _iso_directory_record(name: bytes, extent: int, length: int) -> bytes:
    size = 33 + len(name) + (33 + len(name)) % 2
    record = bytearray(size)
    record[0], record[25], record[32] = size, 0x02, len(name)        # a directory
    record[2:6], record[10:14] = extent.to_bytes(4, "little"), length.to_bytes(4, "little")
    record[33:33 + len(name)] = name
    return bytes(record)


def overlapping_iso_directories(count: int) -> bytes:
    """An ISO 9660 image whose root lists ``count`` directories; directory k starts k
    sectors into one run of sectors full of "." records and reaches to its end, so each
    directory holds the sectors of every later one."""
    sector, root, base = 2048, 18, 40
    image = bytearray((base + count + 1) * sector)
    descriptor = bytearray(sector)
    descriptor[0], descriptor[1:6], descriptor[6] = 1, b"CD001", 1
    descriptor[156:190] = _iso_directory_record(b"\x00", root, 16 * sector)
    image[16 * sector:17 * sector] = descriptor
    image[17 * sector:17 * sector + 6] = b"\xffCD001"
    listing = bytearray()
    for k in range(count):
        record = _iso_directory_record(f"D{k}".encode(), base + k, (count + 1 - k) * sector)
        if len(listing) % sector + len(record) > sector:               # records stay in
            listing += bytes(sector - len(listing) % sector)          # one sector
        listing += record
    image[root * sector:root * sector + len(listing)] = listing
    dot = _iso_directory_record(b"\x00", base, sector)
    image[base * sector:] = (dot * (sector // len(dot))).ljust(sector, b"\0") * (count + 1)
    return bytes(image)


def test_overlapping_iso_9660_directories_are_a_bomb_not_a_long_parse():
    # 500 directories on a 1 MiB image: each re-reads the sectors of the later ones,
    # 250 MiB of records parsed (seconds; an 11.5 MiB image took 37 s).
    image = overlapping_iso_directories(500)
    with pytest.raises(iso9660.TooLarge, match="overlapping"):
        iso9660.files(image, max_entries=10_000)
    found = inventory_of("hi", ("disc.iso", image))
    assert "overlapping" in found.problems(Problem.BOMB)[0].detail


def _udf_tag_checksum(block: bytearray, at: int) -> None:
    block[at + 4] = (sum(block[at:at + 16]) - block[at + 4]) & 0xFF


def test_a_udf_directory_that_repeats_its_own_records_is_a_bomb():
    # The root directory's file entry lists one run of sectors 120 times over: 960 KiB of
    # directory, under the 1 MiB a directory may hold, on an image of 856 KiB.
    image = bytearray(udf_image({"a.txt": b"x"}))
    volume = udf._Volume(bytes(image))
    run = (len(image) - volume.partition_start) // 2048              # 4 sectors added
    identifier = bytearray(40)                                       # "the parent": no name
    identifier[0:2], identifier[18] = (257).to_bytes(2, "little"), 0x08
    _udf_tag_checksum(identifier, 0)
    image += bytes(identifier) * (4 * 2048 // 40) + bytes(4 * 2048 % 40)
    # The partition (its descriptor, tag 5) grows to take in the added sectors.
    partition = next(at for at in range(0, volume.partition_start, 2048)
                     if image[at:at + 2] == b"\x05\0"
                     and int.from_bytes(image[at + 188:at + 192], "little") * 2048
                     == volume.partition_start)
    image[partition + 192:partition + 196] = (run + 4).to_bytes(4, "little")
    _udf_tag_checksum(image, partition)
    entry = volume.partition_start + volume.root() * 2048
    descriptors = struct.pack("<II", 4 * 2048 - 4 * 2048 % 40, run) * 120
    image[entry + 56:entry + 64] = (len(descriptors) // 8 * (4 * 2048 - 4 * 2048 % 40)
                                    ).to_bytes(8, "little")
    image[entry + 172:entry + 176] = len(descriptors).to_bytes(4, "little")
    ads_at = entry + 176 + int.from_bytes(image[entry + 168:entry + 172], "little")
    image[ads_at:ads_at + len(descriptors)] = descriptors
    image[entry + 34] &= 0xF8                                        # short_ad
    _udf_tag_checksum(image, entry)
    with pytest.raises(udf.TooLarge, match="overlapping"):
        udf.files(bytes(image), max_entries=100)


@pytest.mark.parametrize("damage", [
    lambda data: data[:17 * 2048],
    lambda data: data[:16 * 2048 + 6] + b"\xff" * 4096,
    lambda data: data[:16 * 2048 + 158] + b"\xff\xff\xff\x7f" + data[16 * 2048 + 162:],
])
def test_damaged_disc_image_is_reported_not_raised(damage):
    found = inventory_of("hi", ("broken.iso", damage(iso_image({"a.txt": b"hello"}))))
    assert [f.detail for f in found.problems(Problem.UNREADABLE)], found.findings


def test_a_disc_image_directory_cut_inside_a_record_is_damaged_not_a_crash():
    # Found by mutation: the root directory said to end 10 bytes into its third record.
    image = bytearray(iso_image({"a.txt": b"x"}))
    image[16 * 2048 + 166:16 * 2048 + 170] = (34 + 34 + 10).to_bytes(4, "little")
    with pytest.raises(iso9660.Unreadable, match="damaged directory record"):
        iso9660.files(bytes(image), max_entries=10)


UDF_FILES = {"readme.txt": b"hello", "docs/Invoice \u2013 2026.pdf": executable(),
             "docs/deeper/tools.zip": zip_of({"setup.scr": executable()}),
             "empty.txt": b""}


def test_files_on_a_udf_only_image_are_what_7zip_lists_and_judged_by_their_real_type():
    image = udf_image(UDF_FILES)
    assert not iso9660.present(image)
    listed = {(e["Path"], int(e["Size"])) for e in listed_by_7zip(image, ".img")
              if e["Folder"] == "-"}
    assert {(e.path, e.size) for e in udf.files(image, max_entries=100)} == listed
    found = inventory_of("hi", ("disc.img", image))
    shown = {f.shown: f.detected for f in found.files}
    assert shown == {"disc.img": "iso", "disc.img > readme.txt": None,
                     "disc.img > empty.txt": None,
                     "disc.img > Invoice \u2013 2026.pdf": "exe",
                     "disc.img > tools.zip": "zip",
                     "disc.img > tools.zip > setup.scr": "exe"}
    assert found.findings == []


def test_a_file_only_the_udf_tree_shows_is_judged_under_its_udf_name():
    # Windows mounts the UDF tree of an image that has both: an image whose ISO 9660 tree
    # looks harmless must not hide what the UDF one holds.
    image = two_tree_image({"readme.txt": b"hello"}, {"Invoice.pdf": executable()})
    assert [e.path for e in iso9660.files(image, max_entries=10)] == ["F0"]
    found = inventory_of("hi", ("disc.iso", image))
    assert {(f.shown, f.names, f.detected) for f in found.files} == {
        ("disc.iso", ("disc.iso",), "iso"),
        ("disc.iso > readme.txt", ("readme.txt", "F0"), None),
        ("disc.iso > Invoice.pdf", ("Invoice.pdf",), "exe")}


def test_a_udf_directory_that_points_back_at_the_root_is_walked_once():
    image = bytearray(udf_image({"a.txt": b"x", "sub/b.exe": b"MZ"}))
    volume = udf._Volume(bytes(image))
    root = volume.root()
    # The identifier naming "sub" in the root directory: its ICB block at 24.
    at = bytes(image).index(b"\x08sub") - 38
    image[at + 24:at + 28] = root.to_bytes(4, "little")
    entries = udf.files(bytes(image), max_entries=100)
    assert [e.path for e in entries] == ["a.txt"]


def test_udf_allocation_descriptors_continued_in_a_loop_are_refused_not_followed_forever():
    image = bytearray(udf_image({"a.txt": b"x" * 100}))
    volume = udf._Volume(bytes(image))
    blocks = [image[volume.partition_start + n * 2048:volume.partition_start + (n + 1) * 2048]
              for n in range(volume.partition_length // 2048)]
    entry = next(n for n, b in enumerate(blocks) if b[:2] == b"\x05\x01" and b[27] == 5)
    spare = next(n for n, b in enumerate(blocks) if not any(b))
    continued = ((3 << 30) | 2048).to_bytes(4, "little") + spare.to_bytes(4, "little")
    at = volume.partition_start + entry * 2048
    ads = at + 176 + int.from_bytes(image[at + 168:at + 172], "little")
    image[ads:ads + 8] = continued                           # the file's extents go on at
    spare_at = volume.partition_start + spare * 2048         # the spare block, which goes
    image[spare_at:spare_at + 8] = continued                 # on at itself
    with pytest.raises(udf.Unreadable, match="allocation descriptors"):
        udf.files(bytes(image), max_entries=10)


@pytest.mark.parametrize("damage", [
    lambda data: data[:257 * 2048],                                   # cut after the anchor
    lambda data: data[:256 * 2048 + 4] + b"\x00" + data[256 * 2048 + 5:],  # anchor checksum
    lambda data: data[:256 * 2048 + 20] + b"\xff\xff\xff\x7f" + data[256 * 2048 + 24:],
])
def test_damaged_udf_image_is_reported_not_raised(damage):
    found = inventory_of("hi", ("broken.img", damage(udf_image({"a.txt": b"hello"}))))
    assert [f.detail for f in found.problems(Problem.UNREADABLE)], found.findings


CAB_FILES = {"readme.txt": b"hello", "Invoice 2026.pdf": executable(),
             "tools/setup.zip": zip_of({"run.scr": executable()}),
             "data/big.bin": bytes(range(256)) * 400}


def cabinet_listing(archive: bytes) -> set[tuple[str, int]]:
    """(path, size) of each file in a cabinet, as 7-Zip lists them."""
    return {(e["Path"], int(e["Size"])) for e in listed_by_7zip(archive, ".cab")}


@pytest.mark.parametrize("options", [(), ("--zip",)], ids=["stored", "mszip"])
def test_files_in_a_cabinet_are_what_7zip_lists_and_judged_by_their_real_type(options):
    archive = gcab_cabinet(CAB_FILES, *options)
    listed = cabinet.Cabinet(archive, max_members=100).members
    assert {(m.name.replace("\\", "/"), m.size) for m in listed} == cabinet_listing(archive)
    found = inventory_of("hi", ("files.cab", archive))
    shown = {f.shown: (f.detected, f.opened) for f in found.files}
    assert shown == {"files.cab": ("cab", True), "files.cab > readme.txt": (None, True),
                     "files.cab > Invoice 2026.pdf": ("exe", True),
                     "files.cab > setup.zip": ("zip", True),
                     "files.cab > setup.zip > run.scr": ("exe", True),
                     "files.cab > big.bin": (None, True)}
    assert found.findings == []


def test_mszip_blocks_are_unpacked_with_the_previous_block_as_their_dictionary():
    text = b" ".join(b"word%d" % (n % 700) for n in range(30_000))   # ~5 blocks
    archive = handmade_cabinet({"notes.txt": text, "later.pdf": executable()})
    assert cabinet_listing(archive) == {("notes.txt", len(text)),
                                        ("later.pdf", len(executable()))}
    cab = cabinet.Cabinet(archive, max_members=10)
    [folder] = cab.folders
    start, packed, _ = folder.blocks[1]
    with pytest.raises(zlib.error):     # the second block does refer back to the first
        zlib.decompressobj(-15).decompress(archive[start + 2:start + packed])
    assert cab.read(cab.members[0], len(text), budget=10**7) == text
    found = inventory_of("hi", ("notes.cab", archive))
    assert ("notes.cab > later.pdf", "exe") in {(f.shown, f.detected) for f in found.files}


LZX_FILES = {"code.bin": Path(sys.executable).resolve().read_bytes()[:150_000],   # x86
             "words.txt": b" ".join(b"word%d" % (n * 7919 % 900) for n in range(20_000)),
             "zeros.bin": bytes(70_000), "invoice.pdf": executable()}


@pytest.mark.parametrize("window_bits, e8, plan", [
    (16, False, None),                                            # verbatim blocks
    (21, True, ((lzx.ALIGNED, 2), (lzx.UNCOMPRESSED, 1), (lzx.VERBATIM, 3),
                (lzx.ALIGNED, 1 << 30))),
    (15, True, ((lzx.UNCOMPRESSED, 1), (lzx.VERBATIM, 1), (lzx.ALIGNED, 1 << 30))),
], ids=["verbatim", "mixed-2MiB-window", "mixed-32KiB-window"])
def test_lzx_cabinet_members_unpack_to_what_7zip_unpacks_and_are_judged_by_them(
        window_bits, e8, plan):
    # makecab's LZX (Windows updates, drivers) carried a renamed program past the
    # blocked-type check: its members were known by name only.
    archive = handmade_cabinet(LZX_FILES, method=3, window_bits=window_bits, e8=e8, plan=plan)
    assert extracted_by_7zip(archive, ".cab") == LZX_FILES      # the packing is right
    cab = cabinet.Cabinet(archive, max_members=10)
    assert [cab.read(m, 2**30, budget=2**30) for m in cab.members] == list(LZX_FILES.values())
    found = inventory_of("hi", ("update.cab", archive))
    assert {f.shown: (f.detected, f.opened) for f in found.files}["update.cab > invoice.pdf"] \
        == ("exe", True)
    assert found.findings == []


def test_lzx_as_microsofts_own_compressor_writes_it_is_read():
    # A CHM help file's pages, packed by Microsoft's HTML Help compiler (ClamAV's test file).
    chm = (CLAMAV_TESTFILES / "clam.chm").read_bytes()
    window_bits, stream, size, files = lzx_support.chm_content(chm)
    decoder = lzx.Decoder(window_bits, stream)
    out = b"".join(decoder.frame(min(lzx.FRAME, size - done))
                   for done in range(0, size, lzx.FRAME))
    by_7zip = extracted_by_7zip(chm, ".chm")
    assert {name: out[offset:offset + length] for name, (offset, length) in files.items()} \
        == {name: by_7zip[name] for name in files}
    assert out[files["clam.exe.txt"][0]:][:2] == b"MZ"


def test_an_lzx_stream_of_tiny_blocks_is_refused_not_a_slow_grind():
    # Every block builds up to six decoding tables: a block a byte would cost milliseconds
    # a byte, where real compressors write blocks of a frame or more.
    data = bytes(range(256)) * 8
    assert lzx.Decoder(16, lzx_support.compress(data, 16, block_bytes=256)[0]).frame(
        len(data)) == data
    with pytest.raises(Unreadable, match="more LZX blocks"):
        lzx.Decoder(16, lzx_support.compress(data, 16, block_bytes=64)[0]).frame(len(data))


def test_an_lzx_frame_found_damaged_leaves_every_later_one_damaged_too():
    # Found by the fuzzer: a block whose pretree has no codes raised Unreadable, and the
    # cabinet's next member read decoded on from the half-read block header (an assert).
    bits = "0" + "001" + format(lzx.FRAME, "024b") + "0" * 100      # verbatim, empty pretree
    bits += "0" * (-len(bits) % 16)
    stream = b"".join(int(bits[at:at + 16], 2).to_bytes(2, "little")
                      for at in range(0, len(bits), 16))
    decoder = lzx.Decoder(16, stream)
    for _ in range(2):
        with pytest.raises(Unreadable, match="without codes"):
            decoder.frame(lzx.FRAME)


def test_damaged_lzx_only_ever_raises_unreadable():
    data = b"".join(LZX_FILES.values())[:4 * lzx.FRAME]
    stream = b"".join(lzx_support.compress(data, 17, e8_size=len(data), plan=(
        (lzx.ALIGNED, 1), (lzx.UNCOMPRESSED, 1), (lzx.VERBATIM, 1 << 30))))
    rng = random.Random(2026)
    outcomes = {"read": 0, "unreadable": 0}
    for _ in range(300):
        damaged = bytearray(stream)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            decoder = lzx.Decoder(17, bytes(damaged))
            out = b"".join(decoder.frame(lzx.FRAME) for _ in range(4))
            outcomes["read" if out == data else "unreadable"] += 1   # wrong bytes: CRC's job
        except Unreadable:
            outcomes["unreadable"] += 1
    assert outcomes["unreadable"] > 100
    archive = handmade_cabinet(LZX_FILES, method=3)
    found = inventory_of("hi", ("broken.cab", archive[:len(archive) * 2 // 3]))
    assert found.problems(Problem.UNREADABLE)


def test_quantum_cabinet_members_are_known_by_name_and_reported():
    """clamd decodes Quantum, so the members are scanned; but their types were never
    looked at, with no finding: an executable named readme.txt passed the attachment
    rules unseen, as one past the unpacking budget did."""
    found = inventory_of("hi", ("setup.cab", handmade_cabinet(
        {"setup.exe": executable(), "readme.txt": b"x"}, method=2)))
    assert {(f.shown, f.opened) for f in found.files} == {
        ("setup.cab", True), ("setup.cab > setup.exe", False),
        ("setup.cab > readme.txt", False)}
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        (f"setup.cab > {name}", Problem.UNREADABLE, "not looked into here (Quantum)")
        for name in ("setup.exe", "readme.txt")]


@pytest.mark.parametrize(("method", "limits"), [
    (1, Limits(max_unpacked=512 * 1024)),               # MSZIP, the unpacking budget
    (3, Limits(max_slow_unpacked=512 * 1024))])         # LZX, decoded in Python
def test_a_cabinet_file_beyond_the_unpacking_budget_is_known_by_name_and_reported(method,
                                                                                  limits):
    """As for a 7z member: clamd decodes cabinets, but the type of a file past the
    budget was never looked at, and it passed with no finding."""
    archive = handmade_cabinet({"padding.bin": bytes(range(256)) * 4096,   # 1 MiB
                                "payload.pdf": executable()}, method=method)
    found = inventory_of("hi", ("big.cab", archive), limits=limits)
    assert {(f.shown, f.opened) for f in found.files} == {
        ("big.cab", True), ("big.cab > padding.bin", True), ("big.cab > payload.pdf", False)}
    assert found.unpacked <= 512 * 1024
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("big.cab > payload.pdf", Problem.UNREADABLE, PAST_BUDGET)]
    # Within the budget it is opened, and its content tells what it is.
    assert any(f.detected == "exe" for f in inventory_of("hi", ("big.cab", archive)).files)


def test_a_cabinet_bomb_is_refused_by_its_ratio_before_unpacking():
    archive = handmade_cabinet({"zeros.bin": b"\0" * (9 * 1024 * 1024)})
    found = inventory_of("hi", ("zeros.cab", archive))
    assert "compression ratio" in found.problems(Problem.BOMB)[0].detail
    assert found.unpacked == 0


def test_cabinet_folders_that_all_claim_the_same_blocks_are_refused_at_once():
    archive = bytearray(handmade_cabinet({"a.txt": b"x" * 100}))
    archive[26:28] = (65535).to_bytes(2, "little")            # cFolders
    archive[36 + 4:36 + 6] = (65535).to_bytes(2, "little")    # blocks of the one folder
    with pytest.raises(cabinet.Unreadable):
        cabinet.Cabinet(bytes(archive), max_members=10)


@pytest.mark.parametrize("damage", [
    lambda data: data[:30],                                     # header cut short
    lambda data: data[:len(data) - 10],                         # blocks cut short
    lambda data: data[:16] + b"\xff\xff\x00\x00" + data[20:],     # files listed past the end
    lambda data: data[:len(data) // 2],                         # half a cabinet
    lambda data: data.replace(b"CK", b"XX"),                    # MSZIP signature lost
    lambda data: data[:-40] + b"\xff" * 40,                     # deflate data damaged
])
def test_damaged_cabinet_is_reported_not_raised(damage):
    found = inventory_of("hi", ("broken.cab", damage(handmade_cabinet(
        {"a.txt": b"hello" * 50, "b.exe": executable()}))))
    assert found.problems(Problem.UNREADABLE), found.files


def test_a_cabinet_name_longer_than_the_format_allows_is_damage():
    found = inventory_of("hi", ("long.cab", handmade_cabinet({"A" * 300: b"x"})))
    assert "longer than 256 bytes" in found.problems(Problem.UNREADABLE)[0].detail


def test_a_cabinet_listing_more_files_than_allowed_is_a_bomb():
    many = gcab_cabinet({f"f{n}.txt": b"" for n in range(60)})
    found = inventory_of("hi", ("many.cab", many), limits=Limits(max_files=50))
    assert "files" in found.problems(Problem.BOMB)[0].detail


EXCEL_MACROS = ["Workbook", "_VBA_PROJECT_CUR/PROJECT", "_VBA_PROJECT_CUR/VBA/_VBA_PROJECT",
                "_VBA_PROJECT_CUR/VBA/dir", "_VBA_PROJECT_CUR/VBA/Sheet1"]


@pytest.mark.parametrize("paths", [WORD_MACROS, EXCEL_MACROS], ids=["word", "excel"])
def test_a_vba_project_in_an_office_97_document_is_found(paths):
    document = ole_document(paths)
    # The directory as olefile (oletools' reader) lists it: the names we go by are there.
    listed = olefile.OleFileIO(io.BytesIO(document)).listdir(storages=True)
    assert {"/".join(p) for p in listed} >= set(paths)
    found = inventory_of("hi", ("Invoice.doc", document))
    assert [(f.shown, f.detail) for f in found.problems(Problem.MACROS)] == [
        ("Invoice.doc", "VBA macros")]


def test_an_office_97_document_without_a_vba_project_has_no_macros():
    document = ole_document(["WordDocument", "1Table", "\x05SummaryInformation",
                             "ObjectPool/_1279313719/\x01Ole10Native"])
    names = [e.name for e in office.CompoundFile(document).entries]
    assert names[:3] == ["Root Entry", "WordDocument", "1Table"]
    assert inventory_of("hi", ("letter.doc", document)).findings == []


def test_office_open_xml_macros_are_found_whatever_the_document_is_called():
    package = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>",
               "word/vbaProject.bin": ole_document(WORD_MACROS)}
    for name in ("Q3.docm", "Q3.docx"):
        found = inventory_of("hi", (name, zip_of(package)))
        assert found.problems(Problem.MACROS)[0].shown == name
    plain = {k: v for k, v in package.items() if "vba" not in k}
    assert inventory_of("hi", ("Q3.docx", zip_of(plain))).findings == []


def test_an_office_97_document_inside_an_archive_is_read_whole_for_its_directory():
    # The directory of a large document lies far past the first 64 KiB read of a member.
    document = ole_document(WORD_MACROS, filler=300)
    assert len(document) > 150 * 1024
    assert office.contents(document, limit=2**20).macros == "VBA macros"
    assert olefile.OleFileIO(io.BytesIO(document)).exists("Macros/VBA/dir")
    found = inventory_of("hi", ("docs.zip", zip_of({"big.doc": document})))
    assert found.problems(Problem.MACROS)[0].shown == "docs.zip > big.doc"


def test_a_compound_file_whose_sector_chain_loops_is_no_trouble():
    document = bytearray(ole_document(WORD_MACROS))
    document[512 + 4:512 + 8] = (1).to_bytes(4, "little")      # directory sector 1 -> 1
    with pytest.raises(office.Unreadable, match="loops"):
        office.CompoundFile(bytes(document))
    assert inventory_of("hi", ("loop.doc", bytes(document))).findings == []


@pytest.mark.parametrize("pad_to", [0, 6000], ids=["mini stream", "own sectors"])
def test_an_excel_4_macro_sheet_is_found_in_the_workbook_stream(pad_to):
    workbook = biff_workbook([("Sheet1", 0), ("Auto_Open", 1)], pad_to=pad_to)
    document = ole_document(["\x05SummaryInformation"],
                            streams={"Workbook": workbook, "Other/small": b"x" * 100})
    # Streams read as olefile reads them (small ones from the mini stream).
    compound = office.CompoundFile(document)
    reference = olefile.OleFileIO(io.BytesIO(document))
    for entry in compound.entries:
        if entry.kind == office.STREAM and entry.size:
            path = "Other/small" if entry.name == "small" else entry.name
            assert compound.read(entry, 2**20) == reference.openstream(path).read()
    found = inventory_of("hi", ("Budget.xls", document))
    assert [(f.shown, f.detail) for f in found.problems(Problem.MACROS)] == [
        ("Budget.xls", "Excel 4.0 macro sheet")]


def test_a_workbook_with_worksheets_only_or_encrypted_has_no_macro_sheet():
    plain = biff_workbook([("Sheet1", 0), ("Sheet2", 0)], pad_to=5000)
    assert office.contents(ole_document([], streams={"Workbook": plain}), limit=2**20).macros \
        is None
    # FilePass before the sheet list: the sheet types are encrypted, nothing can be told.
    encrypted = bytearray(biff_workbook([("Macro1", 1)], pad_to=5000))
    encrypted[20:20] = b"\x2f\x00\x00\x00"
    assert office.contents(ole_document([], streams={"Workbook": bytes(encrypted)}),
                           limit=2**20).macros is None


@pytest.mark.parametrize("cryptoapi", [True, False], ids=["RC4 CryptoAPI", "RC4 (Excel 97)"])
def test_a_workbook_encrypted_with_excels_built_in_password_is_read(cryptoapi):
    # Excel opens these without asking, so Excel 4.0 macro droppers were sent so.
    # msoffcrypto-tool (an independent reader) decrypts the fixture to the same sheet list.
    sheets = [(f"Sheet{n}", 0) for n in range(150)] + [("Auto_Open", 1)]  # past 1024 bytes
    workbook = rc4_workbook(sheets, cryptoapi=cryptoapi)
    clear = io.BytesIO()
    protected = msoffcrypto.OfficeFile(io.BytesIO(workbook))
    protected.load_key(password="VelvetSweatshop")
    protected.decrypt(clear)
    stream = olefile.OleFileIO(io.BytesIO(clear.getvalue())).openstream("Workbook").read()
    assert office.contents(ole_document([], streams={"Workbook": stream}),
                           limit=2**20).macros == "Excel 4.0 macro sheet"
    found = inventory_of("hi", ("Invoice.xls", workbook))
    assert [f.detail for f in found.problems(Problem.MACROS)] == [
        "Excel 4.0 macro sheet (encrypted with Excel's built-in password)"]
    assert office.contents(rc4_workbook([("Sheet1", 0)], cryptoapi=cryptoapi),
                           limit=2**20).macros is None
    # A password of its own: opened with the one the message gives, else locked.
    own = rc4_workbook([("Macro1", 1)], password="Q3-2026", cryptoapi=cryptoapi)
    opened = inventory_of("The file is protected, password: Q3-2026", ("Q3.xls", own))
    assert [(f.problem, f.detail) for f in opened.findings] == [
        (Problem.MACROS, "Excel 4.0 macro sheet (encrypted; opened with a password from "
                         "the message)")]
    locked = inventory_of("The password follows by phone.", ("Q3.xls", own))
    assert [(f.problem, f.detail) for f in locked.findings] == [
        (Problem.LOCKED, "encrypted workbook, no password found in the message")]


def test_a_file_packaged_into_a_word_document_is_judged_like_an_attachment():
    # A real one: Debian's clamav-testfiles has Word's own document with clam.exe in it.
    real = inventory_of("hi", ("letter.doc", (CLAMAV_TESTFILES / "clam.ole.doc").read_bytes()))
    assert [(f.shown, f.detected) for f in real.files] == [
        ("letter.doc", "ole"), ("letter.doc > Clam.exe", "exe")]
    # One written here, small enough for the mini stream, and olefile agrees on its bytes.
    stream = ole_package("Invoice.pdf", executable())
    document = ole_document(["WordDocument"],
                            streams={"ObjectPool/_1/\x01Ole10Native": stream})
    assert olefile.OleFileIO(io.BytesIO(document)).openstream(
        "ObjectPool/_1/\x01Ole10Native").read() == stream
    found = inventory_of("hi", ("letter.doc", document))
    assert ("letter.doc > Invoice.pdf", "exe") in {(f.shown, f.detected) for f in found.files}


@pytest.mark.parametrize("name", ["clam.zip", "clam.bz2.zip", "clam.tar.gz", "clam.7z",
                                  "clam.cab", "clam.pdf", "clam.ole.doc", "clam.tnef",
                                  "clam.exe.bz2", "clam.exe.rtf", "clam.mail",
                                  "clam.bin-be.cpio", "clam.bin-le.cpio", "clam.newc.cpio",
                                  "clam.odc.cpio", "clam.exe.szdd", "clam.exe.binhex"])
def test_the_executable_in_clamavs_own_test_containers_is_found(name):
    # Made by the real programs (7-Zip, makecab, Acrobat, Word, ...), not by our fixtures.
    found = inventory_of("hi", (name, (CLAMAV_TESTFILES / name).read_bytes()))
    assert "exe" in {f.detected for f in found.files[1:] if f.opened}, found.files
    assert found.findings == []


def test_both_names_of_a_file_in_a_winmail_dat_are_judged():
    """Only the long name (PR_ATTACH_LONG_FILENAME) of a TNEF attachment was judged, its
    title (attAttachTitle) dropped: titled RUN.EXE but long-named photo.jpg, it passed,
    though readers of winmail.dat that go by the title save it as RUN.EXE."""
    stream = tnef_stream({"photo.jpg": b"MZ" * 40}, titles={"photo.jpg": "RUN.EXE"})
    [attached] = [f for f in inventory_of("hi", ("winmail.dat", stream)).files
                  if f.shown == "winmail.dat > photo.jpg"]
    assert attached.names == ("photo.jpg", "RUN.EXE")
    assert blocked_because(attached, frozenset({"exe"})) == "blocked type .exe"


def test_files_in_a_winmail_dat_are_what_the_tnef_program_lists_and_judged_by_content():
    files = {"Quarterly report 2026.pdf": executable(), "notes.txt": b"hello",
             "more.zip": zip_of({"run.scr": executable()})}
    stream = tnef_stream(files)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "winmail.dat").write_bytes(stream)
        listing = subprocess.run(["tnef", "-t", str(Path(work) / "winmail.dat")],
                                 capture_output=True, text=True, check=True).stdout
    assert {line.split("\t")[0] for line in listing.splitlines()} == set(files)
    found = inventory_of("hi", ("winmail.dat", stream))
    assert {f.shown: f.detected for f in found.files} == {
        "winmail.dat": "tnef", "winmail.dat > Quarterly report 2026.pdf": "exe",
        "winmail.dat > notes.txt": None, "winmail.dat > more.zip": "zip",
        "winmail.dat > more.zip > run.scr": "exe"}


@pytest.mark.parametrize("damage", [
    lambda d: d[:len(d) - 30],                                  # an attribute cut short
    lambda d: d[:11] + b"\xff\xff\xff\x7f" + d[15:],                # an absurd length
])
def test_damaged_tnef_is_reported_not_raised(damage):
    found = inventory_of("hi", ("winmail.dat", damage(tnef_stream({"a.exe": b"MZ" * 40}))))
    assert found.problems(Problem.UNREADABLE), found.files


def _lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, _lzma_alone],
                         ids=["gzip", "bzip2", "xz", "lzma alone"])
def test_a_file_compressed_whole_is_judged_by_what_it_unpacks_to(compress):
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w") as archive:
        member = tarfile.TarInfo("bin/setup.pdf")
        member.size = len(executable())
        archive.addfile(member, io.BytesIO(executable()))
    found = inventory_of("hi", ("release.tar.x", compress(tarball.getvalue())))
    assert [(f.shown, f.detected) for f in found.files][1:] == [
        ("release.tar.x > release.tar.x (unpacked)", "tar"),
        ("release.tar.x > release.tar.x (unpacked) > setup.pdf", "exe")]
    bomb = inventory_of("hi", ("zeros.bin.x", compress(b"\0" * (40 * 2**20))))
    assert "unpacks to more than" in bomb.problems(Problem.BOMB)[0].detail


def test_only_an_lzma_alone_file_goes_to_clamd_unpacked():
    # clamd unpacks gzip, bzip2 and xz itself, but not the old .lzma format.
    for compress, handed in ((lzma.compress, []), (_lzma_alone, [("notes.txt", b"hello")])):
        found = inventory_of("hi", (f"notes.txt.{'xz' if not handed else 'lzma'}",
                                    compress(b"hello")))
        assert [(path[-1], data) for path, data in found.expanded] == handed


@pytest.mark.parametrize("head", [
    b"]\x00\x00\x80\x00" + b"\xff" * 8 + b"\x01",       # the range coder starts with 0
    b"]\x00\x00\x81\x00" + b"\xff" * 8 + b"\x00",       # no such dictionary size
    b"\xe1\x00\x00\x80\x00" + b"\xff" * 8 + b"\x00",     # lc/lp/pb out of range
    b"] a list item, the first line of a text file",
])
def test_text_is_not_taken_for_an_lzma_alone_file(head):
    assert detect(head) != "lzma"


def _claiming_dictionary(stream: bytes, encoded_size: int) -> bytes:
    """An xz stream whose LZMA2 filter claims another dictionary size (the block header's
    one properties byte, its CRC32 made right).  Compressing with a 1.5 GiB dictionary
    instead would take 2 GiB of memory to make the test's input."""
    start = 12                                      # after the stream header
    end = start + (stream[start] + 1) * 4           # the block header, CRC32 last
    header = bytearray(stream[start:end - 4])
    flags, at = header[1], 2
    for present in (0x40, 0x80):                    # compressed, uncompressed size
        if flags & present:
            while header[at] & 0x80:
                at += 1
            at += 1
    assert flags & 0x03 == 0 and header[at:at + 2] == b"\x21\x01"  # one filter: LZMA2
    header[at + 2] = encoded_size
    return stream[:start] + bytes(header) + struct.pack("<I", zlib.crc32(header)) + \
        stream[end:]


def test_an_xz_stream_claiming_more_memory_than_allowed_is_not_opened():
    small = lzma.compress(b"x" * 1000, format=lzma.FORMAT_XZ)
    assert lzma.decompress(_claiming_dictionary(small, 24)) == b"x" * 1000   # 16 MiB: read
    claims = _claiming_dictionary(small, 37)        # (2 | 1) << (37 // 2 + 11): 1.5 GiB
    found = inventory_of("hi", ("big.xz", claims))
    assert "Memory usage limit" in found.problems(Problem.UNREADABLE)[0].detail


@pytest.mark.parametrize("obfuscate", [False, True], ids=["as Word writes it", "obfuscated"])
def test_objects_embedded_in_rtf_are_judged(obfuscate):
    document = rtf_document([("Package", package_native("Invoice.pdf", executable())),
                             ("Word.Document.8", ole_document(WORD_MACROS))],
                            obfuscate=obfuscate)
    found = inventory_of("hi", ("letter.rtf", document))
    assert [(f.shown, f.detected) for f in found.files] == [
        ("letter.rtf", "rtf"), ("letter.rtf > Invoice.pdf", "exe"),
        ("letter.rtf > (embedded Word.Document.8 object)", "ole")]
    assert [(f.shown, f.detail) for f in found.problems(Problem.MACROS)] == [
        ("letter.rtf > (embedded Word.Document.8 object)", "VBA macros")]


def test_an_equation_editor_object_in_rtf_is_active_content():
    found = inventory_of("hi", ("order.doc", rtf_document([("Equation.3", b"\x1c\x00" * 50)])))
    assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
        "an Equation Editor object (the way CVE-2017-11882 exploits arrive)"]
    assert inventory_of("hi", ("plain.rtf", rtf_document([]))).findings == []


def test_a_message_attached_as_a_file_has_its_attachments_judged():
    # Sent as application/octet-stream so that nothing treats it as a message.
    inner = mail("inner", attachments=[("setup.pdf", executable())])
    found = inventory_of("hi", ("forwarded.dat", inner))
    assert [(f.shown, f.detected) for f in found.files] == [
        ("forwarded.dat", "eml"), ("forwarded.dat > setup.pdf", "exe")]
    nested = mail("x", attachments=[("a.exe", b"MZ")])
    for level in range(8):
        nested = mail(f"level {level}", attachments=[(f"m{level}.eml", nested)])
    assert "nested more than 4 deep" in inventory_of("hi", ("deep.eml", nested)).problems(
        Problem.BOMB)[0].detail
    # Text that merely starts like a message is read as one, and holds nothing.
    assert inventory_of("hi", ("notes.txt", b"From: a\nTo: b\nSubject: c\n\nhello\n")
                        ).findings == []


def test_a_zip_member_packed_by_a_method_we_cannot_unpack_is_still_judged_by_name():
    # ClamAV's own, packed by PKWARE's old Implode.
    found = inventory_of("hi", ("clam.impl.zip", (CLAMAV_TESTFILES / "clam.impl.zip")
                                .read_bytes()))
    assert [(f.shown.lower(), f.opened) for f in found.files][1:] == [
        ("clam.impl.zip > clam.exe", False)]
    assert "cannot unpack" in found.problems(Problem.UNREADABLE)[0].detail


def test_zip_members_packed_by_deflate64_are_read():
    # ClamAV's own test file (Deflate64 is what Windows writes for big files), and one
    # made by 7-Zip with matches longer than 258 bytes and farther back than 32 KiB.
    real = inventory_of("hi", ("clam.d64.zip", (CLAMAV_TESTFILES / "clam.d64.zip")
                               .read_bytes()))
    assert [(f.shown, f.detected) for f in real.files] == [
        ("clam.d64.zip", "zip"), ("clam.d64.zip > clam.exe", "exe")]
    assert real.findings == []
    files = {"Invoice.pdf": executable() * 50, "notes.txt": sample_text(120_000)}
    archive = seven_zip(files, "-tzip", "-mm=Deflate64")
    assert {m.compress_type for m in zipfile.ZipFile(io.BytesIO(archive)).infolist()} == {9}
    found = inventory_of("hi", ("a.zip", archive))
    assert judged(found, "a.zip") == {"Invoice.pdf": "exe", "notes.txt": None}
    assert found.expanded == []                           # clamd reads Deflate64 zips


def test_a_deflate64_zip_member_failing_its_crc_is_damaged_and_judged_by_name():
    archive = seven_zip({"Invoice.pdf": executable() * 50}, "-tzip", "-mm=Deflate64")
    member = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    wrong = bytearray(archive)
    for at in (14, archive.rindex(b"PK\x01\x02") + 16):   # local and central CRC-32
        wrong[at] ^= 0xFF
    assert member.file_size < HEAD
    found = inventory_of("hi", ("a.zip", bytes(wrong)))
    assert [(f.shown, f.opened) for f in found.files] == [("a.zip", True),
                                                          ("a.zip > Invoice.pdf", False)]
    assert "CRC" in found.problems(Problem.UNREADABLE)[0].detail


@pytest.mark.parametrize("size", [0, 1, 300, 70_000, 400_000])
@pytest.mark.parametrize("strategy", [zlib.Z_DEFAULT_STRATEGY, zlib.Z_FIXED,
                                      zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE],
                         ids=["dynamic", "fixed", "huffman only", "rle"])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_inflate64_reads_plain_deflate_as_zlib_writes_it(size, strategy, level):
    data = sample_text(size)[:size] + random.Random(size).randbytes(size // 20)
    packer = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    packed = packer.compress(data) + packer.flush()
    inflater = inflate64.Inflater(deflate64=False)
    assert inflater.decompress(packed, 1000) + inflater.decompress(b"") == data
    assert inflater.eof


def test_7z_members_packed_by_deflate64_are_read_within_the_slow_budget():
    files = {"Invoice.pdf": executable() * 50, "notes.txt": sample_text(300_000)}
    archive = seven_zip(files, "-m0=Deflate64", "-ms=off")
    found = inventory_of("hi", ("a.7z", archive))
    assert judged(found, "a.7z") == {"Invoice.pdf": "exe", "notes.txt": None}
    # ClamAV's 7z reader does not decode Deflate64 either: the files go to it whole.
    assert sorted(found.expanded) == sorted(((("a.7z", name), data)
                                             for name, data in files.items()))
    tight = inventory_of("hi", ("a.7z", archive), limits=Limits(max_slow_unpacked=100_000))
    assert [(f.shown, f.opened) for f in tight.files][1:] == [
        ("a.7z > Invoice.pdf", True), ("a.7z > notes.txt", False)]


def test_a_deflate64_stream_of_tiny_blocks_is_refused_before_it_costs_much():
    # Empty fixed-code blocks (3 bits and a 7-bit end code each), never final.
    value = 0
    for index in range(20_000):
        value |= 0b010 << (10 * index)                     # BFINAL 0, BTYPE 01; code 0
    packed = value.to_bytes(25_001, "little")
    with pytest.raises(Unreadable, match="17 blocks for 0 bytes"):
        inflate64.Inflater().decompress(packed, 1000)


def test_mutated_deflate64_streams_only_ever_raise_unreadable():
    data = executable() * 20 + sample_text(20_000)
    archive = seven_zip({"a.bin": data}, "-tzip", "-mm=Deflate64", "-mx=9")
    member = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    name_length, extra_length = struct.unpack_from("<HH", archive, 26)   # local header
    start = 30 + name_length + extra_length
    packed = archive[start:start + member.compress_size]
    assert inflate64.Inflater().decompress(packed) == data
    rng = random.Random(64)
    for _ in range(400):
        mutated = bytearray(packed)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(Unreadable):
            inflate64.Inflater().decompress(bytes(mutated), 200_000)


def test_a_damaged_stored_rar_member_is_still_judged_by_name():
    archive = bytearray(rar5({"setup.exe": b"MZ" + b"A" * 100}))
    at = bytes(archive).index(b"MZ" + b"A" * 10) + 5
    archive[at] = ord("B")                               # its bytes no longer match the CRC
    found = inventory_of("hi", ("x.rar", bytes(archive)))
    assert [(f.shown, f.opened) for f in found.files] == [("x.rar", True),
                                                          ("x.rar > setup.exe", False)]
    assert found.problems(Problem.UNREADABLE)[0].detail == "damaged rar member (BadRarFile)"


ODD_ONES = {"docs/readme.txt": b"Dear customer, " * 40, "docs/bin/Invoice.pdf": executable(),
            "more.zip": zip_of({"run.scr": executable()})}
ODD_ONES_JUDGED = {"docs/readme.txt": None, "docs/bin/Invoice.pdf": "exe", "more.zip": "zip",
                   "more.zip > run.scr": "exe"}


def listed_by(command: list[str], data: bytes, suffix: str) -> str:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"archive{suffix}"
        path.write_bytes(data)
        return subprocess.run([*command, str(path)], capture_output=True, text=True,
                              check=True).stdout


def judged(found, outer: str) -> dict[str, str | None]:
    return {f.shown.removeprefix(f"{outer} > "): f.detected for f in found.files[1:]}


@pytest.mark.parametrize("method", ["-m0", "-m1", "-m2", "-m3", "-m4"])
def test_files_in_an_arj_archive_are_what_7zip_lists(method):
    archive = arj_archive(ODD_ONES, method)
    listing = listed_by(["7zz", "l", "-ba"], archive, ".arj")
    assert {line.split()[-1] for line in listing.splitlines()} == set(ODD_ONES)
    found = inventory_of("hi", ("files.arj", archive))
    assert found.files[0].detected == "arj"
    # Stored or packed (arj stores what does not shrink), every file is looked at.
    assert judged(found, "files.arj") == {
        "readme.txt": None, "Invoice.pdf": "exe", "more.zip": "zip",
        "more.zip > run.scr": "exe"}


def sample_text(size: int) -> bytes:
    """Words repeated as text repeats them (matches near and far), and some noise."""
    words = [bytes(random.Random(n).choices(b"abcdefghijklmnop", k=n % 9 + 2))
             for n in range(400)]
    rng = random.Random(size)
    out = b" ".join(rng.choice(words) for _ in range(size // 6))
    return out[:size // 2] + rng.randbytes(size // 8) + out[size // 2:]


@pytest.mark.parametrize("method", ["-m1", "-m2", "-m3", "-m4"])
def test_arj_packed_members_decode_to_what_was_packed(method):
    files = {"big.txt": sample_text(300_000), "small.bin": b"MZ\x90\x00" * 7,
             "clam.exe": (CLAMAV_TESTFILES / "clam.exe").read_bytes()}
    members = arj.members(arj_archive(files, method), max_members=10)
    for member in members:
        assert member.unpack is not None, member.name      # packed: nothing shrank less
        assert member.unpack(1000) == files[member.name][:1000]
        assert member.unpack(1 << 30) == files[member.name]  # on from where it stopped


def test_garbled_arj_members_are_locked_and_the_real_arj_test_file_is_listed():
    found = inventory_of("hi", ("files.arj", arj_archive({"pay.exe": b"MZ" * 99}, "-gsecret")))
    assert [(f.shown, f.encrypted, f.opened) for f in found.files[1:]] == [
        ("files.arj > pay.exe", True, False)]
    assert found.problems(Problem.LOCKED)
    # ClamAV's own, packed by the real ARJ: its clam.exe is read.
    real = inventory_of("hi", ("clam.arj", (CLAMAV_TESTFILES / "clam.arj").read_bytes()))
    assert [(f.shown, f.detected, f.size) for f in real.files[1:]] == [
        ("clam.arj > clam.exe", "exe", (CLAMAV_TESTFILES / "clam.exe").stat().st_size)]


@pytest.mark.parametrize("method", ["-lh0-", "-lh5-", "-lh6-", "-lh7-"])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_files_in_an_lzh_archive_are_what_lhasa_lists_and_tests(level, method):
    archive = lzh_archive(ODD_ONES, level=level, method=method)
    listing = listed_by(["lhasa", "l"], archive, ".lzh")
    assert {line.split()[-1] for line in listing.splitlines()[2:-2]} == set(ODD_ONES)
    listed_by(["lhasa", "t"], archive, ".lzh")      # every member decodes to its CRC
    found = inventory_of("hi", ("files.lzh", archive))
    assert found.files[0].detected == "lzh"
    assert judged(found, "files.lzh") == {
        "readme.txt": None, "Invoice.pdf": "exe", "more.zip": "zip", "more.zip > run.scr": "exe"}


def test_both_names_of_a_level_1_lzh_member_are_judged():
    """A level 1 LHA header names its member twice: in the base header (all a level 0
    reader sees) and in an extended header (what lhasa extracts under).  Only the
    extended one was judged: evil.exe in the base header passed."""
    archive = lzh_archive({"photo.jpg": b"MZ" * 40}, level=1,
                          base_names={"photo.jpg": "evil.exe"})
    assert listed_by(["lhasa", "l"], archive, ".lzh").splitlines()[2].split()[-1] == \
        "photo.jpg"
    [member] = inventory_of("hi", ("files.lzh", archive)).files[1:]
    assert member.names == ("photo.jpg", "evil.exe")
    assert blocked_because(member, frozenset({"exe"})) == "blocked type .exe"


@pytest.mark.parametrize("method", ["-lh5-", "-lh6-", "-lh7-"])
def test_lzh_packed_members_decode_to_what_was_packed(method):
    files = {"big.txt": sample_text(60_000), "clam.exe": (CLAMAV_TESTFILES / "clam.exe")
             .read_bytes(), "same.bin": b"a" * 5000, "one.bin": b"\x07", "empty": b""}
    archive = lzh_archive(files, level=2, method=method)
    listed_by(["7zz", "t"], archive, ".lzh")        # 7-Zip's decoder agrees with lhasa's
    for member in lzh.members(archive, max_members=10):
        assert member.unpack(1000) == files[member.name][:1000]
        assert member.unpack(1 << 30) == files[member.name]


def _with_wrong_checksum(name: str, archive: bytes) -> bytes:
    """The first member's checksum of what it unpacks to, changed (its header's own
    checksum made right again, as an attacker would)."""
    data = bytearray(archive)
    if name.endswith(".lzh"):                       # level 2: CRC-16 at 21, no header sum
        data[21] ^= 0xFF
        return bytes(data)
    at = arj._skip_header(archive, 0)[0]            # the first member's header
    size = int.from_bytes(data[at + 2:at + 4], "little")
    data[at + 4 + 20] ^= 0xFF                        # its CRC-32 of the original
    data[at + 4 + size:at + 8 + size] = zlib.crc32(data[at + 4:at + 4 + size]).to_bytes(
        4, "little")
    return bytes(data)


@pytest.mark.parametrize(("name", "make"), [
    ("files.arj", lambda files: arj_archive(files, "-m1")),
    ("files.lzh", lambda files: lzh_archive(files, level=2, method="-lh5-")),
])
def test_a_packed_member_that_fails_its_checksum_is_damaged_and_judged_by_name(name, make):
    # What the inventory judged must be what the recipient's unpacker gives: a member
    # that decodes here to other bytes than were packed is not taken at its content.
    files = {"Invoice.exe": executable() * 40, "notes.txt": sample_text(20_000)}
    intact = inventory_of("hi", (name, make(files)))
    assert not intact.problems(Problem.UNREADABLE)
    assert [(f.shown, f.opened) for f in intact.files[1:]] == [
        (f"{name} > Invoice.exe", True), (f"{name} > notes.txt", True)]
    found = inventory_of("hi", (name, _with_wrong_checksum(name, make(files))))
    assert [(p.path[-1], "checksum" in p.detail) for p in found.problems(Problem.UNREADABLE)
            ] == [("Invoice.exe", True)]
    assert [(f.shown, f.opened) for f in found.files[1:]] == [
        (f"{name} > Invoice.exe", False), (f"{name} > notes.txt", True)]


def test_a_packed_stream_of_tiny_blocks_is_refused_before_it_costs_much():
    # Each block: one code, and three one-symbol tables (16+10+18+8 bits): a byte out
    # for every 52 bits in, and three tables built for it.
    block = [(16, 1), (5, 0), (5, 0), (9, 0), (9, 65), (4, 0), (4, 0)]
    value, width = 0, 0
    for size, part in block * 5000:
        value, width = value << size | part, width + size
    packed = (value << (-width % 8)).to_bytes(-(-width // 8), "big")
    expansion = static_huffman.Expansion(packed, 5000, static_huffman.LH5)
    with pytest.raises(Unreadable, match="3 blocks for 2 bytes"):
        expansion.first(5000)


def test_lzh_members_packed_by_a_method_not_read_here_are_known_by_name():
    archive = lzh_archive({"a.txt": b"x", "setup.exe": b"\x00packed"}, level=2,
                          unread=frozenset({"setup.exe"}))
    found = inventory_of("hi", ("files.lzh", archive))
    assert [(f.shown, f.opened) for f in found.files[1:]] == [
        ("files.lzh > a.txt", True), ("files.lzh > setup.exe", False)]


def test_what_the_python_decoders_expand_per_message_is_bounded():
    texts = {f"{n}.txt": sample_text(90_000 + n) for n in range(3)}
    found = inventory_of("hi", ("a.lzh", lzh_archive(texts, level=1, method="-lh5-")),
                         limits=Limits(max_slow_unpacked=100_000))
    assert [(f.shown, f.opened) for f in found.files[1:]] == [
        ("a.lzh > 0.txt", True), ("a.lzh > 1.txt", True), ("a.lzh > 2.txt", False)]
    assert found.unpacked == 100_000                  # 64 KiB, then what was left


@pytest.mark.parametrize("encoding", ["newc", "crc", "odc", "bin"])
def test_files_in_a_cpio_archive_are_judged_by_content(encoding):
    archive = cpio_archive(ODD_ONES, encoding)
    found = inventory_of("hi", ("files.cpio", archive))
    assert found.files[0].detected == "cpio"
    assert judged(found, "files.cpio") == {
        "readme.txt": None, "Invoice.pdf": "exe", "more.zip": "zip", "more.zip > run.scr": "exe"}


@pytest.mark.parametrize("encoding", ["newc", "odc", "bin"])
def test_a_cpio_symbolic_link_is_judged_by_its_name(encoding):
    """Only regular cpio members were listed (tar's links are, 8d11330): a link run.js
    to notes.txt passed unjudged, though cpio and 7-Zip extract it under its name."""
    archive = cpio_archive({"notes.txt": b"WScript.Echo(1);"}, encoding,
                           links={"run.js": "notes.txt"})
    found = inventory_of("hi", ("docs.cpio", archive))
    [linked] = [f for f in found.files if f.shown == "docs.cpio > run.js"]
    assert not linked.opened
    assert blocked_because(linked, frozenset({"js"})) == "blocked type .js"


@pytest.mark.parametrize("base64", [False, True], ids=["uuencode", "uuencode -m"])
def test_files_uuencoded_into_the_text_are_judged_like_attachments(base64):
    body = ("Hello, the invoice is below.\n\n" + uuencoded("Invoice.pdf", executable(),
                                                            base64=base64)
            + "\nRegards\n" + uuencoded("notes.txt", b"just text\n", base64=base64))
    found = inventory_of(body)
    assert [(f.shown, f.detected) for f in found.files] == [
        ("Invoice.pdf", "exe"), ("notes.txt", None)]
    # Mail transport strips the trailing blanks uuencode writes: still decoded.
    stripped = "\n".join(line.rstrip() for line in body.splitlines())
    assert [f.detected for f in inventory_of(stripped).files] == ["exe", None]
    # A text part whose transfer encoding is uuencode itself: the name is in the block.
    whole = ("Subject: uu\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
             "Content-Transfer-Encoding: x-uuencode\r\n\r\n"
             + uuencoded("Invoice.pdf", executable(), base64=base64))
    assert [(f.shown, f.detected) for f in inventory(parse_message(whole.encode())).files] \
        == [("Invoice.pdf", "exe")]
    # Text that only mentions "begin 644" holds no file.
    assert inventory_of("To begin 644 tests, run make.\nbegin 644 notes\nand so on\n"
                        ).files == []


@pytest.mark.parametrize("body", [
    "begin 644 evil.exe\n`\nend\n",                         # an empty file
    "begin-base64 644 evil.exe\n====\n",
    f"begin 644 {'a' * 300}.exe\n" + uuencoded("x", b"abc").split("\n", 1)[1],
], ids=["empty", "empty base64", "long name"])
def test_the_name_a_uuencode_begin_line_gives_is_judged(body):
    """The file a begin line names was dropped, name and all, when its block was empty
    (uudecode writes an empty evil.exe from it) or its name longer than 255 bytes."""
    [named] = inventory_of(f"Hello,\n\n{body}\nRegards\n").files
    assert blocked_because(named, frozenset({"exe"})) == "blocked type .exe"


def test_uuencoded_lines_with_text_after_what_they_encode_are_decoded_as_uudecode_does():
    """uudecode decodes the characters a line's length character covers and ignores the
    rest; the inventory took such a line for the end of the block, so a file whose lines
    all had a word after them decoded to nothing and was dropped, name and content."""
    block = uuencoded("Invoice.pdf", executable())
    lines = block.split("\n")
    junk = "\n".join(line + "junk" if line.startswith("M") else line for line in lines)
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["uudecode", "-o", "out"], input=junk.encode(), cwd=work, check=True)
        assert (Path(work) / "out").read_bytes() == executable()
    [found] = inventory_of(f"Hello,\n\n{junk}\nRegards\n").files
    assert (found.shown, found.detected) == ("Invoice.pdf", "exe")


def test_a_uuencoded_file_longer_than_is_decoded_is_reported_unscanned():
    """A uuencoded file is decoded as far as max_member and that much handed to clamd
    (which misses uuencode in a base64 body): what followed was scanned by nobody, and
    no word said so."""
    body = uuencoded("notes.dat", b"filler " * 40_000 + b"MZ" * 100)
    found = inventory_of(body, limits=Limits(max_member=100_000))
    assert [len(data) for _, data in found.expanded] == [100_000]
    assert [(f.shown, f.problem, f.detail) for f in found.findings] == [
        ("notes.dat", Problem.UNSCANNED,
         "not all handed to the virus scanner, which cannot open it where it is")]
    assert inventory_of(body).findings == []


ABSURD_SIZE = b"\xff\xff\xff\x7f"


@pytest.mark.parametrize(("name", "make", "resize"), [
    ("files.arj", lambda: arj_archive({"a.exe": b"MZ" * 200}, "-m0"),
     lambda d: d[:24] + ABSURD_SIZE + d[28:]),                   # in the main header
    ("files.lzh", lambda: lzh_archive({"a.exe": b"MZ" * 200}, level=1),
     lambda d: d[:7] + ABSURD_SIZE + d[11:]),                    # the packed size
    ("files.cpio", lambda: cpio_archive({"a.exe": b"MZ" * 200}, "newc"),
     lambda d: d[:54] + b"7FFFFFFF" + d[62:]),                   # the file size
], ids=["arj", "lzh", "cpio"])
@pytest.mark.parametrize("damage", ["cut", "size"])
def test_damaged_arj_lzh_and_cpio_are_reported_not_raised(name, make, resize, damage):
    archive = make()
    damaged = archive[:len(archive) // 2] if damage == "cut" else resize(archive)
    found = inventory_of("hi", (name, damaged))
    assert found.files[0].detected == name.rpartition(".")[2]
    assert found.problems(Problem.UNREADABLE), found.files


@pytest.mark.parametrize(("name", "make"), [
    ("files.arj", lambda files: arj_archive(files, "-m0")),
    ("files.lzh", lambda files: lzh_archive(files, level=2)),
    ("files.cpio", lambda files: cpio_archive(files, "newc")),
])
def test_arj_lzh_and_cpio_listing_more_files_than_allowed_are_bombs(name, make):
    archive = make({f"f{n}.txt": b"x" for n in range(30)})
    found = inventory_of("hi", (name, archive), limits=Limits(max_files=10))
    assert "listing more than" in found.problems(Problem.BOMB)[0].detail


def test_a_file_compressed_by_compress_exe_is_judged_under_its_real_name():
    # compress -r keeps the name's last character: setup.ex_ is setup.exe.
    script = b"@echo off\r\n" * 9000                     # past the head: read whole
    found = inventory_of("hi", ("setup.ex_", szdd_file(script, "e")))
    assert [(f.shown, f.detected) for f in found.files] == [
        ("setup.ex_", "szdd"), ("setup.ex_ > setup.exe", None)]
    # clamd refuses such a header (compress -r's), so the file goes to it expanded.
    assert found.expanded == [(("setup.ex_", "setup.exe"), script)]
    nested = inventory_of("hi", ("tools.zi_", szdd_file(zip_of({"run.scr": executable()}),
                                                         "p")))
    assert [(f.shown, f.detected) for f in nested.files] == [
        ("tools.zi_", "szdd"), ("tools.zi_ > tools.zip", "zip"),
        ("tools.zi_ > tools.zip > run.scr", "exe")]
    # ClamAV's own, made by Microsoft's compress.exe, expands to exactly its clam.exe.
    real = inventory_of("hi", ("clam.ex_", (CLAMAV_TESTFILES / "clam.exe.szdd").read_bytes()))
    assert [(f.shown, f.detected, f.size) for f in real.files[1:]] == [
        ("clam.ex_ > clam.ex_", "exe", (CLAMAV_TESTFILES / "clam.exe").stat().st_size)]
    assert real.expanded == []                          # clamd expands this one itself


def test_an_szdd_expansion_goes_on_from_where_it_stopped():
    payload = bytes(range(256)) * 40 + b"MZ" * 3000
    expansion = szdd.Expansion(szdd_file(payload, "e"))
    assert [expansion.first(n) for n in (0, 17, 5000, len(payload) + 9)] == [
        payload[:n] for n in (0, 17, 5000, len(payload) + 9)]
    assert expansion.first(100) == payload[:100]          # asking for less is a slice


def test_a_binhex_file_is_judged_by_the_file_it_holds():
    text = binhex_text("Invoice.pdf", executable())
    found = inventory_of("hi", ("Invoice.hqx", text))
    assert [(f.shown, f.detected) for f in found.files] == [
        ("Invoice.hqx", "binhex"), ("Invoice.hqx > Invoice.pdf", "exe")]
    # clamd reads BinHex only when its header line starts the file: it gets the bytes.
    assert found.expanded == [(("Invoice.hqx", "Invoice.pdf"), executable())]
    damaged = text.replace(text[60:64], b"!!!!")       # the header's CRC no longer holds
    assert inventory_of("hi", ("Invoice.hqx", damaged)).problems(Problem.UNREADABLE)


@pytest.mark.parametrize("cut", [45, 19], ids=["half", "within a match"])
def test_a_damaged_szdd_file_is_unreadable_and_still_judged_by_its_real_name(cut):
    # 14 bytes of header, a flag byte, "MZ", a zero, then matches of two bytes each.
    packed = szdd_file(b"MZ" + bytes(600), "e")
    found = inventory_of("hi", ("setup.ex_", packed[:cut]))
    assert [(f.shown, f.opened) for f in found.files] == [
        ("setup.ex_", True), ("setup.ex_ > setup.exe", False)]
    assert "damaged SZDD" in found.problems(Problem.UNREADABLE)[0].detail


MACRO_DOCUMENT = {"word/document.xml": b"<w:document/>", "word/vbaProject.bin": b"\xd0" * 99,
                  "word/embeddings/Invoice.pdf": executable()}


@pytest.mark.parametrize("encrypt", [
    lambda parts, password: encrypted_office(parts, password),
    lambda parts, password: standard_encrypted_office(parts, password),
    lambda parts, password: standard_encrypted_office(parts, password, key_bits=256),
], ids=["agile (Office 2010 and later)", "standard (Office 2007)", "standard, AES-256"])
def test_an_encrypted_office_document_is_opened_with_the_password_from_the_message(encrypt):
    document = encrypt(MACRO_DOCUMENT, "Inv-2026!")
    found = inventory_of("The document is protected. Password: Inv-2026!",
                         ("Invoice.docm", document))
    # (Pictures, a document's thumbnail, are left out.)
    assert [(f.shown, f.detected) for f in found.files
            if f.detected and f.detected not in IMAGE_TYPES] == [
        ("Invoice.docm", "ole"), ("Invoice.docm > Invoice.docm (decrypted)", "zip"),
        ("Invoice.docm > Invoice.docm (decrypted) > Invoice.pdf", "exe")]
    assert [f.detail for f in found.findings] == ["a VBA project (vbaProject.bin)"]
    # Handed to clamd as decrypted, which cannot open it itself.
    assert [path for path, _ in found.decrypted] == [("Invoice.docm",)]


@pytest.mark.parametrize("encrypt", [encrypted_office, standard_encrypted_office],
                         ids=["agile", "standard"])
def test_an_encrypted_office_document_without_its_password_is_locked(encrypt):
    document = encrypt(MACRO_DOCUMENT, "Inv-2026!")
    found = inventory_of("The password is in the next mail. Password: Inv-2025!",
                         ("Invoice.docm", document))
    assert [(f.problem, f.detail) for f in found.findings] == [
        (Problem.LOCKED, "encrypted document, no password found in the message")]
    assert found.decrypted == []


def standard_info(document: bytes) -> bytes:
    ole = office.CompoundFile(document)
    stream = next(e for e in ole.entries if e.name == officecrypt.ENCRYPTION_INFO)
    return ole.read(stream, officecrypt.MAX_INFO)


@pytest.mark.parametrize("key_bits", [128, 192, 256])
def test_the_standard_encryption_fixture_is_what_msoffcrypto_tool_decrypts(key_bits):
    parts = {"word/document.xml": b"<w:document/>" * 500}      # past the mini stream
    protected = msoffcrypto.OfficeFile(io.BytesIO(
        standard_encrypted_office(parts, "Inv-2026!", key_bits=key_bits)))
    protected.load_key(password="Inv-2026!")
    out = io.BytesIO()
    protected.decrypt(out)
    assert zipfile.ZipFile(out).read("word/document.xml") == parts["word/document.xml"]


def test_standard_encryption_by_other_providers_or_damaged_is_reported():
    info = standard_info(standard_encrypted_office({"a.xml": b"<a/>"}, "x"))
    flags = info[4:8]
    with pytest.raises(officecrypt.UnsupportedScheme, match="extensible"):
        officecrypt.encryption(info[:4] + bytes([flags[0] | 0x10]) + info[5:])
    with pytest.raises(officecrypt.UnsupportedScheme, match="extensible"):
        officecrypt.encryption(b"\x04\x00\x03\x00" + info[4:])
    with pytest.raises(officecrypt.UnsupportedScheme, match="without AES"):
        officecrypt.encryption(info[:4] + bytes([flags[0] & ~0x20]) + info[5:])
    with pytest.raises(officecrypt.UnsupportedScheme, match="algorithm 0x6801"):   # RC4
        officecrypt.encryption(info[:20] + b"\x01\x68" + info[22:])
    with pytest.raises(Unreadable, match="cut short"):
        officecrypt.encryption(info[:-10])
    with pytest.raises(Unreadable, match="256-bit key for AES-128"):
        officecrypt.encryption(info[:28] + (256).to_bytes(4, "little") + info[32:])


def test_encryption_schemes_not_opened_here_and_damaged_ones_are_reported():
    document = encrypted_office(MACRO_DOCUMENT, "x")
    info = office.CompoundFile(document)
    stream = next(e for e in info.entries if e.name == officecrypt.ENCRYPTION_INFO)
    raw = info.read(stream, officecrypt.MAX_INFO)
    with pytest.raises(officecrypt.UnsupportedScheme, match=r"encryption 4\.5"):
        officecrypt.encryption(b"\x04\x00\x05\x00" + raw[4:])
    with pytest.raises(Unreadable, match="spin count"):
        officecrypt.encryption(raw.replace(b'spinCount="100000"', b'spinCount="999999999"'))
    with pytest.raises(Unreadable, match="spin count"):    # 1 s a try at a million
        officecrypt.encryption(raw.replace(b'spinCount="100000"', b'spinCount="1000000"'))
    with pytest.raises(Unreadable, match="DOCTYPE"):
        officecrypt.encryption(raw[:8] + b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + raw[8:])
    with pytest.raises(Unreadable, match="not XML"):
        officecrypt.encryption(raw[:200])
    # Through the inventory: noted, never raised.
    damaged = document.replace(b'spinCount="100000"', b'spinCount="-100000"')
    assert inventory_of("password: x", ("a.docx", damaged)).problems(Problem.UNREADABLE)


def test_a_wrong_password_is_told_from_the_right_one():
    document = encrypted_office({"word/document.xml": b"<w/>"}, "right")
    info = office.CompoundFile(document)
    stream = next(e for e in info.entries if e.name == officecrypt.ENCRYPTION_INFO)
    scheme = officecrypt.encryption(info.read(stream, officecrypt.MAX_INFO))
    assert scheme.key("wrong") is None
    assert scheme.key("right") is not None and len(scheme.key("right")) == 32


def test_files_embedded_in_a_onenote_section_are_judged_by_name_and_by_bytes():
    section = onenote_section({"Open.hta": b"<script>Run()</script>", "scan.png": executable(),
                               "inner.zip": zip_of({"tool.scr": b"x"})},
                              page_text="Double-click to open setup.exe")
    found = inventory_of("hi", ("Notes.one", section))
    assert [(f.shown, f.detected, f.opened) for f in found.files] == [
        ("Notes.one", "one", True),
        ("Notes.one > (embedded file 1)", None, True),
        ("Notes.one > (embedded file 2)", "exe", True),
        ("Notes.one > (embedded file 3)", "zip", True),
        ("Notes.one > (embedded file 3) > tool.scr", None, True),
        # The names OneNote gives them; "setup.exe" in the page's text is not one.
        ("Notes.one > Open.hta", None, False),
        ("Notes.one > scan.png", None, False),
        ("Notes.one > inner.zip", None, False)]
    assert not found.findings


def test_a_real_onenote_2010_section_is_read():
    # Made by OneNote 2010: a page with a picture, kept in the same store as embedded
    # files; the picture's own file name is not an embedded file's.
    found = inventory_of("hi", ("Schedule.one", (FILES / "onenote-2010-example.one")
                                .read_bytes()))
    assert [(f.shown, f.detected, f.size) for f in found.files] == [
        ("Schedule.one", "one", 37184), ("Schedule.one > (embedded file 1)", "png", 1906)]
    assert not found.findings


def test_a_password_protected_onenote_section_is_locked():
    found = inventory_of("hi", ("Notes.one", onenote_section({"a.exe": b"MZ"}, password=True)))
    assert "password-protected OneNote" in found.problems(Problem.LOCKED)[0].detail
    assert [f.shown for f in found.files] == ["Notes.one"]


@pytest.mark.parametrize("build", [
    # A file whose claimed length nests marks inside it: each byte is read once.
    lambda: onenote_section({"a.bin": onenote_section({"b.bin": b"x" * 1000}) * 200}),
    # Name marks everywhere, in sets that almost read.
    lambda: onenote.SECTION + (b"\x03\x00" + struct.pack("<I", 0x1C001D9C) * 3) * 50_000,
    lambda: onenote.SECTION + (struct.pack("<HI", 60, 0x1C001D9C)) * 100_000,
    # A length that runs past the end: a stray mark, not a file.
    lambda: onenote.SECTION + onenote_section({"a": b"x"})[16:-40] + b"\xff" * 8,
], ids=["nested files", "name marks", "almost sets", "runs past the end"])
def test_a_hostile_onenote_section_is_read_within_bounds(build):
    data = build()
    found = onenote.contents(data, max_files=10_000, limit=2**20)
    assert sum(len(f) for f in found.files) <= len(data)
    assert len(found.names) <= 2


def test_mutated_onenote_sections_never_raise():
    section = onenote_section({"Open.hta": b"<script>Run()</script>" * 20,
                               "scan.png": executable()})
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(section)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(16, len(mutated))] = rng.randrange(256)
        onenote.contents(bytes(mutated), max_files=100, limit=2**20)


@pytest.mark.parametrize(("parts", "nesting", "detail"), [
    (1200, 1, "more than 1000 MIME parts"),
    (1, 40, "MIME parts nested deeper than 30"),
])
def test_parts_beyond_the_walks_bounds_make_the_message_a_bomb(parts, nesting, detail):
    # the blocked file sits where the walk no longer looks: past the bound, not judged
    level = nesting - 1
    inner = "".join(f"--b{level}\r\nContent-Type: text/plain\r\n\r\nfiller\r\n"
                    for _ in range(parts))
    inner += (f"--b{level}\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Disposition: attachment; filename=run.exe\r\n\r\nMZ\r\n--b{level}--\r\n")
    for level in range(nesting - 2, -1, -1):
        inner = (f"--b{level}\r\nContent-Type: multipart/mixed; boundary=b{level + 1}\r\n\r\n"
                 f"{inner}--b{level}--\r\n")
    message = f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n{inner}"
    found = inventory(parse_message(message.encode()))
    assert [(f.problem, f.detail) for f in found.findings] == [(Problem.BOMB, detail)]
    fine = inventory(parse_message(mail("x", "hi", [("a.txt", b"fine")])))
    assert fine.findings == []


@pytest.mark.parametrize("headers", [
    "Content-Disposition: attachment; filename=\"invoice.pdf\"; filename*=UTF-8''invoice.js",
    "Content-Disposition: attachment; filename*=UTF-8''invoice.js; filename=\"invoice.pdf\"",
    "Content-Disposition: attachment; filename=invoice.pdf; filename=invoice.js",
    "Content-Disposition: attachment; filename=invoice.pdf\r\n"
    "Content-Disposition: attachment; filename=invoice.js",
])
def test_every_file_name_a_part_gives_is_judged(headers):
    message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               f"Content-Type: application/octet-stream\r\n{headers}\r\n\r\nvar x = 1;\r\n"
               f"--b--\r\n").encode()
    [part] = inventory(parse_message(message)).files
    assert set(part.names) == {"invoice.pdf", "invoice.js"}


@pytest.mark.parametrize("header", ["Content-Disposition", "Content-Type"])
def test_the_name_in_the_last_of_many_repeated_fields_is_judged(header):
    """Only a part's first 4 Content-Disposition (Content-Type) fields were read for
    names: a fifth, or a hundredth, naming evil.js was never judged, though mail clients
    that take the last of repeated fields save the file under it."""
    value = "attachment" if header == "Content-Disposition" else "application/octet-stream"
    for repeats in (4, 99):
        fields = "".join(f"{header}: {value}; name=notes{n}.txt\r\n" for n in range(repeats))
        message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                   f"{fields}{header}: {value}; name=evil.js\r\n\r\nvar x = 1;\r\n"
                   f"--b--\r\n").encode()
        [part] = inventory(parse_message(message)).files
        assert "evil.js" in part.names
        assert blocked_because(part, frozenset({"js"})) == "blocked type .js"


@pytest.mark.parametrize("encoding", ["base64 ", "base64 (binary)", "\r\n base64", "BASE64"])
def test_a_transfer_encoding_written_loosely_is_still_undone(encoding):
    import base64 as b64
    archive = b64.encodebytes(zip_of({"invoice.js": b"var x = 1;"})).decode()
    message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               f"Content-Type: application/zip; name=invoice.zip\r\n"
               f"Content-Transfer-Encoding: {encoding}\r\n\r\n{archive}\r\n--b--\r\n").encode()
    found = inventory(parse_message(message))
    assert {f.shown: f.detected for f in found.files} == {
        "invoice.zip": "zip", "invoice.zip > invoice.js": None}


def test_the_unicode_path_name_of_a_zip_member_is_judged_too():
    import struct
    import zlib as z
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("invoice.pdf")
        shown = b"invoice.js"
        info.extra = struct.pack("<HHBI", 0x7075, 5 + len(shown), 1,
                                 z.crc32(b"invoice.pdf")) + shown
        archive.writestr(info, b"var x = 1;")
    [_, member] = inventory_of("hi", ("a.zip", buffer.getvalue())).files
    assert member.names == ("invoice.pdf", "invoice.js")    # unzip and Windows show .js


def test_a_workbook_repeating_its_encryption_record_is_searched_for_a_password_once(
        monkeypatch):
    import hashlib

    from portcullis.antivirus import office, officecrypt

    def md5(data: bytes) -> bytes:
        return hashlib.md5(data).digest()
    salt, verifier = bytes(range(16)), bytes(range(16, 32))
    truncated = md5((md5("opensesame".encode("utf-16-le"))[:5] + salt) * 16)[:5]
    body = struct.pack("<HHH", 1, 1, 1) + salt + officecrypt.rc4(
        md5(truncated + struct.pack("<I", 0)), verifier + md5(verifier))
    record = struct.pack("<HH", 0x002F, len(body)) + body
    book = struct.pack("<HH", 0x0809, 16) + b"\x00\x06\x05\x00" + bytes(12) + record * 200
    opened = []
    real_open = officecrypt.Rc4Workbook.open
    monkeypatch.setattr(officecrypt.Rc4Workbook, "open",
                        staticmethod(lambda *a: opened.append(a) or real_open(*a)))
    found = office.contents(ole_document([], streams={"Workbook": book}), limit=2**20,
                            passwords=lambda: [f"w{n}" for n in range(10)] + ["opensesame"])
    assert not found.locked and len(opened) == 12     # the built-in one, 11 from the text


def test_an_rtf_object_is_decoded_once_however_many_objdata_words_point_at_it():
    from portcullis.antivirus import rtf
    document = rtf_document([("Package", package_native("run.exe", b"MZ" * 1000))])
    start = document.index(b"\\objdata")
    many = document[:start] + b"\\objdata " * 99 + document[start:]
    assert [o.class_name for o in rtf.objects(many, limit=2**20)] == ["Package"]
    # \objdata words that never lead to an object still count against the bound
    junk = b"{\\rtf1 " + b"{\\object \\objdata zz}" * (rtf.MAX_OBJECTS + 5) + document[6:]
    assert rtf.objects(junk, limit=2**20) == []


def test_files_packaged_in_a_document_share_one_limit_and_each_is_still_named():
    from portcullis.antivirus import office
    document = ole_document([], streams={
        "ObjectPool/_1/\x01Ole10Native": ole_package("first.txt", b"a" * 3000),
        "ObjectPool/_2/\x01Ole10Native": ole_package("second.exe", b"MZ" + b"b" * 2998)})
    found = office.contents(document, limit=4000)
    assert [(names[0], len(data)) for names, data in found.packaged] == [
        ("first.txt", 3000), ("second.exe", 1000)]


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_forwarded_message_sent_encoded_is_opened(encoding):
    import base64 as b64
    import quopri
    inner = (b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n--IN\r\n"
             b"Content-Type: text/plain\r\n\r\nsee attached\r\n--IN\r\nContent-Type: "
             b"application/octet-stream; name=\"run.exe\"\r\n\r\nMZ\r\n--IN--\r\n")
    encoded = b64.encodebytes(inner) if encoding == "base64" else quopri.encodestring(inner)
    message = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
               b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: "
               + encoding.encode() + b"\r\n\r\n" + encoded + b"\r\n--B--\r\n")
    found = inventory(parse_message(message))
    assert ("run.exe",) in [f.names for f in found.files]


def test_a_file_after_more_text_parts_than_are_walked_still_makes_a_bomb():
    """The walk stops at MAX_PARTS: a file placed after that many text parts was never
    seen, so the message looked as if it had no files, and none was looked at."""
    text_parts = [f'Content-Type: text/plain\r\n\r\npart {i}\r\n' for i in range(MAX_PARTS)]
    exe = ("Content-Type: application/octet-stream\r\n"
           'Content-Disposition: attachment; filename="setup.exe"\r\n'
           "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n")
    content = ('From: a@remote.test\r\nSubject: hidden\r\nMIME-Version: 1.0\r\n'
               'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
               + "".join(f"--b\r\n{part}" for part in [*text_parts, exe]) + "--b--\r\n")
    message = parse_message(content.encode())
    assert has_files(message)
    [bomb] = inventory(message).problems(Problem.BOMB)
    assert f"more than {MAX_PARTS} MIME parts" in bomb.detail


@pytest.mark.parametrize("stray", ["A", "\r\nQ", "A*"])
def test_a_base64_attachment_with_one_stray_character_is_still_decoded(stray):
    """One base64 character too many (a group of one, which holds no byte) made the email
    package give the base64 text back undecoded: the zip was never opened, its .exe never
    seen.  Mail clients decode the whole groups and open the zip."""
    import base64 as b64
    archive = zip_of({"setup.exe": executable()})
    archive += b"\0" * (-len(archive) % 3)      # no padding: the stray character counts
    inner = mail("fwd", "see", [("docs.zip", archive)])
    inner += b"\n" * (-len(inner) % 3)
    encoded = b64.encodebytes(archive).decode() + stray
    forwarded = b64.encodebytes(inner).decode() + stray
    message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               f"Content-Type: application/zip; name=docs.zip\r\n"
               f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b\r\n"
               f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               f"{forwarded}\r\n--b--\r\n").encode()
    found = inventory(parse_message(message))
    assert [f.shown for f in found.files if f.detected == "exe"] == [
        "docs.zip > setup.exe", "docs.zip > setup.exe"]


@pytest.mark.parametrize("name", [
    "a" * 17000 + ".js",
    "invoice.pdf" + " " * 17000 + ".js",
    " ".join(["=?utf-8?q?invoice?="] * 1000) + " =?utf-8?q?=2Ejs?=",
])
def test_a_file_name_longer_than_the_decoded_text_bound_keeps_its_extension(name):
    """Names were decoded from their first 16 KiB only: the extension at the end was
    cut off, and invoice.js was judged as an extensionless file (browsers and mail
    clients shorten a long name on saving and keep its extension)."""
    message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               f"Content-Type: application/octet-stream\r\n"
               f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
               f"WScript.Echo(1);\r\n--b--\r\n").encode()
    [part] = inventory(parse_message(message)).files
    assert blocked_because(part, frozenset({"js"})).startswith("blocked type .js")


@pytest.mark.parametrize("encoding", ["7bit", "base64"])
def test_a_message_part_given_a_file_name_is_judged_by_that_name(encoding):
    """A message/rfc822 part is walked into, and its own name was never judged: a
    script sent as an attached message named run.js passed (mail clients offer to
    save it under that name)."""
    import base64 as b64
    script = b"WScript.Echo(1);\r\n"
    body = b64.encodebytes(script) if encoding == "base64" else script
    message = parse_message(
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
        b"Content-Type: message/rfc822; name=\"run.js\"\r\n"
        b"Content-Disposition: attachment; filename=\"run.js\"\r\n"
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body + b"--b--\r\n")
    assert has_files(message)
    [attached] = inventory(message).files
    assert attached.names == ("run.js",)
    assert blocked_because(attached, frozenset({"js"})) == "blocked type .js"
    # A forwarded message named as one ("<subject>.eml") says nothing more of itself.
    forwarded = parse_message(message.as_bytes().replace(b'"run.js"', b'"scan.pdf.eml"'))
    assert not has_files(forwarded) and inventory(forwarded).files == []


@pytest.mark.parametrize("prefix", [b"GIF89a\x01\x00\x01\x00" + bytes(200), b"junk " * 40])
def test_a_zip_behind_other_bytes_is_opened(prefix):
    """A zip was opened only when it started the file: one behind a picture or any
    other bytes (as self-extracting archives are) was judged by its first bytes alone,
    so the .exe in it passed.  7-Zip and WinRAR open such a file named .zip."""
    archive = zip_of({"evil.exe": executable()})
    found = inventory_of("hi", ("docs.zip", prefix + archive))
    assert ("docs.zip > evil.exe", "exe") in [(f.shown, f.detected) for f in found.files]
    assert found.findings == []
    # A picture holding no zip is a picture.
    [picture] = inventory_of("hi", ("a.gif", prefix + b"PK\x05\x06" + bytes(10))).files
    assert picture.shown == "a.gif"


@pytest.mark.parametrize("behind", [1, 2])
def test_every_zip_of_zips_one_behind_another_is_opened(behind):
    """zipfile (as WinRAR) reads the last of zips put one behind another in one file,
    7-Zip the first: the .exe in the first passed, judged by the harmless last one."""
    archive = zip_of({"evil.exe": executable()}) + b"".join(
        zip_of({f"readme{n}.txt": b"hello"}) for n in range(behind))
    found = inventory_of("hi", ("docs.zip", archive))
    assert ("docs.zip > evil.exe", "exe") in [(f.shown, f.detected) for f in found.files]
    assert found.findings == []
    many = b"".join(zip_of({f"{n}.txt": b"hello"}) for n in range(20))
    assert inventory_of("hi", ("docs.zip", many)).problems(Problem.BOMB)[0].detail == \
        "more than 8 zips one behind another"


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_every_stream_of_a_compressed_file_is_unpacked(compress):
    """gunzip, bunzip2, xz and 7-Zip unpack one stream after another into one file; only
    the first was unpacked here, so an empty first stream hid the executable after it."""
    found = inventory_of("hi", ("invoice.pdf.x", compress(b"") + compress(executable())))
    assert [(f.shown, f.detected) for f in found.files][1:] == [
        ("invoice.pdf.x > invoice.pdf.x (unpacked)", "exe")]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("readme.txt", b"hello" * 200), ("run.exe", executable())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tar = buffer.getvalue()
    found = inventory_of("hi", ("docs.tgz", compress(tar[:1024]) + compress(tar[1024:])))
    assert ("docs.tgz > docs.tgz (unpacked) > run.exe", "exe") in [
        (f.shown, f.detected) for f in found.files]
    assert found.findings == []


@pytest.mark.parametrize("kind", [tarfile.LNKTYPE, tarfile.SYMTYPE])
def test_a_tar_link_is_judged_by_its_name(kind):
    """Only regular tar members were listed: a link named run.js to a harmless-looking
    member passed unjudged, though tar and 7-Zip extract it as run.js with that
    member's script."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        script = b"WScript.Echo(1);"
        info = tarfile.TarInfo("notes.txt")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
        link = tarfile.TarInfo("run.js")
        link.type, link.linkname = kind, "notes.txt"
        archive.addfile(link)
    found = inventory_of("hi", ("docs.tar", buffer.getvalue()))
    [linked] = [f for f in found.files if f.shown == "docs.tar > run.js"]
    assert blocked_because(linked, frozenset({"js"})) == "blocked type .js"


def test_an_archive_in_a_7z_larger_than_is_read_whole_is_a_bomb():
    """A nested archive past max_member was cut there and judged damaged (1 point) when
    it came from a 7z (as from a cabinet or a disc image): a 5 KB 7z holding a 34 MiB
    zip hid the .exe at the zip's end.  In a zip the same nesting is a bomb."""
    big = zip_of({"pad.bin": bytes(34 * 2**20), "evil.exe": executable()}, zipfile.ZIP_STORED)
    found = inventory_of("hi", ("docs.7z", seven_zip({"big.zip": big})))
    assert [(f.shown, f.detail) for f in found.problems(Problem.BOMB)] == [
        ("docs.7z > big.zip", "nested archive larger than 32 MiB unpacked")]
    # A big file that is no archive is still looked at as far as max_member; read for
    # clamd (which decodes no Deflate in a 7z), it does not fit in its room: said.
    packed = seven_zip({"big.bin": bytes(34 * 2**20)}, "-m0=Deflate")   # read whole
    found = inventory_of("hi", ("docs.7z", packed))
    assert found.files[1].size == DEFAULT.max_member
    assert [(f.shown, f.problem) for f in found.findings] == [
        ("docs.7z > big.bin", Problem.UNSCANNED)]


def test_the_name_a_gzip_file_keeps_of_its_content_is_judged():
    """The name in a gzip header (what gzip -N, 7-Zip and bsdtar restore) was ignored:
    invoice.pdf.gz holding run.js was judged as invoice.pdf."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="run.js", mode="wb", fileobj=buffer, mtime=0) as packed:
        packed.write(b"WScript.Echo(1);")
    [_, inner] = inventory_of("hi", ("invoice.pdf.gz", buffer.getvalue())).files
    assert inner.names == ("invoice.pdf", "run.js")
    assert blocked_because(inner, frozenset({"js"})) == "blocked type .js"


def test_both_names_of_a_file_embedded_in_a_pdf_are_judged():
    """Only the first of a file specification's /F and /UF names was read: a file
    called invoice.txt in /F and invoice_.js in /UF (the one PDF readers show and save
    it under) passed as a text file."""
    document = pdf_document(embedded={"invoice.txt": b"WScript.Echo(1);"}).replace(
        b"/UF (invoice.txt)", b"/UF (invoice_.js)")
    [embedded] = [f for f in inventory_of("hi", ("doc.pdf", document)).files
                  if len(f.path) == 2]
    assert set(embedded.names) == {"invoice.txt", "invoice_.js"}
    assert blocked_because(embedded, frozenset({"js"})) == "blocked type .js"


@pytest.mark.parametrize("content_type", [
    "application/vnd.ms-excel.macrosheet+xml",          # .xlsm
    "application/vnd.ms-excel.intlmacrosheet+xml",
    "application/vnd.ms-excel.macrosheet",              # .xlsb
])
def test_an_excel_4_macro_sheet_in_an_office_open_xml_workbook_is_found(content_type):
    """Excel 4.0 macro sheets were looked for in Excel 97-2003 workbooks only: an .xlsm
    (or .xlsb) running its Auto_Open from one had no OFFICE_MACROS, whatever the
    office_macros setting said.  Excel finds the sheet by its content type, whatever the
    part is called."""
    types = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package'
             b'/2006/content-types">' + b"<!-- -->" * 20_000 +
             b'<Override PartName="/xl/worksheets/sheet2.xml" ContentType="'
             + content_type.encode() + b'"/></Types>')
    package = {"[Content_Types].xml": types, "xl/workbook.xml": b"<workbook/>",
               "xl/worksheets/sheet2.xml": b"<xm:macrosheet/>"}
    found = inventory_of("hi", ("Q3.xlsx", zip_of(package)))
    assert [(f.shown, f.detail) for f in found.problems(Problem.MACROS)] == [
        ("Q3.xlsx", "an Excel 4.0 macro sheet")]
    plain = types.replace(content_type.encode(), b"application/vnd.openxmlformats-"
                          b"officedocument.spreadsheetml.worksheet+xml")
    assert inventory_of("hi", ("Q3.xlsx", zip_of({**package, "[Content_Types].xml": plain}))
                        ).findings == []


def test_the_local_header_name_of_a_zip_member_is_judged_too():
    """Only the central directory's name of a member was judged: a member called
    readme.txt there and invoice.js in its local header passed as a text file, though
    libarchive (Windows' tar) extracts it as invoice.js."""
    archive = zip_of({"readme.txt": b"WScript.Echo(1);"})
    at = archive.index(b"readme.txt")                   # the local header's, first
    archive = archive[:at] + b"invoice.js" + archive[at + len(b"readme.txt"):]
    [_, member] = inventory_of("hi", ("a.zip", archive)).files
    assert member.names == ("readme.txt", "invoice.js")
    assert blocked_because(member, frozenset({"js"})) == "blocked type .js"


@pytest.mark.parametrize("disposition", ["inline", "attachment"])
def test_files_uuencoded_into_a_named_text_part_are_judged_too(disposition):
    """Files uuencoded into text were looked for only in text parts without a name: a
    text part given one (as some mail programs give inline text) hid run.exe."""
    body = "Hello\r\n\r\n" + uuencoded("run.exe", executable()).replace("\n", "\r\n") + "bye\r\n"
    message = (f"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               f"boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
               f"Content-Type: text/plain; charset=us-ascii\r\nContent-Disposition: "
               f"{disposition}; filename=\"notes.txt\"\r\n\r\n{body}\r\n--b--\r\n").encode()
    found = inventory(parse_message(message))
    assert sorted((f.shown, f.detected) for f in found.files) == [
        ("notes.txt", None), ("run.exe", "exe")]



def test_many_empty_streams_before_a_long_tail_are_unpacked_in_one_pass():
    """What each stream left over (the rest of the file) was copied once per stream:
    9,000 empty gzip streams before 16 MiB of noise took some ten seconds of CPU."""
    import os
    import time
    packed = gzip.compress(b"") * 9000 + gzip.compress(b"fine") + os.urandom(16 * 2**20)
    started = time.process_time()
    [_, inner] = inventory_of("hi", ("notes.txt.gz", packed)).files
    assert inner.size == 4
    assert time.process_time() - started < 5      # 0.05 s as written here


def test_xz_streams_after_stream_padding_are_unpacked():
    """xz allows null padding between streams; xz and 7-Zip skip it and unpack the next
    stream, here the padding ended the file: the executable after it was never seen."""
    packed = lzma.compress(b"") + bytes(4) + lzma.compress(executable())
    [_, inner] = inventory_of("hi", ("invoice.pdf.xz", packed)).files
    assert inner.detected == "exe"


def test_a_file_name_after_many_other_parameters_is_judged():
    """Only a header's first 64 parameters were read for a name: 70 made-up ones before
    filename="run.js" left the file nameless, and the script passed; mail clients read
    every parameter."""
    junk = "; ".join(f"x{n}=1" for n in range(70))
    message = (f"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
               f"{junk}; filename=\"run.js\"\r\n\r\nWScript.Echo(1);\r\n--b--\r\n").encode()
    [part] = inventory(parse_message(message)).files
    assert part.names == ("run.js",)


def test_a_message_attached_as_a_file_is_opened_however_few_its_header_fields():
    """A file was read as a message only when it started with three header fields a
    message has: a forwarded .eml with only MIME-Version and Content-Type, or saved
    with the mbox "From " line first, hid the run.exe attached to it; mail programs
    open a file named .eml as a message whatever its first lines."""
    import base64 as b64
    minimal = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n"
               b"--IN\r\nContent-Type: application/octet-stream; name=\"run.exe\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + b64.b64encode(executable())
               + b"\r\n--IN--\r\n")
    saved = b"From someone@example.com Mon Jan  1 00:00:00 2024\r\n" + mail(
        "inner", attachments=[("run.exe", executable())])
    for name, inner in (("fwd.eml", minimal), ("saved.dat", saved)):
        found = inventory_of("hi", (name, inner))
        assert (f"{name} > run.exe", "exe") in [(f.shown, f.detected) for f in found.files]


def test_tar_members_after_a_damaged_header_are_judged():
    """tarfile takes a damaged header after the first for the end of the archive: a
    block of junk between two members hid the second, which GNU tar and bsdtar (Windows'
    tar) extract after skipping the junk."""
    def tar_of(name: str, data: bytes) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()[:512 + (len(data) + 511) // 512 * 512]   # no end blocks
    junk = b"x" * 512
    archive = tar_of("readme.txt", b"hello") + junk + tar_of("run.exe", executable()) + \
        bytes(1024)
    found = inventory_of("hi", ("docs.tar", archive))
    assert ("docs.tar > run.exe", "exe") in [(f.shown, f.detected) for f in found.files]


def test_every_path_a_packaged_file_carries_is_judged():
    """A file packaged into a document was judged by its label alone: labelled
    invoice.pdf, with its source and temporary paths ending in invoice.js (the file
    the packager writes and opens on a double-click), the script passed."""
    script = b"WScript.Echo(1);"
    label, path = b"invoice.pdf", b"C:\\Users\\a\\AppData\\Local\\Temp\\invoice.js"
    body = (b"\x02\x00" + label + b"\0" + path + b"\0" + b"\x00\x00\x03\x00"
            + (len(path) + 1).to_bytes(4, "little") + path + b"\0"
            + len(script).to_bytes(4, "little") + script)
    stream = len(body).to_bytes(4, "little") + body
    document = ole_document(["WordDocument"],
                            streams={"ObjectPool/_1/\x01Ole10Native": stream})
    for name, data in (("letter.doc", document),
                       ("letter.rtf", rtf_document([("Package", stream[4:])]))):
        [packaged] = [f for f in inventory_of("hi", (name, data)).files if len(f.path) == 2]
        assert packaged.names == ("invoice.pdf", "invoice.js")
        assert blocked_because(packaged, frozenset({"js"})) == "blocked type .js"


PAST_BUDGET = "beyond the message's budget for decoding here, not looked into"


def _tar_with_evil_exe() -> bytes:
    return tar_of({"filler.txt": b"minutes of the meeting\n" * 4000, "evil.exe": executable()})


@pytest.mark.parametrize("outer", ["arj", "lzh", "szdd"])
@pytest.mark.parametrize("nested", ["tar", "gz"])
def test_an_archive_cut_by_the_python_decoding_budget_is_reported(outer, nested):
    """A tar (or gzip) packed in an ARJ, LHA or SZDD file and decoded in Python past
    what the message may have decoded so (max_slow_unpacked) was opened cut: it looked
    damaged ("damaged tar"), and what it held beyond the cut, evil.exe here, unseen.
    It is known by its name, and said to be past the budget."""
    inner = _tar_with_evil_exe() if nested == "tar" else gzip.compress(_tar_with_evil_exe())
    attached = {"arj": lambda: ("docs.arj", arj_archive({f"docs.{nested}": inner})),
                "lzh": lambda: ("docs.lzh", lzh_archive({f"docs.{nested}": inner}, level=2,
                                                        method="-lh5-")),
                "szdd": lambda: (f"docs.{nested[0]}_", szdd_file(inner))}[outer]()
    found = inventory_of("hi", attached, limits=Limits(max_slow_unpacked=len(inner) // 2))
    assert [(f.shown, f.detail) for f in found.findings] == [
        (f"{attached[0]} > docs.{nested}" if outer != "szdd" else attached[0], PAST_BUDGET)]
    # Within the budget the same file is opened and evil.exe found.
    assert any(f.path[-1] == "evil.exe" for f in inventory_of("hi", attached).files)


@pytest.mark.parametrize("outer", ["arj", "lzh"])
def test_an_archive_the_python_decoding_budget_does_not_reach_is_reported(outer):
    """An archive packed in an ARJ or LHA after members that spent the budget was known
    by its name alone, with no word that nothing in it had been looked at."""
    files = {"filler.txt": b"minutes of the meeting\n" * 4000, "docs.tar": _tar_with_evil_exe()}
    archive = arj_archive(files) if outer == "arj" else lzh_archive(files, level=2,
                                                                     method="-lh5-")
    found = inventory_of("hi", (f"docs.{outer}", archive), limits=Limits(max_slow_unpacked=HEAD))
    assert [(f.shown, f.detail) for f in found.findings] == [
        (f"docs.{outer} > docs.tar", PAST_BUDGET)]


def test_an_szdd_file_clamd_refuses_and_not_expanded_whole_here_is_reported():
    """A compress -r file (which clamd refuses) is expanded here for clamd.  Past the
    Python decoding budget, or clamd's room, it went to clamd cut or not at all, with no
    finding: a virus after the filler was scanned by nobody."""
    program = b"MZ" + b"\0" * 62 + b"filler " * 30_000
    attached = ("setup.ex_", szdd_file(program, "e"))
    for limits, shown, detail in (
            (Limits(max_slow_unpacked=100_000), "setup.ex_",
             "not all handed to the virus scanner, which does not expand this SZDD file"),
            (Limits(max_for_clamd=200_000), "setup.ex_ > setup.exe",
             "too large to hand to the virus scanner, which cannot open it where it is")):
        found = inventory_of("hi", attached, attached, limits=limits)
        assert [(f.shown, f.problem, f.detail) for f in found.findings][-1:] == [
            (shown, Problem.UNSCANNED, detail)]
    assert inventory_of("hi", attached).findings == []
