"""The message structure check: broken MIME, missing mandatory fields, absurd nesting."""

from __future__ import annotations

import asyncio
import base64

import pytest

from portcullis.checks.base import Context
from portcullis.checks.structure import MessageStructure
from portcullis.mime import MAX_DEPTH

pytestmark = pytest.mark.defenses

HEADER = (b"From: a@b.test\r\nTo: c@d.test\r\nSubject: Fwd: Deals\r\n"
          b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@b.test>\r\n"
          b"MIME-Version: 1.0\r\n")
# A newsletter whose multipart never shows its boundary: two defects to the parser.
BROKEN = (b"From: news@shop.test\r\nSubject: Deals\r\nMIME-Version: 1.0\r\n"
          b'Content-Type: multipart/alternative; boundary="nope"\r\n\r\n'
          b"no boundary ever appears\r\n")


def symbols(content: bytes) -> dict[str, str]:
    found = asyncio.run(MessageStructure(None).check(Context("192.0.2.1", content=content)))
    return {s.name: s.reason for s in found}


def forward(attached: bytes, encoding: bytes = b"") -> bytes:
    return (HEADER + b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
            b"--outer\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
            b"--outer\r\nContent-Type: message/rfc822\r\n" + encoding + b"\r\n"
            + attached + b"\r\n--outer--\r\n")


def test_defects_of_a_forwarded_message_are_not_the_forwards_own() -> None:
    """Forwarding a broken newsletter (or a bounce quoting its original) does not make
    the forward broken MIME."""
    assert symbols(forward(BROKEN)) == {}
    # A base64-encoded attached message (clients send them) is judged alike.
    encoded = base64.encodebytes(BROKEN).replace(b"\n", b"\r\n")
    assert symbols(forward(encoded, b"Content-Transfer-Encoding: base64\r\n")) == {}


def test_defects_of_the_message_itself_count() -> None:
    assert symbols(HEADER + BROKEN.split(b"\r\n", 3)[3]) == {
        "MIME_DEFECTS": "2 MIME defect(s)"}
    # A broken part beside the attached message is the sender's own.
    beside = forward(BROKEN).replace(
        b"--outer--", b"--outer\r\n" + BROKEN.split(b"\r\n", 2)[2] + b"\r\n--outer--")
    assert "MIME_DEFECTS" in symbols(beside)


def test_nesting_inside_an_attached_message_still_counts_as_nesting() -> None:
    nested = b"x\r\n"
    for level in range(MAX_DEPTH + 1):
        nested = (f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'
                  f"--b{level}\r\n").encode() + nested + f"\r\n--b{level}--\r\n".encode()
    assert "MIME_TOO_DEEP" in symbols(forward(b"From: x@y.test\r\n" + nested))
