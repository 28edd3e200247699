"""Judging a file by every name it carries and by its bytes."""

from __future__ import annotations

import pytest

from portcullis.antivirus import filetypes
from portcullis.antivirus.archives import inventory
from portcullis.checks.attachments import blocked_because
from portcullis.mime import parse_message
from tests.support.attachments import executable, mail_with_part, zip_of

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
    ("Shared Files.Search-MS", ["search-ms"]),     # shell files' two-part extensions
    ("README", []),
    # Windows and the unpackers written in C end a name at a NUL (it was dropped, and
    # the name judged as evil.exe.txt or evil.txt).
    ("evil.exe\0.txt", ["exe"]),
    ("docs/evil.exe\0/notes.txt", ["exe"]),
])
def test_extensions_are_read_as_windows_would_act_on_the_name(name, expected):
    assert filetypes.extensions(name) == expected


@pytest.mark.parametrize(("name", "trick"), [
    ("invoice.pdf.exe", "double extension .pdf.exe"),
    ("photo\u202egnp.scr", "invisible or direction-changing characters"),
    ("invoice.pdf                              .exe", "long run of spaces"),
    ("invoice.pdf\0.exe", "a NUL character"),   # judged as invoice.pdf, shown with .exe
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
    (b"\x4e\x96\x31\x00\x00\x00\x00**ACE**\x14\x14\x02\x00", "ace"),    # an ACE header
    (bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3") + bytes(100), "one"),   # OneNote
    (b"]\x00\x00\x80\x00" + b"\xff" * 8 + b"\x00\x2c", "lzma"),
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


@pytest.mark.parametrize("extension", [
    "search-ms", "searchconnector-ms", "library-ms", "settingcontent-ms", "diagcab",
    "appref-ms", "vsto", "iqy", "slk", "ace", "exe", "hta", "lnk"])
def test_shell_files_that_run_or_fetch_things_are_blocked_by_default(extension):
    blocked = filetypes.normalise_extension_list(list(filetypes.DEFAULT_BLOCKED_EXTENSIONS))
    assert filetypes.extensions(f"Documents.{extension.upper()}")[-1] in blocked


def test_an_attachment_named_with_a_nul_is_blocked_by_the_name_before_it():
    """A NUL in a MIME file name (RFC 2231's %00) was dropped: evil.exe%00.txt was
    judged as evil.exe.txt and passed, though it is saved as evil.exe."""
    message = mail_with_part(b"Content-Type: application/octet-stream\r\n"
                             b"Content-Disposition: attachment; "
                             b"filename*=utf-8''evil.exe%00.txt\r\n")
    [attached] = inventory(parse_message(message)).files
    assert blocked_because(attached, frozenset({"exe"})) == \
        "blocked type .exe, a NUL character cutting the name short"
