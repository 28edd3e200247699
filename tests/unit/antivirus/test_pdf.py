"""What attached PDFs carry: embedded files, actions that run code, links."""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import zlib

import pytest

from portcullis.antivirus import pdf, pdfcrypt
from portcullis.antivirus.archives import Limits, Problem, inventory
from portcullis.mime import parse_message
from tests.support.attachments import (
    PDF_SCRIPT_TRIGGERS,
    executable,
    mail,
    pdf_document,
    qpdf_rewrite,
    qr_image,
    zip_of,
)

pytestmark = pytest.mark.antivirus

EVERYTHING = {"links": ("https://phish.example.net/o365", "http://fine.example.org/"),
              "embedded": {"Invoice.exe": executable(), "notes.txt": b"see above"},
              "open_javascript": "app.launchURL('https://x.example.net/');",
              "launch": "cmd.exe"}


def qpdf_accepts(document: bytes) -> bool:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
        file.write(document)
        file.flush()
        return subprocess.run(["qpdf", "--check", file.name], capture_output=True).returncode == 0


def found(document: bytes) -> pdf.Contents:
    return pdf.contents(document, budget=64 * 2**20, read=2**20)


PACKINGS = pytest.mark.parametrize("pack", [
    lambda d: d,                                                  # as written here
    lambda d: qpdf_rewrite(d, "--object-streams=generate"),       # dictionaries compressed
    lambda d: qpdf_rewrite(d, "--qdf", "--object-streams=disable"),
], ids=["plain", "object streams", "qdf"])


@PACKINGS
def test_embedded_files_actions_and_links_are_found_however_the_pdf_is_packed(pack):
    document = pack(pdf_document(**EVERYTHING))
    assert qpdf_accepts(document)
    contents = found(document)
    assert {(e.name, e.data) for e in contents.embedded} == set(EVERYTHING["embedded"].items())
    assert contents.launches and contents.javascript_on_open
    assert set(contents.links) == set(EVERYTHING["links"])


@pytest.mark.parametrize("filters", [
    (), ("ASCIIHexDecode",), ("ASCII85Decode",), ("RunLengthDecode",),
    ("ASCIIHexDecode", "FlateDecode"), ("ASCII85Decode", "FlateDecode"),
    ("FlateDecode", "ASCII85Decode"),
], ids=["none", "hex", "ascii85", "run length", "hex+flate", "ascii85+flate",
        "flate+ascii85"])
def test_embedded_files_are_read_through_their_filters(filters):
    # An executable hex-encoded into a PDF, under a harmless name, is still one.
    files = {"statement.pdf": executable(), "notes.txt": b"\0\0\0\0 z ~> see " * 300}
    document = pdf_document(embedded=files, filters=filters)
    assert qpdf_accepts(document)                         # qpdf decodes each stream
    assert {e.name: e.data for e in found(document).embedded} == files
    result = inventory(parse_message(mail("x", attachments=[("a.pdf", document)])))
    assert ("a.pdf > statement.pdf", "exe") in {(f.shown, f.detected) for f in result.files}


def test_a_filter_not_read_here_leaves_the_raw_bytes_and_damage_leaves_nothing():
    document = pdf_document(embedded={"a.bin": b"abc"}, filters=("ASCIIHexDecode",))
    lzw = document.replace(b"[/ASCIIHexDecode]", b"[/LZWDecode]     ")
    assert found(lzw).embedded[0].data == b"616263>"
    damaged = pdf_document(embedded={"a.bin": b"abcd"}, filters=("ASCII85Decode",))
    damaged = damaged.replace(b"@:E_W", b"vvvvv")                    # not base-85
    assert found(damaged).embedded[0].data == b""
    # Each "z" is four zero bytes: only what the limit needs is decoded.
    zeros = b"%PDF-1.7\n1 0 obj << /Type /EmbeddedFile /Filter /A85 >>\nstream\n" + \
        b"z" * 9_000_000 + b"~>\nendstream\nendobj\n"
    assert pdf.contents(zeros, budget=2**26, read=2**20).embedded[0].data == bytes(2**20)


