"""The files inside a TNEF attachment (``winmail.dat``, [MS-OXTNEF]).

Outlook sends a message's attachments wrapped in one TNEF stream when it talks to an
Exchange server that thinks the recipient uses Outlook too; other mail programs show
only ``winmail.dat``, and a filter that reads only the outer name sees nothing at all.
The stream is a signature and a list of attributes; each attachment starts with an
attAttachRendData attribute and has its bytes in attAttachData and its name in
attAttachTitle, and its long name among the MAPI properties in attAttachment: Outlook
saves it under the long name, readers of winmail.dat under either, so both are judged.
Everything is checked against the stream's length; counts are bounded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portcullis.antivirus.readers import Stored, TooLarge, Unreadable

SIGNATURE = b"\x78\x9f\x3e\x22"
ATTACHMENT_LEVEL = 2
# Attribute identifiers (type in the high word, as they are written).
RENDERING, TITLE, DATA, PROPERTIES = 0x00069002, 0x00018010, 0x0006800F, 0x00069005
LONG_FILENAME = 0x3707                # PR_ATTACH_LONG_FILENAME
MAX_PROPERTIES = 1000
# MAPI property value sizes for fixed-size types; variable ones are listed separately.
_FIXED = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x000A: 4,
          0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16}
_VARIABLE = {0x000D, 0x001E, 0x001F, 0x0102}
MULTIPLE = 0x1000


@dataclass
class Attachment:
    title: str = ""
    long_name: str = ""
    data: bytes = b""


def attachments(data: bytes, *, max_files: int) -> list[Stored]:
    """The attachments in a TNEF stream, in order (a name without bytes is kept: it is
    judged by its name)."""
    if not data.startswith(SIGNATURE) or len(data) < 6:
        raise Unreadable("not a TNEF stream")
    found: list[Attachment] = []
    at = 6                                           # signature, legacy key
    while at + 9 <= len(data):
        level = data[at]
        attribute, length = struct.unpack_from("<II", data, at + 1)
        value = data[at + 9:at + 9 + length]
        if len(value) < length:
            raise Unreadable(f"attribute {attribute:#x} runs past the end")
        at += 9 + length + 2                         # and its checksum
        if level != ATTACHMENT_LEVEL:
            continue
        if attribute == RENDERING or not found:
            if len(found) >= max_files:
                raise TooLarge(f"more than {max_files} attachments")
            found.append(Attachment())
        current = found[-1]
        if attribute == TITLE:
            current.title = current.title or _text(value, wide=False)
        elif attribute == DATA:
            current.data = value
        elif attribute == PROPERTIES:
            current.long_name = _long_filename(value) or current.long_name
    return [Stored(a.long_name or a.title, len(a.data), a.data,
                   aliases=(a.title,) if a.long_name and a.title != a.long_name else ())
            for a in found if a.title or a.long_name or a.data]


def _text(value: bytes, *, wide: bool) -> str:
    if wide:
        return value.decode("utf-16-le", "replace").split("\0", 1)[0]
    return value.split(b"\0", 1)[0].decode("cp1252", "replace")


def _long_filename(block: bytes) -> str:
    """PR_ATTACH_LONG_FILENAME among an attachment's MAPI properties, or "" (also when
    a property of a kind not read here comes first)."""
    try:
        count, = struct.unpack_from("<I", block, 0)
        at = 4
        for _ in range(min(count, MAX_PROPERTIES)):
            kind, identifier = struct.unpack_from("<HH", block, at)
            at += 4
            if identifier >= 0x8000:                 # a named property: GUID, then a name
                named, = struct.unpack_from("<I", block, at + 16)
                at += 20
                if named:
                    size, = struct.unpack_from("<I", block, at)
                    at += 4 + (size + 3) // 4 * 4
                else:
                    at += 4
            base, values = kind & ~MULTIPLE, 1
            if kind & MULTIPLE or base in _VARIABLE:
                values, = struct.unpack_from("<I", block, at)
                at += 4
            for _ in range(min(values, MAX_PROPERTIES)):
                if base in _FIXED:
                    at += _FIXED[base]
                    continue
                if base not in _VARIABLE:
                    return ""
                size, = struct.unpack_from("<I", block, at)
                value = block[at + 4:at + 4 + size]
                at += 4 + (size + 3) // 4 * 4
                if identifier == LONG_FILENAME and base in (0x001E, 0x001F):
                    return _text(value, wide=base == 0x001F)
    except struct.error:
        pass                                         # properties cut short
    return ""
