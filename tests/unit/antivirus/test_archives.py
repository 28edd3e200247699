"""The attachment inventory: every file, inside archives too, within hard bounds."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
import zipfile

import pytest

from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.mime import parse_message
from tests.support.attachments import (
    aes_zip,
    executable,
    mail,
    nested_zip,
    rar5,
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


def test_members_of_a_rar_are_listed_and_stored_ones_opened():
    inner = zip_of({"tool.scr": executable()})
    archive = rar5({"docs/readme.txt": b"hello", "setup.pdf": executable(),
                    "more.zip": inner, "packed.exe": b"\x00" * 64},
                   compressed=frozenset({"packed.exe"}))
    found = inventory_of("hi", ("files.rar", archive))
    shown = {f.shown: (f.detected, f.opened) for f in found.files}
    assert shown == {"files.rar": ("rar", True), "files.rar > readme.txt": (None, True),
                     "files.rar > setup.pdf": ("exe", True),
                     "files.rar > more.zip": ("zip", True),
                     "files.rar > more.zip > tool.scr": ("exe", True),
                     # RAR's own compression: the name is known, the bytes are not.
                     "files.rar > packed.exe": (None, False)}
    assert found.findings == []


def test_encrypted_rar_members_and_encrypted_rar_names_are_locked():
    members = inventory_of("hi", ("a.rar", rar5({"open.txt": b"hi", "secret.exe": b"x"},
                                                encrypted=frozenset({"secret.exe"}))))
    assert [f.path for f in members.files if f.encrypted] == [("a.rar", "secret.exe")]
    assert [f.path for f in members.problems(Problem.LOCKED)] == [("a.rar", "secret.exe")]
    names = inventory_of("hi", ("b.rar", rar5({"x.exe": b"x"}, encrypted_names=True)))
    assert names.problems(Problem.LOCKED)[0].detail == "file names encrypted, no password"


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
