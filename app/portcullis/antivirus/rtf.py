"""Objects embedded in RTF documents.

RTF is plain text, so a filter that looks at it sees no file; but an RTF document embeds
OLE objects as hex digits in an ``\\objdata`` group, and Word opens them: a "Package"
object carries any file (an executable behind an icon), an "Equation" object is how the
Equation Editor exploits (CVE-2017-11882 and its kin) arrive, and other objects are
whole Office documents with macros of their own.  The hex digits are collected as Word
reads them, skipping the control words and stray characters exploit kits put between
them; the OLE 1.0 object header ([MS-OLEDS] 2.2.4) then gives the class and the native
data.  Bounded: objects looked at, bytes decoded.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAX_OBJECTS = 100
MAX_CLASS = 256
_OBJDATA = re.compile(rb"\\objdata\b")
# Runs of hex digits; control words (not data, whatever letters they have); braces;
# anything else, skipped.
_TOKEN = re.compile(rb"(?P<hex>[0-9A-Fa-f]+)|\\[A-Za-z]{1,32}-?\d{0,10} ?|\\.|[{}]"
                    rb"|[^0-9A-Fa-f\\{}]+", re.DOTALL)
EMBEDDED = 2                          # the object's data is in the document


@dataclass(frozen=True)
class EmbeddedObject:
    class_name: str                   # "Package", "Equation.3", "Word.Document.8", ...
    native: bytes                     # its native data (at most the limit asked for)


def objects(data: bytes, *, limit: int) -> list[EmbeddedObject]:
    """The embedded objects of an RTF document, each decoded up to ``limit`` bytes."""
    found: list[EmbeddedObject] = []
    read_to = 0
    for tried, match in enumerate(_OBJDATA.finditer(data)):
        # Every \objdata counts, and one inside a group already read is not read again:
        # a hundred of them in front of one long run of digits cost a hundred decodings,
        # and each one walking to its group's end made the reading quadratic.
        if tried >= MAX_OBJECTS:
            break
        if match.start() < read_to:
            continue
        blob, read_to = _hex_group(data, match.end(), 2 * (limit + MAX_CLASS + 64))
        embedded = _ole1(blob)
        if embedded is not None:
            found.append(embedded)
    return found


def _hex_group(data: bytes, start: int, max_digits: int) -> tuple[bytes, int]:
    """The bytes the hex digits from ``start`` to the end of their group spell, and
    where the reading stopped."""
    digits: list[bytes] = []
    count = depth = 0
    end = start
    for token in _TOKEN.finditer(data, start):
        end = token.end()
        text = token.group()
        if text == b"{":
            depth += 1
        elif text == b"}":
            if depth == 0:
                break
            depth -= 1
        elif token.lastgroup == "hex":
            digits.append(text)
            count += len(text)
            if count >= max_digits:
                break
    joined = b"".join(digits)[:max_digits]
    return bytes.fromhex(joined[:len(joined) // 2 * 2].decode()), end


def _ole1(blob: bytes) -> EmbeddedObject | None:
    """An OLE 1.0 embedded object: version, format, class name, topic, item, native."""
    try:
        _, format_id, class_length = struct.unpack_from("<III", blob, 0)
        if format_id != EMBEDDED or not 0 < class_length <= MAX_CLASS:
            return None
        at = 12 + class_length
        class_name = blob[12:at].split(b"\0", 1)[0].decode("latin-1")
        for _ in range(2):                               # topic and item names
            length, = struct.unpack_from("<I", blob, at)
            at += 4 + length
        size, = struct.unpack_from("<I", blob, at)
    except struct.error:
        return None
    return EmbeddedObject(class_name, blob[at + 4:at + 4 + size])
