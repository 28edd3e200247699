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


def clamav_expands(data: bytes) -> bool:
    """Whether clamd (ClamAV 1.4) expands this file to scan it.  It reads the byte of the
    missing character as part of the magic, so it refuses every file ``compress -r``
    wrote ("MSEXPAND: Not supported file format"), the ``setup.ex_`` kind."""
    return data[9:10] == b"\0"


def size(data: bytes) -> int:
    return int.from_bytes(data[10:14], "little")


class Expansion:
    """The file being expanded: ``first(n)`` goes on from where the last call stopped, so
    a look at the head and then at more of it expand each byte once."""

    def __init__(self, data: bytes) -> None:
        if not is_szdd(data):
            raise Unreadable("not an SZDD file")
        self._data = data
        self._window = bytearray(b" " * WINDOW)
        self._position = WINDOW - 16
        self._at = HEADER
        self._flags, self._bit = 0, 8          # bit 8: the next item needs a flag byte
        self._out = bytearray()

    def first(self, limit: int) -> bytes:
        """The first ``limit`` bytes of the file (all of it when it is shorter)."""
        data, window, out = self._data, self._window, self._out
        want = min(limit, size(data))
        position, at, flags, bit = self._position, self._at, self._flags, self._bit
        while len(out) < want:
            if bit == 8:
                if at >= len(data):
                    break
                flags, bit = data[at], 0
                at += 1
            if at >= len(data):
                break
            if flags >> bit & 1:                        # a literal byte
                window[position] = data[at]
                out.append(data[at])
                position = (position + 1) % WINDOW
                at += 1
            else:
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
            bit += 1
        self._position, self._at, self._flags, self._bit = position, at, flags, bit
        if len(out) < want:
            raise Unreadable(f"cut short after {len(out)} of {size(data)} bytes")
        return bytes(out[:want])


def expand(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of the file (all of it when it is shorter)."""
    return Expansion(data).first(limit)
