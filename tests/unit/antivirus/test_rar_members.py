"""RAR members as the attachment inventory sees them, the same for RAR 3 and RAR 5: solid
runs carry on from the member before, WinRAR's own solid archives are read, content (not
the name) decides what a member is, damage leaves the name judged, and the Python
decoding budget stops members and the solid run after them."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.antivirus.filetypes import deceptive
from portcullis.checks.attachments import blocked_because
from portcullis.mime import parse_message
from tests.support.attachments import Rar3Packer, Rar5Packer, mail, rar3, rar5
from tests.support.rar_samples import LINES, RAR_SAMPLES, by_bsdtar, text, x86_code

pytestmark = pytest.mark.antivirus


class RarVersion(NamedTuple):
    archive: Callable[..., bytes]       # tests.support.attachments' writer of the format
    packer: type                        # its compressor
    winrar_solid: str                   # a solid archive WinRAR wrote (tests/support/rar)
    # libarchive 3.6 reads no solid RAR 3 ("RAR solid archive support unavailable"): there
    # WinRAR's archive checks the solid path, here the inventory's own.
    libarchive_reads_solid: bool


VERSIONS = {"rar3": RarVersion(rar3, Rar3Packer, "winrar3-solid.rar", False),
            "rar5": RarVersion(rar5, Rar5Packer, "winrar-solid.rar", True)}


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> RarVersion:
    return VERSIONS[request.param]


def test_a_solid_pair_carries_on_from_the_member_before(version):
    first, second = text(60_000, 5), text(30_000, 5)[::-1] + text(20_000, 5)
    archive = version.archive({"a.txt": first, "b.txt": second},
                              compressed=frozenset({"a.txt", "b.txt"}), solid=True)
    if version.libarchive_reads_solid:
        assert by_bsdtar(archive, "b.txt") == second
    found = inventory(parse_message(mail("x", attachments=[("s.rar", archive)])))
    assert [(f.shown, f.size, f.opened) for f in found.files] == [
        ("s.rar", len(archive), True), ("s.rar > a.txt", 60_000, True),
        ("s.rar > b.txt", len(second), True)]
    assert [data for _, data in found.expanded] == [first, second]


def test_what_winrar_wrote_is_read_solid_members_too(version):
    archive = (RAR_SAMPLES / version.winrar_solid).read_bytes()
    found = inventory(parse_message(mail("x", attachments=[("w.rar", archive)])))
    assert found.expanded == [(("w.rar", "stest1.txt"), LINES), (("w.rar", "stest2.txt"), LINES)]
    assert found.findings == []


def test_an_executable_packed_under_a_harmless_name_is_found_and_goes_to_clamd(version):
    program = x86_code(40_000)
    archive = version.archive({"invoice.pdf": program, "note.txt": b"see the invoice"},
                              compressed=frozenset({"invoice.pdf", "note.txt"}),
                              filters={"invoice.pdf": "e8e9"})
    found = inventory(parse_message(mail("x", attachments=[("invoice.rar", archive)])))
    assert {f.shown: (f.detected, f.opened) for f in found.files} == {
        "invoice.rar": ("rar", True), "invoice.rar > invoice.pdf": ("exe", True),
        "invoice.rar > note.txt": (None, True)}
    assert (("invoice.rar", "invoice.pdf"), program) in found.expanded


def test_a_crc_mismatch_is_damage_and_the_name_is_still_judged(version):
    packed = version.packer().pack(b"MZ" + b"not what the header says" * 50)
    archive = version.archive({"setup.exe": b"MZ" + b"what the header says" * 50},
                              packed={"setup.exe": packed})
    found = inventory(parse_message(mail("x", attachments=[("x.rar", archive)])))
    assert [(f.shown, f.opened) for f in found.files] == [("x.rar", True),
                                                          ("x.rar > setup.exe", False)]
    [problem] = found.problems(Problem.UNREADABLE)
    assert problem.detail.startswith("damaged rar member (damaged: CRC ")
    assert found.expanded == []


def test_the_python_decoding_budget_stops_members_and_the_solid_run_after_them(version):
    texts = {f"{n}.txt": text(90_000, n) for n in range(3)}
    for solid in (False, True):
        archive = version.archive(texts, compressed=frozenset(texts), solid=solid)
        found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])),
                          Limits(max_slow_unpacked=100_000))
        shown = [(f.shown, f.opened) for f in found.files[1:]]
        # The second is read as far as the budget goes (10 000 bytes); in a solid
        # archive, the third needs all of it before, so it is known by name alone.
        assert shown == [("a.rar > 0.txt", True), ("a.rar > 1.txt", True),
                         ("a.rar > 2.txt", False)]
        assert [len(data) for _, data in found.expanded] == [90_000, 10_000]
        assert found.unpacked == 100_000


def test_rar_content_clamd_is_never_shown_is_reported(version):
    """clamd reads no RAR here: a member the inventory does not hand it whole is scanned
    by nobody.  Past the Python decoding budget (or the room for clamd) such a member
    passed with no finding at all, the way to slip a virus through: filler first."""
    virus = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    files = {"filler.txt": text(60_000, 1), "tail.txt": text(60_000, 2), "invoice.pdf": virus}
    # Decoded in Python as far as the budget goes: tail.txt in part, invoice.pdf not at
    # all; stored, each read whole: tail.txt no longer fits in clamd's room.
    budget = "not all handed to the virus scanner, which reads no RAR"
    room = "too large to hand to the virus scanner, which cannot open it where it is"
    for limits, stored, unscanned in (
            (Limits(max_slow_unpacked=100_000), False,
             [("tail.txt", budget), ("invoice.pdf", budget)]),
            (Limits(max_for_clamd=200_000), True, [("tail.txt", room)])):
        archive = version.archive(files, compressed=frozenset() if stored else frozenset(files))
        found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])), limits)
        assert [(f.shown, f.detail) for f in found.problems(Problem.UNSCANNED)] == [
            (f"a.rar > {name}", detail) for name, detail in unscanned]
        # What is handed whole needs no word.
        whole = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])))
        assert whole.findings == []


@pytest.mark.parametrize("compressed", [False, True])
def test_a_rar3_members_dos_name_is_judged_as_well(compressed):
    """A RAR 3 header may carry two names: a DOS name, then (flag 0x200) the Unicode
    one, which rarfile shows.  Extractors that read the DOS name save the file under it,
    and it was never judged: "invoice.pdf.exe" passed behind a Unicode "invoice.txt"."""
    files = {"invoice.txt": b"MZ" + bytes(100), "readme.txt": b"read me"}
    archive = rar3(files, compressed=frozenset(files) if compressed else frozenset(),
                   dos_names={"invoice.txt": "invoice.pdf.exe", "readme.txt": "readme.txt"})
    found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])))
    [member, readme] = found.files[1:]
    assert (member.shown, member.names) == ("a.rar > invoice.txt",
                                            ("invoice.txt", "invoice.pdf.exe"))
    assert readme.names == ("readme.txt",)          # the same name is not judged twice
    assert blocked_because(member, frozenset({"exe"})) == \
        "blocked type .exe, double extension .pdf.exe"
    assert deceptive("invoice.pdf.exe") is not None


def test_an_encrypted_rar3_members_dos_name_is_judged_as_well():
    archive = rar3({"notes.txt": b"MZ" + bytes(100)}, encrypted=frozenset({"notes.txt"}),
                   password="not in the message", dos_names={"notes.txt": "notes.scr"})
    found = inventory(parse_message(mail("x", attachments=[("a.rar", archive)])))
    [member] = found.files[1:]
    assert (member.names, member.opened) == (("notes.txt", "notes.scr"), False)
    assert blocked_because(member, frozenset({"scr"})) == "blocked type .scr"
