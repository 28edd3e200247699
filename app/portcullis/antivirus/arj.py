"""The files in an ARJ archive (Robert Jung's format, still sent by malware campaigns
because filters that do not list it let its contents through by the outer name).

An archive is a chain of headers, each ``60 EA``, its size, the header itself (fixed part,
name, comment) and its CRC-32, then extended headers, then the member's packed bytes; a
header of size 0 ends it.  The first header describes the archive.  Stored members (method
0) are read, packed ones (methods 1-4) decoded by ``static_huffman`` and checked against
their CRC-32 when decoded whole; members continued
in another volume and encrypted ("garbled") ones are known by name.  Every header's CRC
is checked, so a damaged archive is refused rather than half-listed.
"""

from __future__ import annotations

import struct
import zlib

from portcullis.antivirus import static_huffman
from portcullis.antivirus.readers import Stored, TooLarge, Unreadable

MAGIC = b"\x60\xea"
MAX_HEADER = 2600               # the format's own limit for the basic header
MAX_EXTENDED = 100              # extended headers after one basic header
GARBLED, VOLUME = 0x01, 0x04    # flags
STORED = 0
PACKED = {1: static_huffman.ARJ, 2: static_huffman.ARJ, 3: static_huffman.ARJ,
          4: static_huffman.ARJ_FASTEST}
MAIN, DIRECTORY = 2, 3          # file types (0 binary, 1 text are files)


def is_arj(head: bytes) -> bool:
    """An ARJ archive starts with its main header (file type 2)."""
    return head.startswith(MAGIC) and len(head) > 10 and head[10] == MAIN and \
        0 < int.from_bytes(head[2:4], "little") <= MAX_HEADER


def members(data: bytes, *, max_members: int) -> list[Stored]:
    """The files of an ARJ archive, in order."""
    if not is_arj(data):
        raise Unreadable("not an ARJ archive")
    found: list[Stored] = []
    at = _skip_header(data, 0)[0]                       # the archive's own header
    while True:
        at, header = _skip_header(data, at)
        if header is None:                              # the end marker
            return found
        flags, method, kind = header[4], header[5], header[6]
        packed, size, crc = struct.unpack_from("<III", header, 12)
        content = data[at:at + packed]
        if len(content) < packed:
            raise Unreadable("a member runs past the end")
        at += packed
        if kind == DIRECTORY or kind not in (0, 1):
            continue
        if len(found) >= max_members:
            raise TooLarge(f"more than {max_members} members")
        readable = not flags & (GARBLED | VOLUME)
        found.append(Stored(
            _name(header), size, content if readable and method == STORED else None,
            encrypted=bool(flags & GARBLED),
            unpack=static_huffman.unpacker(content, size, PACKED[method],
                                           lambda whole, crc=crc: zlib.crc32(whole) == crc)
            if readable and method in PACKED else None))


def _skip_header(data: bytes, at: int) -> tuple[int, bytes | None]:
    """The offset after the header at ``at`` and its basic part (None: the end marker)."""
    if data[at:at + 2] != MAGIC:
        raise Unreadable(f"no header at {at}")
    size = int.from_bytes(data[at + 2:at + 4], "little")
    if size == 0:
        return at + 4, None
    if size > MAX_HEADER or size < 30:
        raise Unreadable(f"header of {size} bytes")
    header = data[at + 4:at + 4 + size]
    crc = data[at + 4 + size:at + 8 + size]
    if len(crc) < 4 or zlib.crc32(header) != int.from_bytes(crc, "little"):
        raise Unreadable(f"header at {at} fails its CRC")
    at += 8 + size
    for _ in range(MAX_EXTENDED):
        if len(data) < at + 2:
            raise Unreadable("cut short in the extended headers")
        extended = int.from_bytes(data[at:at + 2], "little")
        at += 2
        if extended == 0:
            return at, header
        at += extended + 4
    raise Unreadable("too many extended headers")


def _name(header: bytes) -> str:
    """The member's path (ARJ writes it in the DOS code page, with either separator)."""
    first = header[0]
    raw = header[first:].split(b"\0", 1)[0]
    return raw.decode("cp437").replace("\\", "/")
