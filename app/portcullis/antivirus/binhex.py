"""The file in a BinHex 4.0 text (``.hqx``), the classic Mac mail encoding.

After the line "(This file must be converted ...)" the file sits between two colons as
64-character 6-bit text; decoded, it is run-length encoded (0x90 repeats the byte before
it), and then a header (name, type, creator, the two forks' lengths, a CRC), the data fork
and the resource fork, each with its CRC.  The data fork is what Windows and every other
system sees as the file; it is read, within the limit, under the name the header gives.
"""

from __future__ import annotations

import binascii
import re

from portcullis.antivirus.readers import Stored, Unreadable

MARKER = b"(This file must be converted"
_ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_BASE64 = bytes(_BASE64[_ALPHABET.index(c)] if c in _ALPHABET else ord("?")
                   for c in range(256))
_BLANK = re.compile(rb"[ \t\r\n]+")
RUN = 0x90


def is_binhex(head: bytes) -> bool:
    return head.lstrip()[:len(MARKER)] == MARKER


def data_fork(text: bytes, *, limit: int) -> Stored:
    """The file a BinHex text holds (its data fork), decoded up to ``limit`` bytes."""
    start = text.find(b":", text.find(MARKER))
    end = text.find(b":", start + 1)
    if start < 0 or end < 0:
        raise Unreadable("no BinHex data between colons")
    # The header says how long the data fork is: decode only as far as it needs.
    raw = _expand(_six_bit(_BLANK.sub(b"", text[start + 1:end])), limit + 512)
    if not raw:
        raise Unreadable("empty BinHex data")
    header_end = raw[0] + 22
    header = raw[:header_end]
    if len(header) < header_end:
        raise Unreadable("BinHex header cut short")
    if binascii.crc_hqx(header[:-2], 0) != int.from_bytes(header[-2:], "big"):
        raise Unreadable("BinHex header fails its CRC")
    name = header[1:1 + raw[0]].decode("mac_roman")
    size = int.from_bytes(header[-10:-6], "big")
    content = raw[header_end:header_end + min(size, limit)]
    if len(content) < min(size, limit):
        raise Unreadable("BinHex data fork cut short")
    return Stored(name, size, content)


def _six_bit(chars: bytes) -> bytes:
    """6-bit text to bytes: the same code as base64 in another alphabet, so decoded by
    binascii once translated."""
    translated = chars.translate(_TO_BASE64)
    if b"?" in translated:
        raise Unreadable("characters that are not BinHex")
    usable = len(translated) // 4 * 4
    tail = translated[usable:]
    padded = translated[:usable] + (tail + b"=" * (4 - len(tail)) if len(tail) > 1 else b"")
    return binascii.a2b_base64(padded)


def _expand(data: bytes, limit: int) -> bytes:
    """Undo the run-length encoding, stopping at ``limit`` bytes."""
    out = bytearray()
    at = 0
    while at < len(data) and len(out) < limit:
        run = data.find(RUN, at)
        if run < 0 or run + 1 >= len(data):
            out += data[at:]
            break
        out += data[at:run]
        count = data[run + 1]
        at = run + 2
        if count == 0:
            out.append(RUN)                       # an escaped 0x90
        elif out:
            out += bytes([out[-1]]) * min(count - 1, max(limit - len(out), 0))
        else:
            raise Unreadable("a run with nothing to repeat")
    return bytes(out[:limit])
