"""8-bit to 7-bit conversion for a next hop without 8BITMIME (RFC 6152 3): what readers
decode afterwards is what the sender wrote, and what cannot be converted is refused."""

from email import message_from_bytes
from email.policy import default

import pytest

from portcullis.smtp.downgrade import Unconvertible, to_seven_bit

pytestmark = pytest.mark.gateway

TEXT = "Grüße aus Köln, 3 € = gut.\r\n.Ein Punkt vorn, Leerzeichen hinten \r\n" + "ä" * 60


def plain(body: str, headers: str = "Content-Type: text/plain; charset=utf-8\r\n"
          "Content-Transfer-Encoding: 8bit\r\n") -> bytes:
    return (f"From: a@sender.org\r\nSubject: plain\r\nMIME-Version: 1.0\r\n{headers}\r\n"
            f"{body}\r\n").encode()


def decoded_texts(content: bytes) -> list[str]:
    message = message_from_bytes(content, policy=default)
    return [part.get_content() for part in message.walk() if not part.is_multipart()
            and part.get_content_maintype() == "text"]


def test_an_8bit_text_body_becomes_quoted_printable_and_decodes_to_the_same_text():
    content = plain(TEXT)
    converted = to_seven_bit(content)
    assert converted.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in converted
    assert converted.count(b"Content-Transfer-Encoding") == 1
    assert max(len(line) for line in converted.split(b"\r\n")) <= 76
    assert decoded_texts(converted) == decoded_texts(content)
    assert converted.startswith(b"From: a@sender.org\r\nSubject: plain\r\n")


def test_a_message_without_mime_headers_gets_them_with_its_encoding():
    content = b"From: a@sender.org\r\nSubject: old\r\n\r\nK\xc3\xb6ln\r\n"
    converted = to_seven_bit(content)
    assert b"MIME-Version: 1.0\r\n" in converted
    # No charset was named: the bytes are what they were, for readers to guess as before.
    assert message_from_bytes(converted).get_payload(decode=True) == b"K\xc3\xb6ln\r\n"


def test_only_the_8bit_parts_of_a_multipart_are_converted():
    attachment = "AAECAwQFBgc=\r\n"
    content = ("From: a@sender.org\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n"
               "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT + "\r\n"
               "--b1\r\nContent-Type: text/plain\r\n\r\nascii only\r\n"
               "--b1\r\nContent-Type: application/octet-stream\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n" + attachment +
               "--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "Subject: inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Größe</p>\r\n"
               "--b1--\r\nepilogue\r\n").encode()
    converted = to_seven_bit(content)
    assert converted.isascii()
    assert b"\r\n\r\nascii only\r\n--b1\r\n" in converted          # untouched
    assert attachment.encode() in converted
    assert b"Content-Transfer-Encoding: 8bit" not in converted      # now 7bit, or re-encoded
    assert decoded_texts(converted) == decoded_texts(content)
    message = message_from_bytes(converted, policy=default)
    assert len(list(message.iter_parts())) == 4


def test_a_non_text_8bit_part_becomes_base64_with_its_bytes_kept():
    data = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"")
    content = (b"From: a@sender.org\r\nMIME-Version: 1.0\r\nContent-Type: application/x-thing"
               b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + data + b"\r\n")
    converted = to_seven_bit(content)
    assert converted.isascii() and b"Content-Transfer-Encoding: base64" in converted
    assert message_from_bytes(converted, policy=default).get_content() == data + b"\r\n"


def test_ascii_content_is_returned_as_it_is():
    content = plain("plain text", headers="")
    assert to_seven_bit(content) is content


@pytest.mark.parametrize(("content", "why"), [
    (b"From: a@sender.org\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nbody\r\n", "header"),
    (plain("K\u00f6ln", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n"),
     "base64"),
    (b"From: a@sender.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     b"--b\r\n\r\nK\xc3\xb6ln\r\n", "closing boundary"),
    (b"From: a@sender.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     b"pre K\xc3\xb6ln\r\n--b\r\n\r\nx\r\n--b--\r\n", "before the first part"),
])
def test_what_cannot_be_converted_is_refused_saying_why(content, why):
    with pytest.raises(Unconvertible, match=why):
        to_seven_bit(content)