def test_names_hidden_behind_escapes_and_strings_in_hex_are_read():
    document = pdf_document(links=("https://a.example.net/",), open_javascript="x()")
    document = document.replace(b"/JavaScript", b"/J#61vaScr#69pt").replace(
        b"/URI (https://a.example.net/)", b"/URI <68747470733a2f2f622e6578616d706c652e6e65742f>")
    contents = found(document)
    assert contents.javascript_on_open and contents.links == ["https://b.example.net/"]


@PACKINGS
@pytest.mark.parametrize("trigger", PDF_SCRIPT_TRIGGERS)
def test_javascript_is_found_whatever_runs_it_on_opening(trigger, pack):
    document = pack(pdf_document(open_javascript="app.launchURL('https://x.example.net/')",
                                 trigger=trigger,
                                 open_page=trigger in ("names", "page", "annotation")))
    assert qpdf_accepts(document)
    assert found(document).javascript_on_open, PDF_SCRIPT_TRIGGERS[trigger]


@PACKINGS
def test_a_form_that_checks_its_fields_and_opens_on_its_first_page_runs_nothing_on_opening(
        pack):
    # Keystroke and validation scripts on a field are everyday form logic; the /OpenAction
    # is a destination (show page 1, fit), not an action.  Both together used to be
    # flagged: "JavaScript somewhere and an /OpenAction somewhere".
    document = pack(pdf_document(form_javascript="AFNumber_Keystroke(2, 0)", open_page=True))
    assert qpdf_accepts(document)
    assert not found(document).javascript_on_open


@PACKINGS
def test_a_login_form_is_found_with_where_it_sends_what_is_typed(pack):
    document = pack(pdf_document(login_form="https://phish.example.net/collect.php"))
    contents = found(document)
    assert contents.password_field
    assert contents.form_targets == ["https://phish.example.net/collect.php"]
    result = inventory(parse_message(mail("x", attachments=[("Secure.pdf", document)])))
    assert [(f.shown, f.detail) for f in result.problems(Problem.ACTIVE)] == [
        ("Secure.pdf", "a PDF form asking for a password (sent to phish.example.net)")]
    assert result.links == ["https://phish.example.net/collect.php"]    # for the blocklists


def test_a_form_without_a_password_field_is_not_a_login_form_but_its_target_is_a_link():
    document = pdf_document(login_form="https://forms.example.org/survey").replace(
        b"/Ff 8192", b"/Ff 4096")                        # bit 13: multi-line, not password
    contents = found(document)
    assert not contents.password_field
    assert contents.form_targets == ["https://forms.example.org/survey"]
    # The flag on a button or a choice field is no password field either.
    button = pdf_document(login_form="x").replace(b"/FT /Tx /T (pass)", b"/FT /Btn /T (p)")
    assert not found(button).password_field


def test_a_plain_pdf_carries_nothing():
    contents = found(pdf_document())
    assert contents == pdf.Contents(unpacked=0)


@pytest.mark.parametrize(("document", "runs_script"), [
    # Actions that go to each other forever.
    (b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction 2 0 R >> endobj\n"
    b"2 0 obj << /S /GoTo /D [0 /Fit] /Next 3 0 R >> endobj\n"
    b"3 0 obj << /S /GoTo /D [0 /Fit] /Next [2 0 R 3 0 R] >> endobj\n"
    b"4 0 obj << /S /JavaScript /JS (x) >> endobj\n", False),
    # An object that is its own action (with a script), and a reference to itself.
    (b"%PDF-1.7\n1 0 obj << /OpenAction 1 0 R /JS 9 0 R >> endobj\n"
     b"5 0 obj << /OpenAction 6 0 R >> endobj 6 0 obj 6 0 R endobj", True),
    # Arrays nested past any reason, and a string that never ends (its ")" is escaped).
    (b"%PDF-1.7\n1 0 obj << /OpenAction " + b"[" * 200_000 + b" >> endobj\n"
     b"2 0 obj << /S /JavaScript /JS (x) >> endobj\n", False),
    (b"%PDF-1.7\n1 0 obj << /AA << /O << /S /GoTo (\\) /JS" + b" 1" * 300_000, False),
], ids=["loop", "self", "deep", "unended"])
def test_hostile_action_structures_are_followed_within_bounds(document, runs_script):
    assert found(document).javascript_on_open is runs_script


