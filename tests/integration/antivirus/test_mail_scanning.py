"""Viruses and unwanted attachments through the real gateway, a real clamd and a real
internal Postfix (FAQ: Antivirus Capabilities)."""

from __future__ import annotations

import base64
import lzma
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.integration.antivirus.conftest import delivered, send, unique
from tests.support.attachments import (
    WORD_MACROS,
    aes_zip,
    arj_archive,
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
    qpdf_rewrite,
    rar3,
    rar3_ppmd_block,
    rar5,
    rtf_document,
    seven_zip,
    szdd_file,
    tnef_stream,
    two_tree_image,
    udf_image,
    uuencoded,
    zip_bomb_42,
    zip_of,
    zipcrypto_zip,
)
from tests.support.clamd import (
    EICAR,
    EICAR_NAME,
    HASHED,
    HASHED_NAME,
    WORM_MARKER,
    WORM_NAME,
)

pytestmark = pytest.mark.antivirus


def archived(gateway, subject: str) -> dict:
    [entry] = gateway.archive(subject=subject)
    return entry


def assert_rejected(gateway, world, subject: str, reply: tuple[int, str], reason: str) -> None:
    """Refused with 554 5.7.1 naming the reason, never delivered, archived and logged."""
    code, text = reply
    assert code == 554, text
    assert text.startswith(f"5.7.1 Rejected {reason}"), text
    assert delivered(world.internal, subject) == []
    entry = archived(gateway, subject)
    assert entry["verdict"] == "reject" and entry["reason"].startswith(reason)
    assert any(f"Rejected {reason}" in line and subject in line
               for line in gateway.decision_log())


