"""Files compressed by Microsoft's ``compress.exe`` (SZDD), which old installers and some
malware still send: ``setup.ex_`` is ``setup.exe`` once expanded, its last character
kept in the header.

The data is LZSS over a 4096-byte window that starts filled with spaces: each flag byte
says, bit by bit from the lowest, whether a literal byte or a (position, length) pair
follows.  Expansion stops at the size asked for.
"""

from __future__ import annotations

from portcullis.antivirus.readers import Unreadable

MAGIC = b"SZDD\x88\xf0\x27\x33"
WINDOW = 4096
HEADER = 14


def is_szdd(head: bytes) -> bool:
    return head.startswith(MAGIC) and len(head) >= HEADER and head[8:9] == b"A"


def expanded_name(name: str, data: bytes) -> str:
    """The file's real name: the last character of ``name`` put back from the header."""
    missing = chr(data[9]) if len(data) > 9 and 32 < data[9] < 127 else ""
    if missing and name.endswith("_"):
        return name[:-1] + missing
    return name


def size(data: bytes) -> int:
    return int.from_bytes(data[10:14], "little")


def expand(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of the file (all of it when it is shorter)."""
    if not is_szdd(data):
        raise Unreadable("not an SZDD file")
    window = bytearray(b" " * WINDOW)
    position = WINDOW - 16
    out = bytearray()
    at = HEADER
    want = min(limit, size(data))
    while at < len(data) and len(out) < want:
        flags = data[at]
        at += 1
        for bit in range(8):
            if at >= len(data) or len(out) >= want:
                break
            if flags >> bit & 1:                        # a literal byte
                window[position] = data[at]
                out.append(data[at])
                position = (position + 1) % WINDOW
                at += 1
                continue
            if at + 1 >= len(data):
                raise Unreadable("a match cut short")
            source = data[at] | (data[at + 1] & 0xF0) << 4
            for _ in range((data[at + 1] & 0x0F) + 3):
                byte = window[source]
                window[position] = byte
                out.append(byte)
                source = (source + 1) % WINDOW
                position = (position + 1) % WINDOW
            at += 2
    if len(out) < want:
        raise Unreadable(f"cut short after {len(out)} of {size(data)} bytes")
    return bytes(out[:want])
