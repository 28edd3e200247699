"""Judging a file by every name it carries and by its bytes."""

from __future__ import annotations

import pytest

from portcullis.antivirus import filetypes
from tests.support.attachments import executable, zip_of

pytestmark = pytest.mark.antivirus


@pytest.mark.parametrize(("name", "expected"), [
    ("invoice.pdf.exe", ["pdf", "exe"]),
    ("INVOICE.PDF.EXE", ["pdf", "exe"]),
    ("run.exe.", ["exe"]),                         # Windows drops trailing dots
    ("run.exe   ", ["exe"]),                       # ... and trailing spaces
    ("invoice\u202egpj.exe", ["exe"]),             # right-to-left override hides ".exe"
    ("docs/sub\\evil.scr", ["scr"]),               # any path separator
    ("\uff49\uff4e\uff56.\uff45\uff58\uff45", ["exe"]),   # full-width letters fold to ASCII
    ("evil.exe:Zone.Identifier", ["exe"]),         # an alternate data stream name
    ("README", []),
])
def test_extensions_are_read_as_windows_would_act_on_the_name(name, expected):
    assert filetypes.extensions(name) == expected


@pytest.mark.parametrize(("name", "trick"), [
    ("invoice.pdf.exe", "double extension .pdf.exe"),
    ("photo\u202egnp.scr", "invisible or direction-changing characters"),
    ("invoice.pdf                              .exe", "long run of spaces"),
])
def test_deceptive_names_are_recognised(name, trick):
    assert trick in (filetypes.deceptive(name) or "")


@pytest.mark.parametrize("name", ["report.pdf", "archive.tar.gz", "photo.jpeg", "a b c.docx"])
def test_ordinary_names_are_not_deceptive(name):
    assert filetypes.deceptive(name) is None


def test_hostile_names_are_shown_as_one_bounded_printable_line():
    shown = filetypes.shown("../../x\r\nBcc: victim@example.com\u202e" + "A" * 500 + ".exe")
    assert "\r" not in shown and "\n" not in shown and "\u202e" not in shown
    assert len(shown) <= filetypes.MAX_SHOWN and shown.startswith("x??Bcc")


@pytest.mark.parametrize(("data", "expected"), [
    (executable(), "exe"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "elf"),
    (b"\xcf\xfa\xed\xfe" + b"\0" * 60, "macho"),
    (zip_of({"a.txt": b"hello"}), "zip"),
    (b"%PDF-1.7\n", "pdf"),
    (b"\0" * 0x8001 + b"CD001" + b"\0" * 100, "iso"),
    (b"MZ is how this text file begins, and it is only text." + b" " * 100, None),
    (b"Hello, world", None),
])
def test_types_are_detected_from_the_bytes(data, expected):
    assert filetypes.detect(data) == expected


def test_a_zip_with_a_java_manifest_is_a_java_archive():
    data = zip_of({"META-INF/MANIFEST.MF": b"Main-Class: Evil\n", "Evil.class": b"\xca\xfe"})
    assert filetypes.detect(data, ["META-INF/MANIFEST.MF", "Evil.class"]) == "jar"


def test_administrators_may_write_extensions_in_any_common_form():
    assert filetypes.normalise_extension_list(["EXE", ".scr", "*.js", " ", "*."]) == \
        frozenset({"exe", "scr", "js"})
