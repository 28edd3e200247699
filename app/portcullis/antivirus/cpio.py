"""The files in a cpio archive, in its four encodings: "newc" and "crc" (``070701``,
``070702``: hexadecimal fields, padded to 4 bytes), "odc" (``070707``: octal fields, no
padding) and the old binary one (16-bit words in either byte order, padded to 2 bytes).

cpio stores files as they are, so every regular file's bytes are read; every other entry
but a directory (a symbolic link, whose data is its target's path; a device) is listed by
its name alone, as tar's links are: cpio extracts it under that name.  ``TRAILER!!!``
ends it.
"""

from __future__ import annotations

import re
import struct

from portcullis.antivirus.readers import Stored, TooLarge, Unreadable

TRAILER = "TRAILER!!!"
REGULAR, DIRECTORY, TYPE_MASK = 0o100000, 0o040000, 0o170000
MAX_NAME = 4096
_NEWC = re.compile(rb"07070[12][0-9A-Fa-f]{104}")
_ODC = re.compile(rb"070707[0-7]{70}")
_BINARY_LE, _BINARY_BE = b"\xc7\x71", b"\x71\xc7"


def is_cpio(head: bytes) -> bool:
    if _NEWC.match(head) or _ODC.match(head):
        return True
    # The binary magic is two bytes only: its name must end where its size says, too.
    if head[:2] not in (_BINARY_LE, _BINARY_BE) or len(head) < 26:
        return False
    name_size = int.from_bytes(head[20:22], "little" if head[:2] == _BINARY_LE else "big")
    return 1 < name_size <= MAX_NAME and head[26 + name_size - 1:26 + name_size] == b"\0"


def members(data: bytes, *, max_members: int) -> list[Stored]:
    """The entries of a cpio archive but its directories, in order: regular files with
    their bytes, the others (links, devices) by name."""
    if not is_cpio(data):
        raise Unreadable("not a cpio archive")
    found: list[Stored] = []
    at = 0
    while True:
        mode, name_size, size, name_at, align = _header(data, at)
        if not 0 < name_size <= MAX_NAME:
            raise Unreadable(f"name of {name_size} bytes at {at}")
        raw_name = data[name_at:name_at + name_size - 1]
        data_at = _aligned(name_at + name_size, align)
        content = data[data_at:data_at + size]
        if len(raw_name) < name_size - 1 or len(content) < size:
            raise Unreadable("a member runs past the end")
        name = raw_name.decode("utf-8", "replace")
        if name == TRAILER:
            return found
        if mode & TYPE_MASK != DIRECTORY:
            if len(found) >= max_members:
                raise TooLarge(f"more than {max_members} members")
            regular = mode & TYPE_MASK == REGULAR
            found.append(Stored(name, size, content) if regular else Stored(name, 0, None))
        at = _aligned(data_at + size, align)


def _header(data: bytes, at: int) -> tuple[int, int, int, int, int]:
    """(mode, name size, file size, where the name starts, alignment) of one header."""
    head = data[at:at + 110]
    if _NEWC.match(head):
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        return fields[1], fields[11], fields[6], at + 110, 4
    if _ODC.match(head):
        return int(head[18:24], 8), int(head[59:65], 8), int(head[65:76], 8), at + 76, 1
    if head[:2] in (_BINARY_LE, _BINARY_BE) and len(head) >= 26:
        order = "<" if head[:2] == _BINARY_LE else ">"
        words = struct.unpack_from(f"{order}13H", head)
        return words[3], words[10], words[11] << 16 | words[12], at + 26, 2
    raise Unreadable(f"no cpio header at {at}")


def _aligned(offset: int, align: int) -> int:
    return (offset + align - 1) // align * align