def test_eicar_is_rejected_naming_the_virus(av_world, gateway):
    subject = unique("eicar plain")
    reply = send(gateway, mail(subject, attachments=[("eicar.com.txt", EICAR)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {EICAR_NAME}")


def test_eicar_in_a_zip_is_rejected_naming_the_virus(av_world, gateway):
    subject = unique("eicar zip")
    reply = send(gateway, mail(subject, attachments=[("report.zip",
                                                      zip_of({"report.txt": EICAR}))]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {EICAR_NAME}")


def test_worm_in_a_zipcrypto_zip_with_the_password_in_the_body_is_rejected(av_world, gateway):
    # The Bagle-zippwd pattern: clamd alone sees only "an encrypted zip"; the password
    # in the text opens it and the worm inside is named.
    subject = unique("price list")
    archive = zipcrypto_zip({"price.txt": b"prices " + WORM_MARKER + b" more"}, "34512")
    body = "Hello, here is the new price list.\nPassword for archive: 34512\n"
    reply = send(gateway, mail(subject, body, [("price.zip", archive)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {WORM_NAME}")


def test_eicar_in_an_aes_zip_with_the_password_in_the_body_is_rejected(av_world, gateway):
    subject = unique("aes invoice")
    archive = aes_zip({"invoice.txt": EICAR}, "Inv-2024!")
    body = "Your invoice is attached. The password is 'Inv-2024!'.\n"
    reply = send(gateway, mail(subject, body, [("invoice.zip", archive)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {EICAR_NAME}")


@pytest.mark.parametrize("pack", [
    lambda files: rar5(files, compressed=frozenset(files), filters={"Invoice.pdf": "e8e9"},
                       encrypted=frozenset(files), encrypted_names=True, password="Rar-2026!"),
    lambda files: rar3(files, compressed=frozenset(files), filters={"Invoice.pdf": "e8e9"},
                       encrypted=frozenset(files), password="Rar-2026!")],
    ids=["rar5 names too", "rar3"])
def test_a_virus_in_an_encrypted_rar_with_the_password_in_the_body_is_rejected(
        av_world, gateway, pack):
    # WinRAR's own encryption: clamd has no RAR reader here and no password; the
    # inventory opens it with the one in the text and hands it over.
    subject = unique("encrypted rar invoice")
    archive = pack({"notes.txt": b"see the invoice", "Invoice.pdf": HASHED})
    body = "The invoice is in the protected archive. Password: Rar-2026!\n"
    reply = send(gateway, mail(subject, body, [("Invoice.rar", archive)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {HASHED_NAME}")
    # Without the password it stays shut, scored as an encrypted archive.
    subject = unique("encrypted rar, no password")
    assert send(gateway, mail(subject, "See attached.\n", [("Invoice.rar", archive)]))[0] == 250
    names = {s["name"] for s in archived(gateway, subject)["symbols"]}
    assert "ENCRYPTED_ARCHIVE" in names, names


def test_a_virus_in_an_encrypted_7z_with_the_password_in_the_body_is_rejected(av_world, gateway):
    # 7-Zip's AES-256, names encrypted too: clamd cannot decrypt it; the inventory opens
    # it with the password in the text and hands the files over.
    subject = unique("encrypted 7z invoice")
    archive = seven_zip({"notes.txt": b"see the invoice", "Invoice.pdf": HASHED},
                        "-p7z-Inv-2026", "-mhe=on")
    body = "Your invoice (protected archive). Password: 7z-Inv-2026\n"
    reply = send(gateway, mail(subject, body, [("Invoice.7z", archive)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {HASHED_NAME}")


def test_a_password_protected_pdf_is_opened_with_the_password_from_the_body(av_world, gateway):
    # clamd opens a PDF only when its user password is empty: the file in this one is
    # found because the inventory opens it and hands what it decrypted over.
    subject = unique("protected statement")
    document = qpdf_rewrite(pdf_document(embedded={"Statement.txt": HASHED}), "--encrypt",
                            "Stmt-2026", "owner", "256", "--")
    body = "Your statement is attached, password: Stmt-2026\n"
    reply = send(gateway, mail(subject, body, [("Statement.pdf", document)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {HASHED_NAME}")
    # Without the password it stays shut, scored as an encrypted archive would be.
    subject = unique("protected statement, no password")
    clean = qpdf_rewrite(pdf_document(embedded={"Statement.txt": b"fine"}), "--encrypt",
                         "Stmt-2026", "owner", "256", "--")
    assert send(gateway, mail(subject, "See attached.\n", [("Statement.pdf", clean)]))[0] == 250
    names = {s["name"] for s in archived(gateway, subject)["symbols"]}
    assert "ENCRYPTED_ARCHIVE" in names, names


def test_an_encrypted_office_document_is_opened_with_the_password_from_the_body(
        av_world, gateway):
    # The Emotet-era pattern: a password-protected document and the password in the text.
    subject = unique("protected invoice")
    document = encrypted_office({"word/document.xml": b"<w:document/>",
                                 "word/embeddings/Invoice.txt": EICAR}, "Inv-2026!")
    body = "The document is protected for your privacy. Password: Inv-2026!\n"
    reply = send(gateway, mail(subject, body, [("Invoice.docx", document)]))
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {EICAR_NAME}")
    # A clean one opened that way is delivered without an encrypted-content score; one
    # whose password is not in the message is scored as locked, like an encrypted zip.
    clean = encrypted_office({"word/document.xml": b"<w:document/>"}, "Inv-2026!")
    for told, symbols_expected in ((True, set()), (False, {"ENCRYPTED_ARCHIVE"})):
        subject = unique(f"protected clean {told}")
        text = body if told else "The password follows by phone.\n"
        assert send(gateway, mail(subject, text, [("Invoice.docx", clean)]))[0] == 250
        names = {s["name"] for s in archived(gateway, subject)["symbols"]}
        assert names & {"ENCRYPTED_ARCHIVE"} == symbols_expected, names


WORM_FILE = b"MZ" + bytes(300) + WORM_MARKER + bytes(300)


@pytest.mark.parametrize(("name", "make"), [
    ("update.tx_", lambda: szdd_file(WORM_FILE)),
    # clamd refuses SZDD headers that keep the name's last character (compress -r).
    ("update.tx_", lambda: szdd_file(WORM_FILE, "e")),
    # clamd reads BinHex only when its header line starts the file ...
    ("update.hqx", lambda: b"\r\n" + binhex_text("update.txt", WORM_FILE).replace(
        b"(This file must be converted; you knew that already.)",
        b"(This file must be converted with BinHex 4.0)")),
    # ... and objects in RTF when a space, not a line break, ends \objdata.
    ("update.rtf", lambda: rtf_document([("Package", package_native("update.txt",
                                                                       WORM_FILE))])),
    ("update.rtf", lambda: rtf_document([("Package", package_native("update.txt",
                                                                       WORM_FILE))],
                                        obfuscate=True)),
    # ... and 7z folders by the LZMA SDK's coders only.
    ("update.7z", lambda: seven_zip({"update.txt": WORM_FILE}, "-m0=Deflate")),
    ("update.7z", lambda: seven_zip({"update.txt": WORM_FILE}, "-m0=BZip2")),
    ("update.7z", lambda: seven_zip({"update.txt": WORM_FILE}, "-m0=Deflate64")),
    ("update.zip", lambda: zip_of({"update.txt": WORM_FILE}, zipfile.ZIP_LZMA)),
    # Stored files it does not extract: a hash signature (as most real ones are) needs
    # the file itself, not its bytes somewhere in the archive.
    ("update.lzh", lambda: lzh_archive({"update.com": HASHED}, level=2)),
    ("update.rar", lambda: rar5({"update.com": HASHED})),         # no unrar: no RAR at all
    # ... nor packed ones: RAR 5's compression, with the E8E9 filter WinRAR gives every
    # executable, under a harmless name.
    ("update.rar", lambda: rar5({"notes.txt": b"see the update", "update.pdf": HASHED},
                                compressed=frozenset({"notes.txt", "update.pdf"}),
                                filters={"update.pdf": "e8e9"}, solid=True)),
    # ... and RAR 3's (WinRAR 2.9-4.x, or "RAR4" format), E8E9 through its VM program.
    ("update.rar", lambda: rar3({"notes.txt": b"see the update", "update.pdf": HASHED},
                                compressed=frozenset({"notes.txt", "update.pdf"}),
                                filters={"update.pdf": "e8e9"})),
    # ... and RAR 3's PPMd (WinRAR's "good" and "best" modes for text).
    ("update.rar", lambda: rar3({"notes.txt": b"see the update", "update.pdf": HASHED},
                                packed={"notes.txt": rar3_ppmd_block(b"see the update")[0],
                                        "update.pdf": rar3_ppmd_block(HASHED)[0]})),
    ("update.img", lambda: udf_image({"update.com": HASHED})),    # ISO 9660 trees only
    # The old .lzma format (xz and gzip it unpacks).
    ("update.txt.lzma", lambda: lzma.compress(WORM_FILE, format=lzma.FORMAT_ALONE)),
], ids=["compress", "compress -r", "binhex", "rtf", "rtf obfuscated", "7z deflate",
        "7z bzip2", "7z deflate64", "zip lzma", "lzh stored", "rar stored", "rar packed",
        "rar3 packed", "rar3 ppmd", "udf", "lzma alone"])
def test_a_virus_in_a_format_clamd_reads_poorly_is_rejected(av_world, gateway, name, make):
    # The inventory opens these itself and hands what it found to clamd.
    subject = unique(f"update files {name}")
    data = make()
    reply = send(gateway, mail(subject, attachments=[(name, data)]))
    # LZH, RAR and the disc image carry HASHED (stored, or packed by RAR), the others the worm.
    virus = HASHED_NAME if name in ("update.lzh", "update.rar", "update.img") else WORM_NAME
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {virus}")


@pytest.mark.parametrize("way", ["begin-base64", "in a base64 body"])
def test_a_worm_uuencoded_into_the_text_is_rejected(av_world, gateway, way):
    # clamd finds plain uuencode in a plain body itself, but not these two.
    subject = unique(f"uuencoded {way}")
    text = "Here is the update.\n" + uuencoded("update.txt", WORM_FILE,
                                                base64=way == "begin-base64")
    message = mail(subject, text)
    if way == "in a base64 body":
        head, _, _ = message.partition(b"\r\n\r\n")
        head = re.sub(rb"Content-Transfer-Encoding: [^\r]*", b"Content-Transfer-Encoding: base64",
                      head)
        message = head + b"\r\n\r\n" + base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
    reply = send(gateway, message)
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {WORM_NAME}")


def test_white_listed_senders_are_still_rejected_for_viruses(av_world, gateway):
    gateway.cli("list", "white", "add", "friend@trusted.test")
    time.sleep(1.1)   # the gateway re-reads the directory at most once a second
    subject = unique("white listed virus")
    reply = send(gateway, mail(subject, attachments=[("x.zip", zip_of({"x": EICAR}))],
                               sender="friend@trusted.test"), sender="friend@trusted.test")
    assert_rejected(gateway, av_world, subject, reply, f"Virus: {EICAR_NAME}")


@pytest.mark.parametrize(("name", "data", "why"), [
    ("setup.exe", executable(), r"setup\.exe \(blocked type \.exe\)"),
    ("invoice.pdf.exe", executable(), r"invoice\.pdf\.exe \(blocked type \.exe, double "
                                      r"extension \.pdf\.exe\)"),
    ("invoice.pdf", executable(), r"invoice\.pdf \(exe content under the name invoice\.pdf\)"),
    ("docs.zip", zip_of({"docs/readme.txt": b"hi", "docs/tool.scr": b"x"}),
     r"docs\.zip > tool\.scr \(blocked type \.scr\)"),
    ("photo\u202egpj.exe", executable(), r"photo\?gpj\.exe \(blocked type \.exe, invisible"),
    # Packed by RAR 5's own compression: decoded here, and the name shows.
    ("scans.rar", rar5({"scans/page1.jpg": b"x", "scans/viewer.exe": b"x" * 300},
                       compressed=frozenset({"scans/viewer.exe"})),
     r"scans\.rar > viewer\.exe \(blocked type \.exe\)"),
    # Packaged into a Word document (an OLE Package object): the same.
    ("letter.doc", ole_document(["WordDocument"], streams={
        "ObjectPool/_1/\x01Ole10Native": ole_package("setup.exe", executable())}),
     r"letter\.doc > setup\.exe \(blocked type \.exe\)"),
    # Wrapped by Outlook into winmail.dat (TNEF): the long name inside counts.
    ("winmail.dat", tnef_stream({"Invoice 2026.js": b"WScript.Shell"}),
     r"winmail\.dat > Invoice 2026\.js \(blocked type \.js\)"),
    # Embedded in an RTF document as a Package object (Word shows an icon).
    ("order.rtf", rtf_document([("Package", package_native("order.hta", b"<script>"))],
                               obfuscate=True),
     r"order\.rtf > order\.hta \(blocked type \.hta\)"),
    # In a message attached as a file (application/octet-stream, not message/rfc822).
    ("Fwd: invoice.eml", mail("Invoice", attachments=[("invoice.scr", b"MZ" * 40)]),
     r"Fwd: invoice\.eml > invoice\.scr \(blocked type \.scr\)"),
    # In the archive formats malware campaigns pick because filters rarely list them.
    ("Order.arj", arj_archive({"Order/Order.pdf.exe": executable()}),
     r"Order\.arj > Order\.pdf\.exe \(blocked type \.exe"),
    ("Order.lzh", lzh_archive({"Order.bat": b"@echo off"}, level=2),
     r"Order\.lzh > Order\.bat \(blocked type \.bat\)"),
    ("Order.zip", seven_zip({"Order.jpg": executable()}, "-tzip", "-mm=Deflate64"),
     r"Order\.zip > Order\.jpg \(exe content under the name Order\.jpg\)"),
    ("Order.cpio", cpio_archive({"Order.jpg": executable()}, "newc"),
     r"Order\.cpio > Order\.jpg \(exe content under the name Order\.jpg\)"),
    # Compressed by compress.exe, BinHex-encoded: judged as the file they hold.
    ("Setup.ex_", szdd_file(b"@echo off\r\nformat c:\r\n" * 20, "e"),
     r"Setup\.ex_ > Setup\.exe \(blocked type \.exe\)"),
    ("Photos.hqx", binhex_text("Photos.scr", executable()),
     r"Photos\.hqx > Photos\.scr \(blocked type \.scr\)"),
    # Embedded in a PDF: judged like an archive member.
    ("Statement.pdf", pdf_document(embedded={"Statement.docx": executable()}),
     r"Statement\.pdf > Statement\.docx \(exe content under the name Statement\.docx\)"),
    # Embedded in a OneNote page behind a "double-click to view" picture: by the name
    # OneNote gives it, and by its bytes.
    # Windows shell files that open a remote share in Explorer, as 2023 campaigns used.
    ("Documents.search-ms", b'<?xml version="1.0"?><searchConnectorDescription/>',
     r"Documents\.search-ms \(blocked type \.search-ms\)"),
    # An ACE archive (nothing here reads one) under a zip's name.
    ("Invoice.zip", b"\x4e\x96\x31\x00\x00\x00\x00**ACE**\x14\x14\x02" + bytes(40),
     r"Invoice\.zip \(ace content under the name Invoice\.zip\)"),
    ("Notes.one", onenote_section({"Open Document.hta": b"<script>Run()</script>"}),
     r"Notes\.one > Open Document\.hta \(blocked type \.hta\)"),
    ("Notes.one", onenote_section({"scan.png": executable()}),
     r"Notes\.one > \(embedded file 1\) \(exe content under the name \(embedded file 1\)\)"),
])
def test_blocked_attachments_are_rejected_naming_the_file(av_world, gateway, name, data, why):
    subject = unique("blocked attachment")
    code, text = send(gateway, mail(subject, attachments=[(name, data)]))
    assert code == 554 and re.match(rf"5\.7\.1 Rejected Attachment: {why}", text), text
    assert delivered(av_world.internal, subject) == []
    assert archived(gateway, subject)["verdict"] == "reject"


def test_an_executable_uuencoded_into_the_text_is_rejected(av_world, gateway):
    # No attachment at all as MIME counts them; Outlook shows the block as one.
    subject = unique("uuencoded")
    body = "Your statement:\n\n" + uuencoded("Statement.pdf.exe", executable()) + "\nThanks\n"
    code, text = send(gateway, mail(subject, body))
    assert code == 554 and "Statement.pdf.exe (blocked type .exe" in text, text
    assert delivered(av_world.internal, subject) == []


def test_a_blocked_type_inside_a_7z_is_rejected_and_an_encrypted_listing_is_not_waved_through(
        av_world, gateway):
    subject = unique("7z attachment")
    archive = seven_zip({"photos/beach.jpg": b"\xff\xd8\xff" * 100,
                         "photos/slideshow.scr": b"x" * 300})
    code, text = send(gateway, mail(subject, attachments=[("photos.7z", archive)]))
    assert (code, text) == (554, "5.7.1 Rejected Attachment: photos.7z > slideshow.scr "
                                 "(blocked type .scr)")
    assert delivered(av_world.internal, subject) == []
    # Its members are unpacked (LZMA2, 7-Zip's default): an executable called a PDF is
    # caught by what it is.
    subject = unique("7z disguised")
    archive = seven_zip({"scans/invoice.pdf": executable()})
    code, text = send(gateway, mail(subject, attachments=[("scans.7z", archive)]))
    assert (code, text) == (554, "5.7.1 Rejected Attachment: scans.7z > invoice.pdf "
                                 "(exe content under the name invoice.pdf)")
    # Names encrypted too (7z -mhe): nothing can be checked, so it is scored as locked.
    subject = unique("7z names encrypted")
    hidden = seven_zip({"invoice.exe": b"MZ" * 100}, "-pinvoice", "-mhe=on")
    code, _ = send(gateway, mail(subject, attachments=[("invoice.7z", hidden)]))
    assert code == 250
    assert "ENCRYPTED_ARCHIVE" in {s["name"] for s in archived(gateway, subject)["symbols"]}


def test_an_executable_in_a_cabinet_is_rejected_and_a_clean_cabinet_delivered(av_world,
                                                                              gateway):
    subject = unique("cab attachment")
    archive = gcab_cabinet({"Scans/Scan_0042.pdf": executable(), "readme.txt": b"see scans"},
                      "--zip")
    code, text = send(gateway, mail(subject, attachments=[("Scans.cab", archive)]))
    assert (code, text) == (554, "5.7.1 Rejected Attachment: Scans.cab > Scan_0042.pdf "
                                 "(exe content under the name Scan_0042.pdf)")
    assert delivered(av_world.internal, subject) == []
    subject = unique("cab clean")
    clean = gcab_cabinet({"Scans/Scan_0042.pdf": b"%PDF-1.4 scan"}, "--zip")
    assert send(gateway, mail(subject, attachments=[("Scans.cab", clean)]))[0] == 250
    assert delivered(av_world.internal, subject, timeout=10)


def test_an_executable_on_a_disc_image_is_rejected_whatever_it_is_called(av_world, gateway):
    image = iso_image({"Scans/Scan_0042.pdf": executable(), "readme.txt": b"see scans"}, "-J")
    # Disc images are blocked by name by default ...
    subject = unique("disc image attachment")
    code, text = send(gateway, mail(subject, attachments=[("Scans.img", image)]))
    assert (code, text) == (554, "5.7.1 Rejected Attachment: Scans.img (blocked type .img)")
    # ... and where the administrator allows them, what is on them is still judged.
    allowed = [e for e in _default_blocked() if e not in ("iso", "img")]
    gateway.cli("settings", "set", "blocked_extensions", ",".join(allowed))
    try:
        time.sleep(1.1)
        subject = unique("disc image allowed")
        code, text = send(gateway, mail(subject, attachments=[("Scans.img", image)]))
        assert (code, text) == (554, "5.7.1 Rejected Attachment: Scans.img > Scan_0042.pdf "
                                     "(exe content under the name Scan_0042.pdf)")
        # The tree Windows shows (UDF) holds what the ISO 9660 one does not list.
        subject = unique("disc image two trees")
        hidden = two_tree_image({"readme.txt": b"see scans"}, {"Scan_0043.pdf": executable()})
        code, text = send(gateway, mail(subject, attachments=[("Scans.iso", hidden)]))
        assert (code, text) == (554, "5.7.1 Rejected Attachment: Scans.iso > Scan_0043.pdf "
                                     "(exe content under the name Scan_0043.pdf)")
        subject = unique("disc image clean")
        clean = iso_image({"Scans/Scan_0042.pdf": b"%PDF-1.4 scan"}, "-J")
        assert send(gateway, mail(subject, attachments=[("Scans.iso", clean)]))[0] == 250
    finally:
        gateway.cli("settings", "set", "blocked_extensions", ",".join(_default_blocked()))
    assert delivered(av_world.internal, subject, timeout=10)


@pytest.mark.parametrize("wrapped", [
    lambda bomb: ("42.zip", bomb),
    lambda bomb: ("42.7z", seven_zip({"42.zip": bomb})),             # LZMA2, unpacked here
    lambda bomb: ("42.cab", handmade_cabinet({"42.zip": bomb})),      # MSZIP, unpacked here
], ids=["zip", "in 7z", "in cab"])
def test_a_42_zip_style_bomb_is_refused_and_the_gateway_stays_small(av_world, gateway,
                                                                    wrapped):
    subject = unique("bomb")
    name, attachment = wrapped(zip_bomb_42())
    reply = send(gateway, mail(subject, attachments=[(name, attachment)]))
    assert_rejected(gateway, av_world, subject, reply, f"Attachment: {name}")
    assert "archive bomb" in reply[1]
    assert peak_rss(gateway.process.pid) < 300 * 1024 * 1024
    send_clean_zip(av_world, gateway)   # ... and it goes on serving


def test_a_deeply_nested_archive_is_refused(av_world, gateway):
    subject = unique("deep")
    reply = send(gateway, mail(subject, attachments=[("deep.zip",
                                                      nested_zip(20, {"a.txt": b"a"}))]))
    assert_rejected(gateway, av_world, subject, reply, "Attachment: deep.zip")
    assert "nested more than 4 deep" in reply[1]


def test_clean_mail_with_an_ordinary_zip_is_delivered(av_world, gateway):
    send_clean_zip(av_world, gateway)


def send_clean_zip(av_world, gateway) -> None:
    subject = unique("clean zip")
    archive = zip_of({"minutes.txt": b"Minutes of the meeting.\n" * 200,
                      "nested/photos.zip": zip_of({"a.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 500})})
    code, text = send(gateway, mail(subject, attachments=[("minutes.zip", archive)]))
    assert code == 250, text
    [message] = delivered(av_world.internal, subject, timeout=20)
    assert message["X-Spam-Status"].startswith("No,")
    assert "CLAMAV" not in message["X-Spam-Status"]


def _macro_workbook() -> bytes:
    return zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<w/>",
                   "xl/vbaProject.bin": ole_document(WORD_MACROS)})


@pytest.mark.parametrize(("attachment", "symbol", "setting", "reason"), [
    (("contract.zip", zipcrypto_zip({"contract.txt": b"terms"}, "told-you-by-phone")),
     "ENCRYPTED_ARCHIVE", ("reject_encrypted_archives", "on", "off"),
     "Attachment: encrypted contract.zip > contract.txt"),
    (("Q3.xlsx", _macro_workbook()), "OFFICE_MACROS", ("office_macros", "reject", "score"),
     "Attachment: Q3.xlsx (Office document with macros)"),
], ids=["encrypted archive", "office macros"])
def test_doubtful_attachments_are_scored_by_default_and_rejected_per_setting(
        av_world, gateway, attachment, symbol, setting, reason):
    first = unique(symbol)
    assert send(gateway, mail(first, attachments=[attachment]))[0] == 250
    [message] = delivered(av_world.internal, first, timeout=20)
    assert f"{symbol}=" in message["X-Spam-Status"].replace("\n", "").replace(" ", "")

    name, reject, default = setting
    gateway.cli("settings", "set", name, reject)
    try:
        time.sleep(1.1)
        second = unique(symbol)
        reply = send(gateway, mail(second, attachments=[attachment]))
        assert_rejected(gateway, av_world, second, reply, reason)
    finally:
        gateway.cli("settings", "set", name, default)


def test_a_mailed_login_page_is_delivered_tagged(av_world, gateway):
    page = (b"<!DOCTYPE html><html><body><form action='https://collect.example.net/p'>"
            b"<input type=email name=u><input type=password name=p></form></body></html>")
    subject = unique("login page")
    assert send(gateway, mail(subject, attachments=[("Invoice.html", page)]))[0] == 250
    [message] = delivered(av_world.internal, subject, timeout=20)
    assert "ATTACHMENT_ACTIVE_CONTENT=" in message["X-Spam-Status"].replace("\n", "").replace(
        " ", "")
    assert str(message["Subject"]).startswith("[SPAM?]")


def test_the_blocked_list_is_the_administrators_setting(av_world, gateway):
    gateway.cli("settings", "set", "blocked_extensions", "exe, .docm")
    try:
        time.sleep(1.1)
        subject = unique("macro document")
        reply = send(gateway, mail(subject, attachments=[("Q3.DOCM", b"PK\x03\x04 macro")]))
        assert_rejected(gateway, av_world, subject, reply,
                        "Attachment: Q3.DOCM (blocked type .docm)")
        allowed = unique("script now allowed")
        assert send(gateway, mail(allowed, attachments=[("tool.js", b"alert(1)")]))[0] == 250
    finally:
        gateway.cli("settings", "set", "blocked_extensions",
                    ",".join(_default_blocked()))


def _default_blocked() -> tuple[str, ...]:
    from portcullis.antivirus.filetypes import DEFAULT_BLOCKED_EXTENSIONS

    return DEFAULT_BLOCKED_EXTENSIONS


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
