"""The attachment check's symbols for what the inventory found (the inventory itself is
specified in test_archives and the format tests)."""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace

import pytest
import rarfile

from portcullis.antivirus.filetypes import DEFAULT_BLOCKED_EXTENSIONS
from portcullis.checks.attachments import Attachments
from portcullis.checks.base import Context
from tests.support.attachments import executable, mail, mail_with_part, rar5
from tests.support.rar_samples import text, x86_code

pytestmark = pytest.mark.antivirus


def checked(content: bytes, **settings: object) -> dict[str, tuple[float, str]]:
    """The attachment check's symbols for ``content``: name -> (score, reason)."""
    ctx = Context("192.0.2.1", content=content, snapshot=SimpleNamespace(settings={
        "blocked_extensions": list(DEFAULT_BLOCKED_EXTENSIONS), **settings}))
    return {s.name: (s.score, s.reason) for s in asyncio.run(Attachments(None).check(ctx))}


@pytest.mark.parametrize("reject", [False, True])
def test_rar_content_no_scanner_saw_counts_as_an_encrypted_archive(reject):
    """clamd reads no RAR here: a member the inventory could not unpack (here: after a
    damaged one in a solid run) was seen by nobody, like an encrypted one.  It scored
    ARCHIVE_UNREADABLE's 1 point whatever reject_encrypted_archives said, so an
    executable named invoice.pdf behind a damaged first member passed where the same
    file encrypted was rejected."""
    files = {"notes.txt": text(5000), "invoice.pdf": x86_code(20_000)}
    archive = bytearray(rar5(files, compressed=frozenset(files), solid=True))
    first = rarfile.RarFile(io.BytesIO(bytes(archive))).infolist()[0]
    archive[first.data_offset + first.compress_size - 3] ^= 0x55     # notes.txt damaged
    symbols = checked(mail("x", attachments=[("invoice.rar", bytes(archive))]),
                      reject_encrypted_archives=reject)
    if reject:
        assert symbols["ENCRYPTED_ARCHIVE"] == (
            100.0, "Attachment: invoice.rar > invoice.pdf cannot be scanned")
    else:
        assert symbols["ENCRYPTED_ARCHIVE"][0] == 1.0
    assert "damaged rar member" in symbols["ARCHIVE_UNREADABLE"][1]     # notes.txt


def test_an_unnamed_attachment_is_shown_whole_in_the_reason():
    """An unnamed part was shown as "octet-stream)": its label, "(unnamed
    application/octet-stream)", was cut at the slash as a path is."""
    message = mail_with_part(b"Content-Type: application/octet-stream\r\n", executable())
    assert checked(message)["ATTACHMENT_BLOCKED"] == (
        100.0, "Attachment: (unnamed application octet-stream part) (exe content)")
