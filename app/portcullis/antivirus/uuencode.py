"""Files uuencoded into the text of a message ("begin 644 invoice.exe" ... "end").

Before MIME, mail carried files this way, and mail programs (Outlook among them) still
show such a block in a plain-text body as an attachment; a filter that looks only at MIME
parts sees a text message.  Blocks are decoded line by line as the mail programs do,
tolerating the trailing spaces and missing padding that mail transport leaves behind;
the bytes decoded are bounded.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from portcullis.antivirus.readers import Stored, TooLarge

# The name is the rest of the line (its trailing blanks dropped in ``_name``): a lazy
# name followed by optional blanks cost 255 steps a byte.
_BEGIN = re.compile(rb"^begin(?:-base64)? +[0-7]{3,4} +([^\r\n]+)\r?$", re.MULTILINE)
MAX_NAME = 255
_UU_LINE = re.compile(rb"[ -`]+")
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]+=*")
MAX_LINES = 2_000_000


def has_blocks(text: bytes) -> bool:
    return b"begin" in text and _BEGIN.search(text) is not None


def files(text: bytes, *, max_files: int, limit: int) -> list[Stored]:
    """The uuencoded files in a text, each decoded up to ``limit`` bytes (a longer one is
    cut there; its ``size`` still says how far it went).  An empty block closed by its
    end line is a file too (uudecode writes an empty evil.exe from it): its name is
    judged; "begin 644 x" in prose, followed by more prose, is not."""
    found: list[Stored] = []
    for begin in _BEGIN.finditer(text):
        if len(found) >= max_files:
            raise TooLarge(f"more than {max_files} uuencoded files")
        # A longer name is judged by its end, where its extension is.
        raw_name = begin.group(1).rstrip(b" \t")[-MAX_NAME:]
        if not raw_name:
            continue
        name = raw_name.decode("utf-8", "replace")
        base64 = begin.group(0).startswith(b"begin-base64")
        decoded, size, closed = _decode(text, begin.end(), base64, limit)
        if size or closed:
            found.append(Stored(name, size, decoded))
    return found


def _decode(text: bytes, at: int, base64: bool, limit: int) -> tuple[bytes, int, bool]:
    """The bytes of the block whose lines start after ``at``, its full size, and whether
    it ended as a block does (its end line, or uuencode's empty last line)."""
    out = bytearray()
    size = 0
    for line in _lines(text, text.find(b"\n", at) + 1 or len(text)):
        line = line.rstrip()
        if line in (b"end", b"====") or (not base64 and line in (b"`", b"")):
            return bytes(out), size, line != b""
        if not base64:
            line = _covered(line)
        if not (_BASE64_LINE if base64 else _UU_LINE).fullmatch(line):
            break                               # the block ends where the text stops being it
        try:
            chunk = binascii.a2b_base64(line) if base64 else _uu_line(line)
        except binascii.Error:
            break
        size += len(chunk)
        if len(out) < limit:
            out += chunk[:limit - len(out)]
    return bytes(out), size, False


def _lines(text: bytes, at: int) -> Iterator[bytes]:
    for _ in range(MAX_LINES):
        if at >= len(text):
            return
        end = text.find(b"\n", at)
        end = len(text) if end < 0 else end
        yield text[at:end]
        at = end + 1


def _covered(line: bytes) -> bytes:
    """What of a uuencoded line its length character covers: uudecode decodes that and
    ignores what follows ("#86)C" and "#86)Cjunk" are both "abc")."""
    return line[:1 + (((line[0] - 32) & 63) + 2) // 3 * 4]


def _uu_line(line: bytes) -> bytes:
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Transport strips trailing spaces, which uuencode uses as zero digits: put back
        # what the length character says the line held (Python's own uu module did this).
        length = ((line[0] - 32) & 63) * 4 // 3 + 2
        return binascii.a2b_uu(line[:length].ljust(length, b" "))
