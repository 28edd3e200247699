"""Encrypted 7z archives (``sevenzipcrypt``, 7-Zip's AES-256): made by 7-Zip itself, opened
with a password from the message, whatever coder is behind the encryption, names
encrypted too; a wrong password, a costly key derivation or damage leave them shut."""

from __future__ import annotations

import pytest

from portcullis.antivirus import sevenzipcrypt
from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.antivirus.readers import Unreadable, Unsupported
from portcullis.mime import parse_message
from tests.support.attachments import executable, mail, seven_zip

pytestmark = pytest.mark.antivirus

FILES = {"Invoice.pdf": executable() * 20, "notes.txt": b"see the invoice\n" * 400}
TOLD = "The archive is protected for your privacy. Password: Inv-2026!"


def inventory_of(body: str, data: bytes, limits: Limits | None = None):
    message = parse_message(mail("encrypted", body, [("invoice.7z", data)]))
    return inventory(message, limits) if limits else inventory(message)


def opened(found) -> dict[str, bytes]:
    return {path[-1]: data for path, data in found.decrypted}


@pytest.mark.parametrize("options", [
    (), ("-mhe=on",), ("-ms=off",), ("-m0=PPMd",), ("-m0=Copy",), ("-m0=Deflate",),
    ("-mf=BCJ", "-m0=LZMA"), ("-m0=BZip2", "-mhe=on")],
    ids=["lzma2", "names too", "not solid", "ppmd", "stored", "deflate", "bcj lzma",
         "bzip2 names too"])
def test_what_7zip_encrypts_opens_with_the_password_in_the_message(options):
    data = seven_zip(FILES, "-pInv-2026!", *options)
    found = inventory_of(TOLD, data)
    # clamd cannot open it: every file goes to it, decrypted.
    assert opened(found) == FILES
    assert {f.shown: (f.detected, f.opened, f.encrypted) for f in found.files} == {
        "invoice.7z": ("7z", True, False),
        "invoice.7z > Invoice.pdf": ("exe", True, True),
        "invoice.7z > notes.txt": (None, True, True)}
    assert found.findings == []


@pytest.mark.parametrize(("options", "detail"), [
    ((), "encrypted, no password found in the message"),
    (("-m0=Copy",), "encrypted, no password found in the message"),
    (("-mhe=on",), "file names encrypted, no password found in the message")])
def test_without_the_password_the_files_stay_locked(options, detail):
    data = seven_zip(FILES, "-pInv-2026!", *options)
    # Every word of the text is tried; none is the password (a stored folder, with no
    # structure to tell a wrong key by, is told by its first file's CRC).
    found = inventory_of("Please find the invoice attached. Inv-2025!", data)
    assert found.decrypted == []
    assert {f.detail for f in found.findings} == {detail}
    if "names" not in detail:
        assert sorted(f.path[-1] for f in found.files if f.encrypted) == sorted(FILES)


def test_a_small_header_encrypted_but_not_packed_opens_too():
    # 7-Zip leaves a header this small unpacked: AES is its only coder.
    data = seven_zip({"x.exe": b"MZ"}, "-pInv-2026!", "-mhe=on")
    found = inventory_of(TOLD, data)
    assert opened(found) == {"x.exe": b"MZ"} and found.findings == []


def test_damage_under_the_right_password_leaves_the_member_locked_and_known_by_name():
    # Without a password check value, damage and a wrong password look alike.
    data = bytearray(seven_zip({"Invoice.pdf": executable() * 20}, "-pInv-2026!",
                               "-m0=Copy"))
    data[32 + 100] ^= 0xFF                     # in the packed (encrypted) stream
    found = inventory_of(TOLD, bytes(data))
    assert found.decrypted == []
    assert [f.problem for f in found.findings] == [Problem.LOCKED]
    assert [(f.path[-1], f.opened) for f in found.files if f.encrypted] == [
        ("Invoice.pdf", False)]


def test_a_key_derivation_too_costly_to_try_is_refused():
    lock = sevenzipcrypt.lock(bytes((0x40 | 19, 0x0F)) + bytes(16))
    assert lock.rounds_log == 19 and len(sevenzipcrypt.key(lock, "x")) == 32
    with pytest.raises(Unsupported, match="too costly"):
        sevenzipcrypt.lock(bytes((0x40 | 30, 0x0F)) + bytes(16))
    with pytest.raises(Unreadable):
        sevenzipcrypt.lock(bytes((0xC0 | 19, 0xFF)) + bytes(4))


def test_password_searches_are_bounded_by_the_messages_limit():
    data = seven_zip(FILES, "-pInv-2026!")
    found = inventory_of(TOLD, data, Limits(max_encrypted_tries=0))
    assert found.decrypted == []
    assert {f.detail for f in found.findings} == {
        "encrypted, not tried: the message's limit on password searches is reached"}


def test_one_key_serves_every_folder_and_derivations_are_bounded_per_message():
    # Each folder of a non-solid archive has its own IV but the key is the same: one
    # derivation opens them all.
    data = seven_zip(FILES, "-pInv-2026!", "-ms=off")
    found = inventory_of(TOLD, data, Limits(max_key_derivations=1))
    assert opened(found) == FILES
    # Past the message's derivations (each costs 0.1 s), archives stay shut untried.
    message = parse_message(mail("encrypted", TOLD, [(f"{n}.7z", data) for n in range(3)]))
    found = inventory(message, Limits(max_key_derivations=2))
    assert {path[0] for path, _ in found.decrypted} == {"0.7z"}
    assert {f.detail for f in found.problems(Problem.LOCKED)} == {
        "encrypted, not tried: the message's limit on password searches is reached"}
