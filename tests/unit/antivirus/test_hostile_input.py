"""Whatever bytes arrive as attachments, looking at them never raises and stays bounded."""

from __future__ import annotations

import base64
import io
import urllib.parse
import zipfile
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portcullis.antivirus import arj, filetypes, lzh
from portcullis.antivirus.archives import Limits, inventory
from portcullis.antivirus.readers import Stored, TooLarge, Unreadable
from portcullis.mime import parse_message
from tests.support.attachments import (
    WORD_MACROS,
    arj_archive,
    biff_workbook,
    handmade_cabinet,
    iso_image,
    lzh_archive,
    mail,
    ole_document,
    ole_package,
    pdf_document,
    qpdf_rewrite,
    rar5,
    rtf_document,
    seven_zip,
    tnef_stream,
    two_tree_image,
    udf_image,
    zip_of,
)

pytestmark = pytest.mark.antivirus

SMALL = Limits(max_unpacked=1024 * 1024, max_member=512 * 1024)


def raw_mail(name: str, data: bytes) -> bytes:
    """A message with one attachment under any name (RFC 2231 encoded, as mailers do)."""
    encoded = urllib.parse.quote(name.encode("utf-8", "surrogatepass"), safe="")
    return (b"From: a@remote.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''" + encoded.encode() +
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--b--\r\n")


def mutated(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """A valid archive with some bytes overwritten: headers that lie, offsets that point
    anywhere, sizes that are wrong."""
    buffer = bytearray(data)
    for position, value in flips:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


@settings(max_examples=150)
@given(st.binary(max_size=4096), st.text(max_size=80))
def test_any_bytes_under_any_name_are_inventoried_without_error(data, name):
    found = inventory(parse_message(raw_mail(name, data)), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + 1


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]))
def test_damaged_zips_never_raise(flips, method):
    inner = zip_of({"inner.txt": b"abc" * 300}, method)
    archive = mutated(zip_of({"a.txt": b"hello " * 200, "in.zip": inner}, method), flips)
    found = inventory(parse_message(mail("x", attachments=[("d.zip", archive)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + 1


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.booleans(), st.booleans())
def test_damaged_rars_never_raise(flips, encrypted, solid):
    inner = rar5({"inner.txt": b"abc" * 300}, compressed=frozenset({"inner.txt"}))
    archive = mutated(
        rar5({"a.txt": b"hello " * 200, "in.rar": inner, "p.exe": b"MZ\xe8" * 500,
              "q.txt": b"hello, again " * 100},
             compressed=frozenset({"p.exe", "q.txt"}), filters={"p.exe": "e8e9"}, solid=solid,
             encrypted=frozenset({"a.txt"}) if encrypted else frozenset()), flips)
    found = inventory(parse_message(mail("x", attachments=[("d.rar", archive)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + 1


SEVEN_ZIPS: list[bytes] = []


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 4_000), st.integers(0, 255)), min_size=1,
                max_size=12), st.integers(0, 4))
def test_damaged_7zs_never_raise(flips, variant):
    if not SEVEN_ZIPS:      # made once by 7-Zip: plain, two-coder folders, header unpacked,
        files = {"a.txt": b"hello " * 200, "d/b.exe": b"MZ" * 300, "e.txt": b""}
        SEVEN_ZIPS.extend([seven_zip(files), seven_zip(files, "-ms=off", "-mf=BCJ"),
                           seven_zip(files, "-mhc=off", "-pX"),      # Deflate and BZip2
                           seven_zip(files, "-mhc=off", "-m0=Deflate"),
                           seven_zip(files, "-mhc=off", "-m0=BZip2")])
    archive = mutated(SEVEN_ZIPS[variant], flips)
    found = inventory(parse_message(mail("x", attachments=[("d.7z", archive)])), SMALL)
    assert len(found.files) <= SMALL.max_files + 1


ISO_IMAGES: list[bytes] = []


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(16 * 2048, 26 * 2048), st.integers(0, 255)),
                min_size=1, max_size=12), st.booleans())