def test_a_trigger_too_big_or_too_full_to_follow_counts_as_running_the_documents_script():
    script = b"2 0 obj << /S /JavaScript /JS (x) >> endobj\n"
    padded = b"1 0 obj << /Type /Catalog /Pad (" + b"a" * pdf.MAX_PARSED + \
        b") /OpenAction 2 0 R >> endobj\n"
    full = b"1 0 obj << /Type /Catalog /Pad [" + b"<<>>" * (pdf.MAX_INNER_DICTIONARIES + 1) + \
        b"] /OpenAction 2 0 R >> endobj\n"
    for catalog in (padded, full):
        assert found(b"%PDF-1.7\n" + catalog + script).javascript_on_open
        assert not found(b"%PDF-1.7\n" + catalog).javascript_on_open     # no script at all


def test_the_inventory_judges_embedded_files_and_flags_active_pdfs():
    result = inventory(parse_message(mail("x", attachments=[
        ("Statement.pdf", pdf_document(**EVERYTHING))])))
    shown = {f.shown: f.detected for f in result.files}
    assert shown["Statement.pdf > Invoice.exe"] == "exe"
    assert [(f.shown, f.detail) for f in result.problems(Problem.ACTIVE)] == [
        ("Statement.pdf", "a PDF that launches a program")]
    assert set(result.links) == set(EVERYTHING["links"])
    # ... and inside an archive, where the PDF is read whole.
    nested = inventory(parse_message(mail("x", attachments=[
        ("docs.zip", zip_of({"a.pdf": pdf_document(embedded={"b.scr": executable()})}))])))
    assert ("docs.zip > a.pdf > b.scr", "exe") in {(f.shown, f.detected) for f in nested.files}


def test_an_embedded_file_that_inflates_without_end_stops_at_the_budget():
    bomb = pdf_document(embedded={"zeros.bin": b"\0" * (20 * 2**20)})
    result = inventory(parse_message(mail("x", attachments=[("big.pdf", bomb)])),
                       Limits(max_unpacked=4 * 2**20, max_member=2**20))
    assert result.unpacked <= 4 * 2**20
    assert found(bomb).embedded[0].size == 2**20            # read as far as asked


