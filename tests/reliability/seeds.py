"""Seed inputs for the fuzzer: well-formed examples it mutates from."""

from __future__ import annotations

import lzma
from pathlib import Path

from tests.support.attachments import (
    arj_archive,
    binhex_text,
    cpio_archive,
    handmade_cabinet,
    iso_image,
    lzh_archive,
    onenote_section,
    pdf_document,
    qpdf_rewrite,
    qr_image,
    rar3,
    rar3_ppmd_block,
    rar5,
    rc4_workbook,
    seven_zip,
    standard_encrypted_office,
    szdd_file,
    udf_image,
    uuencoded,
    zip_of,
)

SMTP = [
    b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.com>\r\n"
    b"DATA\r\nSubject: hi\r\nFrom: a@remote.test\r\n\r\nbody\r\n.\r\n",
    b"HELO x\r\nMAIL FROM:<> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<bob@example.com>\r\n"
    b"RCPT TO:<nobody@elsewhere.test>\r\nRSET\r\nNOOP\r\nVRFY bob\r\n",
    b"EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nx\n.\nMAIL",
]
MIME = [
    b"From: a@b.test\r\nSubject: =?utf-8?b?w6k=?=\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; '
    b'charset=iso-8859-1\r\n\r\ncaf\xe9\r\n--b\r\nContent-Type: application/zip; name="a.zip"'
    b"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--b--\r\n",
    b"Subject: plain\r\n\r\ntext\r\n",
]


# Attachment bytes as they are, for the archive parsers to be mutated from.
ARCHIVES = [
    zip_of({"a.txt": b"hello", "b.exe": b"MZ"}),
    rar5({"a.txt": b"hello", "in.rar": rar5({"b.exe": b"MZ"}), "c.exe": b"MZ\xe8" * 20,
          "d.txt": b"hello, hello"}, compressed=frozenset({"c.exe", "d.txt"}),
         filters={"c.exe": "e8e9"}, solid=True),
    rar3({"a.txt": b"hello", "c.exe": b"MZ\xe8" * 20, "d.txt": b"hello, hello"},
         compressed=frozenset({"c.exe", "d.txt"}), filters={"c.exe": "e8e9"}, solid=True),
    handmade_cabinet({"a.txt": b"hello " * 9000, "b.exe": b"MZ" * 20}),
    handmade_cabinet({"a.txt": b"hello " * 9000, "b.exe": b"MZ\xe8\0\0\0\0" * 20}, method=3,
                     e8=True),
    lzh_archive({"d/a.txt": b"hello", "b.exe": b"MZ" * 20}, level=1),
    lzh_archive({"a.txt": b"hello hello hello", "b.exe": b"MZ\x90" * 99}, level=2,
                method="-lh5-"),
    szdd_file(zip_of({"b.exe": b"MZ" + bytes(40)}), "p"),
    rc4_workbook([("Sheet1", 0), ("Macro1", 1)], pad_to=1200),
    standard_encrypted_office({"word/vbaProject.bin": b"\xd0" * 99}, "x"),
    pdf_document(links=("https://a.example.net/",), embedded={"b.exe": b"MZ" * 20},
                 open_javascript="x()"),
    pdf_document(open_javascript="x()", trigger="names", form_javascript="f(1)",
                 open_page=True),
    onenote_section({"a.hta": b"<script>", "b.zip": zip_of({"c.exe": b"MZ"})}),
    lzma.compress(b"MZ" * 99, format=lzma.FORMAT_ALONE),
    # Encrypted with the password the message seeds name (see below), names too.
    rar5({"a.txt": b"hello", "c.exe": b"MZ\xe8" * 20}, compressed=frozenset({"c.exe"}),
         encrypted=frozenset({"a.txt", "c.exe"}), encrypted_names=True, password="hello"),
    rar3({"a.txt": b"hello hello hello", "c.exe": b"MZ\xe8" * 20},
         compressed=frozenset({"c.exe"}), encrypted=frozenset({"a.txt", "c.exe"}),
         password="hello"),
    rar3({"a.txt": b"hello hello hello", "c.exe": b"MZ\xe8" * 20},
         packed={"a.txt": rar3_ppmd_block(b"hello hello hello")[0],
                 "c.exe": rar3_ppmd_block(b"MZ\xe8" * 20, order=4)[0]}),
]


def write(target: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    seeds = SMTP if target == "smtp" else MIME
    if target == "attachments":      # made here, by tools the other targets do not need
        seeds = [*MIME, *ARCHIVES, seven_zip({"a.txt": b"hello", "b.exe": b"MZ"}),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99},
                           "-m0=Deflate64"),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99},
                           "-tzip", "-mm=Deflate64"),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99},
                           "-m0=PPMd:o=4:mem=64k"),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99},
                           "-phello", "-mhe=on"),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99},
                           "-phello", "-m0=Copy"),
                 seven_zip({"a.txt": b"hello " * 50, "b.exe": b"MZ\xe8\x90\0\0\0" * 99},
                           "-mf=BCJ2"),
                 iso_image({"a.txt": b"hello", "d/b.exe": b"MZ"}, "-J"),
                 udf_image({"a.txt": b"hello", "d/b.exe": b"MZ"}),
                 arj_archive({"a.txt": b"hello", "b.exe": b"MZ"}, "-m0"),
                 arj_archive({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99}, "-m1"),
                 arj_archive({"a.txt": b"hello " * 50, "b.exe": b"MZ\x90" * 99}, "-m4"),
                 cpio_archive({"a.txt": b"hello", "b.exe": b"MZ"}, "newc"),
                 qr_image("https://a.example.net/", scale=2),
                 pdf_document(pictures=(("bilevel", qr_image("https://b.example.net/")),
                                        ("grey", qr_image("https://c.example.net/")))),
                 qpdf_rewrite(pdf_document(links=("https://a.example.net/",),
                                           embedded={"b.exe": b"MZ" * 20}),
                              "--encrypt", "", "owner", "128", "--use-aes=y", "--"),
                 binhex_text("b.exe", b"MZ" + bytes(300)),
                 b"Subject: uu\r\n\r\nsee below\r\n"
                 + uuencoded("b.exe", b"MZ" * 20).encode()]
    for n, seed in enumerate(seeds):
        (directory / f"seed{n}").write_bytes(seed)
    return directory