def test_damaged_disc_images_never_raise(flips, joliet):
    if not ISO_IMAGES:      # made once by genisoimage: ISO 9660 names, and Joliet ones
        files = {"a.txt": b"hello " * 200, "d/b.exe": b"MZ" * 300, "d/e/f.zip": zip_of({})}
        ISO_IMAGES.extend([iso_image(files), iso_image(files, "-J")])
    image = mutated(ISO_IMAGES[joliet], flips)     # descriptors, path tables, directories
    found = inventory(parse_message(mail("x", attachments=[("d.iso", image)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


UDF_IMAGES: list[bytes] = []


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(16 * 2048, 300 * 2048), st.integers(0, 255)),
                min_size=1, max_size=12), st.booleans())
def test_damaged_udf_images_never_raise(flips, two_trees):
    if not UDF_IMAGES:      # genisoimage's UDF 1.02 alone; pycdlib's UDF 2.60 beside ISO 9660
        files = {"a.txt": b"hello " * 200, "d/b.exe": b"MZ" * 300, "d/e/f.zip": zip_of({})}
        UDF_IMAGES.extend([udf_image(files), two_tree_image(files, {"c.pdf": b"MZ"})])
    image = mutated(UDF_IMAGES[two_trees], flips)  # anchor, descriptors, entries, records
    found = inventory(parse_message(mail("x", attachments=[("d.img", image)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


OFFICE_DOCUMENTS: list[bytes] = []


@settings(max_examples=250)
@given(st.lists(st.tuples(st.integers(0, 4 * 1024), st.integers(0, 255)), min_size=1,
                max_size=12), st.integers(0, 4))
def test_damaged_office_documents_never_raise(flips, variant):
    if not OFFICE_DOCUMENTS:    # VBA (1 and 3 FAT sectors); XLM in the mini stream, and not
        sheets = [("Sheet1", 0), ("Macro1", 1)]
        OFFICE_DOCUMENTS.extend([
            ole_document(WORD_MACROS), ole_document(WORD_MACROS, filler=260),
            ole_document([], streams={"Workbook": biff_workbook(sheets), "s": b"x" * 70}),
            ole_document([], streams={"Workbook": biff_workbook(sheets, pad_to=5000)}),
            ole_document([], streams={"P/\x01Ole10Native": ole_package("a.exe", b"MZ" * 99)})])
    document = mutated(OFFICE_DOCUMENTS[variant], flips)
    found = inventory(parse_message(mail("x", attachments=[("d.xls", document)])), SMALL)
    assert len(found.files) <= 2 and found.unpacked <= SMALL.max_unpacked


PDFS: list[bytes] = []


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), min_size=1,
                max_size=12), st.booleans())
def test_damaged_pdfs_never_raise(flips, packed):
    if not PDFS:            # written here, and packed into object streams by qpdf
        document = pdf_document(links=("https://a.example.net/",), open_javascript="x()",
                                trigger="next", form_javascript="f(1)",
                                login_form="https://a.example.net/p",
                                embedded={"a.exe": b"MZ" * 300, "b.zip": zip_of({})})
        PDFS.extend([document, qpdf_rewrite(document, "--object-streams=generate")])
    found = inventory(parse_message(mail("x", attachments=[("d.pdf", mutated(PDFS[packed],
                                                                          flips))])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255)), min_size=1,
                max_size=12))
def test_damaged_tnef_never_raises(flips):
    stream = mutated(tnef_stream({"a.exe": b"MZ" * 300, "b.zip": zip_of({"c": b"d"})}), flips)
    found = inventory(parse_message(mail("x", attachments=[("winmail.dat", stream)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), min_size=1,
                max_size=12), st.booleans())
def test_damaged_rtf_never_raises(flips, obfuscate):
    document = mutated(rtf_document([("Package", ole_package("a.exe", b"MZ" * 99)[4:]),
                                     ("Equation.3", b"\x1c" * 40)], obfuscate=obfuscate),
                       flips)
    found = inventory(parse_message(mail("x", attachments=[("d.rtf", document)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


CABINETS: list[bytes] = []


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 255)), min_size=1,
                max_size=12), st.booleans())
def test_damaged_cabinets_never_raise(flips, stored):
    if not CABINETS:        # MSZIP blocks referring back (three of them), and stored ones
        files = {"a.txt": b"hello world " * 6000, "d\\b.exe": b"MZ" * 300,
                 "c.zip": zip_of({"x.scr": b"MZ"})}
        CABINETS.extend([handmade_cabinet(files), handmade_cabinet(files, method=0)])
    archive = mutated(CABINETS[stored], flips)    # the header, folders, names, first blocks
    found = inventory(parse_message(mail("x", attachments=[("d.cab", archive)])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + SMALL.max_member


PACKED_ARCHIVES: list[tuple[Callable[..., list[Stored]], bytes]] = []


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 6_000), st.integers(0, 255)), min_size=1,
                max_size=12), st.integers(0, 3))
def test_damaged_lha_and_arj_packed_members_never_raise_but_unreadable(flips, variant):
    if not PACKED_ARCHIVES:  # the same text packed -lh5-, -lh7-, and by arj -m1 and -m4
        text = b"".join(b"line %d of the text, again and again\n" % (n % 97)
                        for n in range(600)) + bytes(range(256))
        PACKED_ARCHIVES.extend(
            [(lzh.members, lzh_archive({"t.txt": text}, level=2, method=method))
             for method in ("-lh5-", "-lh7-")]
            + [(arj.members, arj_archive({"t.txt": text}, option)) for option in ("-m1", "-m4")])
    reader, archive = PACKED_ARCHIVES[variant]
    try:
        members = reader(mutated(archive, flips), max_members=10)
    except (Unreadable, TooLarge):
        return                                # a header hit: refused before any decoding
    for member in members:
        if member.unpack is not None:
            want = min(member.size, 2**20)    # a damaged size may claim gigabytes
            try:
                assert len(member.unpack(1000)) == min(1000, want)
                assert len(member.unpack(want)) == want
            except Unreadable:
                pass


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_file_name_is_judged_and_shown_safely(name):
    filetypes.extensions(name)
    filetypes.deceptive(name)
    shown = filetypes.shown(name)
    assert len(shown) <= filetypes.MAX_SHOWN
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in shown)


def test_a_zip_whose_central_directory_lies_about_sizes_is_bounded():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.zip", zip_of({"z": b"\0" * 100_000}, zipfile.ZIP_STORED))
    data = bytearray(buffer.getvalue())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (1).to_bytes(4, "little")    # "uncompressed: 1 byte"
    found = inventory(parse_message(mail("x", attachments=[("liar.zip", bytes(data))])), SMALL)
    assert found.unpacked <= SMALL.max_unpacked + 1