@pytest.mark.parametrize("damage", [
    lambda d: d[:len(d) // 2],
    lambda d: d.replace(b"stream\n", b"stream\n\xff\xff"),     # deflate data damaged
    lambda d: d.replace(b"endobj", b""),                         # objects never end
    lambda d: b"%PDF-1.7\n" + b"1 0 obj << /URI (" + b"(" * 100_000,
    lambda d: b"%PDF-1.4\n" + b"9 0 obj <</Type/ObjStm/Filter/FlateDecode/First 99999>>"
              b"stream\n" + zlib.compress(b"1 0 2 x" * 1000) + b"\nendstream endobj",
])
def test_damaged_pdfs_are_read_as_far_as_they_go_without_error(damage):
    document = damage(pdf_document(**EVERYTHING))
    contents = found(document)
    assert all(len(link) <= pdf.MAX_STRING for link in contents.links)
    inventory(parse_message(mail("x", attachments=[("d.pdf", document)])))


def test_a_file_specification_whose_bytes_are_missing_is_still_judged_by_name():
    document = pdf_document(embedded={"payload.exe": b"MZ"})
    start = document.index(b"/Type /EmbeddedFile")
    document = document[:start] + b"/Type /Removed" + document[start + 19:]
    assert found(document).named_only == ["payload.exe"]
    result = inventory(parse_message(mail("x", attachments=[("a.pdf", document)])))
    assert ("a.pdf > payload.exe", False) in {(f.shown, f.opened) for f in result.files}


# qpdf's ways of encrypting (its options before the user password, after the key length).
ENCRYPTIONS = pytest.mark.parametrize(("before", "bits", "after", "description"), [
    (("--allow-weak-crypto",), "40", (), "RC4 40-bit"),
    (("--allow-weak-crypto",), "128", ("--use-aes=n",), "RC4 128-bit"),
    ((), "128", ("--use-aes=y",), "AES-128"),
    (("--object-streams=generate",), "128", ("--use-aes=y",), "AES-128"),
    ((), "256", ("--force-R5",), "AES-256"),
    ((), "256", (), "AES-256"),
    (("--object-streams=generate",), "256", (), "AES-256"),
], ids=["rc4-40", "rc4-128", "aes-128", "aes-128 object streams", "aes-256 r5", "aes-256 r6",
        "aes-256 object streams"])


def encrypted(document: bytes, user: str, before: tuple[str, ...], bits: str,
              after: tuple[str, ...]) -> bytes:
    return qpdf_rewrite(document, *before, "--encrypt", user, "Owner-9", bits, *after, "--")


@ENCRYPTIONS
def test_an_encrypted_pdf_anyone_may_open_is_read_as_if_it_were_not(before, bits, after,
                                                                    description):
    # Only an owner password: readers open it without asking, and its link and files are
    # hidden from whoever does not decrypt it (the point, for a phishing PDF).
    document = encrypted(pdf_document(**EVERYTHING), "", before, bits, after)
    assert b"phish.example.net" not in document
    contents = found(document)
    assert (contents.encryption, contents.locked, contents.opened_with_password) == (
        description, False, False)
    assert {(e.name, e.data) for e in contents.embedded} == set(EVERYTHING["embedded"].items())
    assert set(contents.links) == set(EVERYTHING["links"])
    assert contents.launches and contents.javascript_on_open


@ENCRYPTIONS
def test_a_password_protected_pdf_is_opened_with_a_password_from_the_message(
        before, bits, after, description):
    document = encrypted(pdf_document(**EVERYTHING), "Statement-2026", before, bits, after)
    asked = []
    contents = pdf.contents(document, budget=2**24, read=2**20,
                            passwords=lambda: asked.append(1) or ["wrong", "Statement-2026"])
    assert (contents.locked, contents.opened_with_password, asked) == (False, True, [1])
    assert set(contents.links) == set(EVERYTHING["links"])
    locked = found(document)                                 # no password given
    assert (locked.encryption, locked.locked) == (description, True)
    assert locked.embedded == [] and locked.links == []     # nothing read as garbage
    # Its plain structure still shows a /Launch; dictionaries packed into (encrypted)
    # object streams do not.
    assert locked.launches == ("--object-streams=generate" not in before)


def test_the_inventory_locks_a_pdf_no_password_opens_and_scans_one_that_opens():
    document = encrypted(pdf_document(embedded={"Invoice.pdf": executable()}),
                         "Statement-2026", (), "256", ())
    shut = inventory(parse_message(mail("x", attachments=[("Statement.pdf", document)])))
    assert [(f.shown, f.detail) for f in shut.problems(Problem.LOCKED)] == [
        ("Statement.pdf", "encrypted PDF (AES-256), no password found in the message")]
    opened = inventory(parse_message(mail("x", "Your statement, password: Statement-2026",
                                          [("Statement.pdf", document)])))
    assert opened.findings == []
    assert [(f.shown, f.detected, f.encrypted) for f in opened.files] == [
        ("Statement.pdf", "pdf", False), ("Statement.pdf > Invoice.pdf", "exe", True)]
    # clamd cannot open it with that password: what was decrypted goes to it.
    assert [path for path, _ in opened.decrypted] == [("Statement.pdf", "Invoice.pdf")]
    # One anyone may open, clamd opens itself.
    free = encrypted(pdf_document(embedded={"Invoice.pdf": executable()}), "", (), "256", ())
    assert inventory(parse_message(mail("x", attachments=[("s.pdf", free)]))).decrypted == []


def test_a_pdf_encrypted_for_certificates_is_locked_as_not_opened_here():
    document = pdf_document(links=("https://x.example.net/",)).replace(
        b"trailer\n<<", b"trailer\n<< /Encrypt 99 0 R") + (
        b"99 0 obj << /Filter /Adobe.PubSec /V 4 /R 4 /SubFilter /adbe.pkcs7.s5 >> endobj\n")
    contents = found(document)
    assert (contents.encryption, contents.locked, contents.unsupported) == (
        "the Adobe.PubSec handler", True, True)
    result = inventory(parse_message(mail("x", attachments=[("c.pdf", document)])))
    assert result.problems(Problem.LOCKED)[0].detail == (
        "encrypted PDF (the Adobe.PubSec handler), cannot be opened here")


def test_mutated_encryption_dictionaries_never_raise():
    document = encrypted(pdf_document(**EVERYTHING), "", (), "256", ())
    start = document.index(b"/Filter /Standard")
    rng = random.Random(11)
    for _ in range(2000):
        mutated = bytearray(document)
        for _ in range(rng.randint(1, 6)):
            mutated[start + rng.randrange(400)] = rng.choice(b"0123456789/<>()[] RVOUPE")
        pdf.contents(bytes(mutated), budget=2**22, read=2**16, passwords=lambda: ["x"])


@pytest.mark.parametrize("kind", ["jpeg", "grey", "rgb", "bilevel"])
def test_a_qr_code_drawn_in_a_pdf_joins_its_links(kind):
    # "Scan to sign your document": the PDF's only link is a picture on its page.
    document = qpdf_rewrite(pdf_document(pictures=((kind, qr_image(
        "https://sign.phish.example.net/doc")),)), "--object-streams=generate")
    assert qpdf_accepts(document)
    assert len(found(document).pictures) == 1
    result = inventory(parse_message(mail("x", attachments=[("Contract.pdf", document)])))
    assert result.links == ["https://sign.phish.example.net/doc"]


def test_pictures_a_pdf_cannot_hand_on_are_left_and_their_number_is_bounded():
    many = pdf_document(pictures=tuple(("grey", qr_image(f"https://a{n}.example.net/"))
                                       for n in range(pdf.MAX_PICTURES + 3)))
    assert len(found(many).pictures) == pdf.MAX_PICTURES
    odd = pdf_document(pictures=(("grey", qr_image("https://a.example.net/")),)).replace(
        b"/BitsPerComponent 8", b"/BitsPerComponent 16")       # 16-bit grey: not handed on
    assert found(odd).pictures == []
    plain = pdf_document(pictures=(("grey", qr_image("https://a.example.net/")),))
    huge = re.sub(rb"/Width \d+", b"/Width 99999", plain)      # more pixels than its bytes
    assert found(huge).pictures == []


@pytest.mark.parametrize("bits", [48, 88, 120])
def test_rc4_key_lengths_openssl_does_not_take_are_read_without_error(bits):
    # PDF allows RC4 keys of 40 to 128 bits in steps of 8; OpenSSL takes only some.  (The
    # fuzzer found /Length 120 raising ValueError out of the inventory.)
    document = encrypted(pdf_document(links=("https://a.example.net/",)), "",
                         ("--allow-weak-crypto",), "128", ("--use-aes=n",))
    odd = document.replace(b"/Length 128", b"/Length %d" % bits)
    contents = found(odd)                  # keyed for 128 bits: it no longer opens
    assert (contents.encryption, contents.locked) == (f"RC4 {bits}-bit", True)


def test_rc4_in_python_is_openssls_rc4(monkeypatch):
    key, data = bytes(range(1, 17)), bytes(range(256)) * 8
    expected = pdfcrypt._rc4(key, data)                      # OpenSSL's
    monkeypatch.setattr(pdfcrypt, "rc4", lambda *_: (_ for _ in ()).throw(ValueError))
    assert pdfcrypt._rc4(key, data) == expected              # the Python one


def test_an_object_number_past_32_bits_in_an_encrypted_pdf_is_no_error():
    document = encrypted(pdf_document(links=("https://a.example.net/",)), "", (), "128",
                         ("--use-aes=y",))
    link = re.search(rb"\n(\d+) 0 obj\s*<<[^>]*/URI", document)
    assert link is not None
    renumbered = document.replace(b"\n%s 0 obj" % link.group(1), b"\n9999999999 0 obj")
    contents = found(renumbered)           # its string decrypted under another key
    assert len(contents.links) == 1 and contents.links != ["https://a.example.net/"]


def test_every_step_of_a_filter_chain_counts_against_the_budget():
    # two inflations, then RunLength's end mark first: nothing comes out of the last step
    inner = zlib.compress(zlib.compress(b"\x80" + bytes(300_000)))
    objects = b"".join(
        b"%d 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Length %d"
        b" /Filter [/FlateDecode /FlateDecode /RunLengthDecode] >>\nstream\n%s\nendstream\n"
        b"endobj\n" % (number, len(inner), inner) for number in range(1, 21))
    document = b"%PDF-1.7\n" + objects + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    contents = pdf.contents(document, budget=2_000_000, read=2**20)
    # before, each object got the whole budget again and counted nothing
    assert 2_000_000 <= contents.unpacked < 2_000_000 + 2 * 300_001
