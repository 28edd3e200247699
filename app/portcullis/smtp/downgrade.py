"""8-bit to 7-bit conversion for a next hop that does not offer 8BITMIME (RFC 6152 3).

Such a host must not be handed 8-bit data: an 8-bit message is converted, as Postfix's
SMTP client does, or refused with 554 5.6.3 where it cannot be.  Each MIME part whose
body holds 8-bit bytes (declared 7bit, 8bit or not at all) is re-encoded: text as
quoted-printable, anything else as base64, with its Content-Transfer-Encoding changed;
multiparts and message/rfc822 parts are walked into and their own 8bit label made 7bit.
Everything else keeps its bytes.  Not convertible: 8-bit header fields (only SMTPUTF8
carries them), 8-bit bytes in a base64, quoted-printable or binary part or between the
parts of a multipart.  A converted message no longer matches a DKIM body hash, which is
why the conversion is only made for a host that needs it.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from portcullis.smtp.hygiene import has_bare_newline
from portcullis.smtp.rewrite import header_lines, split_message

_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")
MAX_DEPTH = 50               # nested parts walked into; deeper is refused, not recursed
_7BIT = b"7bit"


class Unconvertible(ValueError):
    """8-bit content that has no 7-bit form; the message says where it is."""


def to_seven_bit(content: bytes) -> bytes:
    """``content`` with every 8-bit part re-encoded; raises Unconvertible."""
    if has_bare_newline(content):
        content = _ANY_NEWLINE.sub(b"\r\n", content)
    return _entity(content, "text/plain", top=True, depth=0)


def _entity(data: bytes, default_type: str, *, top: bool, depth: int) -> bytes:
    if data.isascii():
        return data
    if depth > MAX_DEPTH:
        raise Unconvertible("MIME parts nested too deeply")
    block, rest = split_message(data)
    if not block.isascii():
        raise Unconvertible("8-bit header field")
    headers = _parse(block, default_type)
    kind = headers.get_content_type()
    encoding = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
    if encoding in ("base64", "quoted-printable", "binary"):
        raise Unconvertible(f"8-bit data in a {encoding} part")
    if kind.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise Unconvertible("8-bit data in a multipart without a boundary")
        body = _multipart(rest, boundary.encode("ascii", "replace"),
                          "message/rfc822" if kind == "multipart/digest" else "text/plain",
                          depth)
        return _relabel(block, _7BIT, top=False) + body
    if kind == "message/rfc822":
        separator, inner = (b"\r\n", rest[2:]) if rest.startswith(b"\r\n") else (b"", rest)
        embedded = _entity(inner, "text/plain", top=False, depth=depth + 1)
        return _relabel(block, _7BIT, top=False) + separator + embedded
    if kind.startswith("message/"):
        raise Unconvertible(f"8-bit data in a {kind} part")
    separator, body = (b"\r\n", rest[2:]) if rest.startswith(b"\r\n") else (b"", rest)
    if kind.startswith("text/"):
        encoded, label = binascii.b2a_qp(body, istext=True), b"quoted-printable"
        if body.endswith(b"\r\n") and not encoded.endswith(b"\r\n"):
            encoded += b"\r\n"
    else:
        encoded, label = base64.encodebytes(body).replace(b"\n", b"\r\n"), b"base64"
    return _relabel(block, label, top=top) + (separator or b"\r\n") + encoded


def _multipart(body: bytes, boundary: bytes, child_type: str, depth: int) -> bytes:
    """The multipart body with each part converted; delimiters, preamble and epilogue
    kept as they are (ASCII, or the message is refused)."""
    delimiter = re.compile(rb"(?:^|(?<=\r\n))--" + re.escape(boundary)
                           + rb"(--)?[ \t]*(?:\r\n|$)")
    out: list[bytes] = []
    position, part_start = 0, None
    for match in delimiter.finditer(body):
        if part_start is None:
            segment = body[position:match.start()]
            if not segment.isascii():
                raise Unconvertible("8-bit data before the first part")
            out.append(segment)
        else:
            # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
            end = match.start()
            if end - 2 >= part_start and body[end - 2:end] == b"\r\n":
                end -= 2
            out.append(_entity(body[part_start:end], child_type, top=False, depth=depth + 1))
            out.append(body[end:match.start()])
        out.append(match.group(0))
        position = part_start = match.end()
        if match.group(1):                      # the close delimiter: the epilogue follows
            part_start = None
            break
    if part_start is not None:
        raise Unconvertible("8-bit data in a multipart without its closing boundary")
    epilogue = body[position:]
    if not epilogue.isascii():
        raise Unconvertible("8-bit data after the last part")
    return b"".join(out) + epilogue


def _parse(block: bytes, default_type: str) -> Message:
    headers = BytesHeaderParser(policy=compat32).parsebytes(block + b"\r\n")
    headers.set_default_type(default_type)
    return headers


def _relabel(block: bytes, encoding: bytes, *, top: bool) -> bytes:
    """The header block with its Content-Transfer-Encoding set to ``encoding`` (in place
    of any there was); a whole message gets MIME-Version too, or readers ignore it."""
    fields = header_lines(block)
    names = [f.split(b":", 1)[0].strip().lower() for f in fields]
    if encoding == _7BIT and b"content-transfer-encoding" not in names:
        return block                                       # 7bit is the default
    field = b"Content-Transfer-Encoding: " + encoding
    relabelled, replaced = [], False
    for f, name in zip(fields, names, strict=True):
        if name == b"content-transfer-encoding":
            if not replaced:                               # one field, not two
                relabelled.append(field)
                replaced = True
            continue
        relabelled.append(f)
    if not replaced:
        relabelled.append(field)
    if top and b"mime-version" not in names:
        relabelled.append(b"MIME-Version: 1.0")
    return b"".join(f + b"\r\n" for f in relabelled)
