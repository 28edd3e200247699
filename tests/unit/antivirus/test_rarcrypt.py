"""Encrypted RAR 5 members and names (``rarcrypt``): opened with a password from the message,
checked against what WinRAR wrote and against rarfile's own reading of the tests' archives;
a wrong password, RAR 3's encryption, a costly or damaged lock stay shut, never an error."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import rarfile

from portcullis.antivirus import rarcrypt
from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.mime import parse_message
from tests.support.attachments import Rar5Crypt, executable, mail, rar3_ppmd_block, rar5
from tests.support.attachments import rar3 as rar3_archive

pytestmark = pytest.mark.antivirus

FIXTURES = Path(__file__).parents[2] / "support" / "rar"
LINES = b"".join(b"%03d\n" % n for n in range(512))     # what WinRAR's members hold
TOLD = "The archive is protected. Password: password"


def inventory_of(body: str, name: str, data: bytes, limits: Limits | None = None):
    message = parse_message(mail("encrypted", body, [(name, data)]))
    return inventory(message, limits) if limits else inventory(message)


def opened(found) -> dict[str, bytes]:
    return {" > ".join(path[1:]): data for path, data in found.decrypted}


@pytest.mark.parametrize("fixture", ["winrar-encrypted.rar", "winrar-encrypted-blake2.rar",
                                     "winrar-encrypted-names.rar"])
def test_what_winrar_encrypted_opens_with_the_password_in_the_message(fixture):
    data = (FIXTURES / fixture).read_bytes()
    found = inventory_of(TOLD, "files.rar", data)
    # One member packed by RAR 5's compression, one stored; the checksums match.
    assert opened(found) == {"stest1.txt": LINES, "stest2.txt": LINES}
    assert found.findings == []
    assert {f.shown: (f.opened, f.encrypted) for f in found.files} == {
        "files.rar": (True, False), "files.rar > stest1.txt": (True, True),
        "files.rar > stest2.txt": (True, True)}


@pytest.mark.parametrize(("fixture", "detail"), [
    ("winrar-encrypted.rar", "encrypted, no password found in the message"),
    ("winrar-encrypted-names.rar", "file names encrypted, no password found in the message")])
def test_without_the_password_winrars_encryption_stays_locked(fixture, detail):
    data = (FIXTURES / fixture).read_bytes()
    # Every word of the text is tried: this one names no password.
    found = inventory_of("Details follow by phone: 1234.", "files.rar", data)
    assert found.decrypted == []
    assert {f.detail for f in found.problems(Problem.LOCKED)} == {detail}


def test_winrar3s_encrypted_names_open_with_the_password_and_its_empty_members_hide_nothing():
    data = (FIXTURES / "winrar3-encrypted-names.rar").read_bytes()
    found = inventory_of(TOLD, "old.rar", data)
    assert [(f.path[-1], f.opened, f.encrypted) for f in found.files][1:] == [
        ("file1.txt", True, True), ("file2.txt", True, True)]
    assert found.findings == []
    shut = inventory_of("Details follow by phone: 1234.", "old.rar", data)
    assert [f.detail for f in shut.findings] == [
        "file names encrypted, no password found in the message"]
    # Empty encrypted members: no password is needed to know there is nothing inside.
    empty = inventory_of("hi", "old.rar", (FIXTURES / "winrar3-encrypted.rar").read_bytes())
    assert empty.findings == [] and len(empty.files) == 3


def test_rar3_encrypted_members_open_with_the_password_however_they_are_packed():
    text = b"see the invoice, page after page " * 300
    files = {"notes.txt": text, "Invoice.pdf": executable(), "readme.txt": text[:500]}
    data = rar3_archive(files, compressed=frozenset({"Invoice.pdf"}),
                        packed={"notes.txt": rar3_ppmd_block(text)[0]},
                        encrypted=frozenset(files), password="Inv-2026!")
    found = inventory_of("Your invoice, password 'Inv-2026!'.", "invoice.rar", data)
    assert opened(found) == files
    assert {f.shown: f.detected for f in found.files}["invoice.rar > Invoice.pdf"] == "exe"
    assert found.findings == []
    # A wrong password: no check value, but nothing decodes under it.
    shut = inventory_of("Password: Inv-2025!", "invoice.rar", data)
    assert shut.decrypted == []
    assert {f.detail for f in shut.findings} == {"encrypted, no password found in the message"}


def test_a_solid_rar3_run_opens_with_the_password_its_first_member_proved():
    files = {f"{n}.txt": f"page {n} of the report ".encode() * 200 for n in range(3)}
    data = rar3_archive(files, compressed=frozenset(files), solid=True,
                        encrypted=frozenset(files), password="Inv-2026!")
    found = inventory_of(TOLD.replace("password", "Inv-2026!"), "report.rar", data)
    assert opened(found) == files and found.findings == []


def test_the_tests_encrypted_names_are_read_by_rarfile_with_the_password_only():
    # rarfile checks the password check value and decrypts the headers itself: an
    # independent reading of what the tests' archives write.
    data = rar5({"invoice.pdf": executable()}, encrypted=frozenset({"invoice.pdf"}),
                encrypted_names=True, password="Inv-2026!")
    archive = rarfile.RarFile(io.BytesIO(data))
    assert archive.needs_password() and archive.infolist() == []
    archive.setpassword("Inv-2026!")
    assert [m.filename for m in archive.infolist()] == ["invoice.pdf"]
    with pytest.raises(rarfile.RarWrongPassword):
        rarfile.RarFile(io.BytesIO(data)).setpassword("Inv-2025!")


@pytest.mark.parametrize("names", [False, True], ids=["members", "members and names"])
def test_packed_and_stored_encrypted_members_open_and_go_to_clamd(names):
    files = {"notes.txt": b"see the invoice " * 500, "invoice.pdf": executable(),
             "readme.txt": b"plain"}
    data = rar5(files, compressed=frozenset({"notes.txt", "invoice.pdf"}),
                filters={"invoice.pdf": "e8e9"}, encrypted=frozenset(files),
                encrypted_names=names, password="Inv-2026!")
    found = inventory_of("Your invoice, password 'Inv-2026!'.", "invoice.rar", data)
    assert opened(found) == files
    # The executable is known for what it is, whatever its name says.
    assert {f.shown: f.detected for f in found.files}["invoice.rar > invoice.pdf"] == "exe"
    assert found.findings == []


def test_a_wrong_password_in_the_message_leaves_the_members_locked_and_named():
    data = rar5({"invoice.exe": executable()}, encrypted=frozenset({"invoice.exe"}),
                password="right one")
    found = inventory_of("Password: wrong-one", "invoice.rar", data)
    assert found.decrypted == []
    assert [f.path for f in found.problems(Problem.LOCKED)] == [("invoice.rar", "invoice.exe")]
    assert [f.names for f in found.files if f.encrypted] == [("invoice.exe",)]


def test_a_member_whose_bytes_do_not_match_its_checksum_is_damaged_not_opened():
    content = executable()
    data = bytearray(rar5({"invoice.pdf": content}, encrypted=frozenset({"invoice.pdf"}),
                          password="pw-2026"))
    archive = rarfile.RarFile(io.BytesIO(bytes(data)))
    member = archive.infolist()[0]
    data[member.data_offset + 40] ^= 0xFF                  # ciphertext altered
    found = inventory_of("password: pw-2026", "invoice.rar", bytes(data))
    assert found.decrypted == []
    assert [f.detail for f in found.problems(Problem.UNREADABLE)] == [
        "damaged rar member (checksum)"]
    assert [(f.opened, f.encrypted) for f in found.files if len(f.path) == 2] == [(False, True)]


def test_a_lock_asking_for_too_costly_a_key_derivation_is_not_tried():
    crypt = Rar5Crypt("pw-2026")
    lock = rarcrypt.Lock(rarcrypt.MAX_ROUNDS_LOG + 8, crypt.salt, crypt.check[:8])
    with pytest.raises(rarcrypt.Unsupported, match="too costly"):
        rarcrypt._lock(lock.rounds_log, crypt.salt, crypt.check)
    assert rarcrypt.key(rarcrypt._lock(15, crypt.salt, crypt.check), "pw-2026") is not None


def test_a_damaged_password_check_value_is_unreadable():
    crypt = Rar5Crypt("pw-2026")
    damaged = crypt.check[:8] + bytes(4)
    with pytest.raises(rarcrypt.Unreadable, match="password check"):
        rarcrypt._lock(15, crypt.salt, damaged)


def test_password_searches_are_bounded_by_the_messages_limit():
    data = rar5({"a.exe": executable()}, encrypted=frozenset({"a.exe"}), password="pw-2026")
    found = inventory_of("password: pw-2026", "a.rar", data, Limits(max_encrypted_tries=0))
    assert found.decrypted == []
    assert [f.detail for f in found.problems(Problem.LOCKED)] == [
        "encrypted, not tried: the message's limit on password searches is reached"]


def test_a_password_is_derived_once_for_the_members_sharing_a_salt():
    # WinRAR gives every member of an archive one salt: one derivation opens them all,
    # within a message's max_key_derivations of 1.
    data = (FIXTURES / "winrar-encrypted.rar").read_bytes()
    found = inventory_of(TOLD, "files.rar", data, Limits(max_key_derivations=1))
    assert opened(found) == {"stest1.txt": LINES, "stest2.txt": LINES}


def test_a_short_rar3_member_is_not_opened_by_a_wrong_password_that_decodes_a_few_bytes():
    # Fifteen bytes of garbage often decode without a fault (a PPMd bit, a short table):
    # a member that short must match its CRC.  Each archive has its own salt.
    for _ in range(8):
        data = rar3_archive({"notes.txt": b"see the invoice"},
                            compressed=frozenset({"notes.txt"}),
                            encrypted=frozenset({"notes.txt"}), password="Rar-2026!")
        found = inventory_of("See attached.", "invoice.rar", data)
        assert [f.problem for f in found.findings] == [Problem.LOCKED]


def test_rar3_passwords_too_long_for_the_quick_derivation_are_not_tried():
    from portcullis.antivirus import rarcrypt
    lock = rarcrypt.Lock(0, b"saltsalt", b"", rar3=True)
    assert rarcrypt.key(lock, "x" * 28) is not None            # 56 + 8 bytes: quick
    assert rarcrypt.key(lock, "x" * 29) is None                # 8 s a try in pure Python
    assert rarcrypt.key(lock, "\U0001f600" * 15) is None       # UTF-16 surrogate pairs
