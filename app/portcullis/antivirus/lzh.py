"""The files in an LHA/LZH archive (header levels 0, 1 and 2), the Japanese archiver's
format that malware campaigns send because few filters list it.

Each member is a header and its packed bytes; a zero byte ends the archive.  The method
id sits at the same place in every level (``-lh5-``, ...).  Level 0 and 1 headers carry
the name in the base header and a byte-sum checksum; levels 1 and 2 add extended headers
(type, data, size of the next), where the file name (0x01) and directory (0x02, with 0xFF
as separator) live.  A level 1 member has both names, and readers disagree (lhasa takes
the extended one, a level 0 reader sees only the base one): both are judged.  Stored
members (``-lh0-``, ``-lz4-``) are read, those packed with ``-lh4-`` to ``-lh7-`` (what
LHA has written for thirty years) decoded by ``static_huffman`` and checked against their
CRC-16 when decoded whole; the older and rarer methods are known by name.  Level 3
(32-bit header sizes, almost never written) is refused as unreadable.
"""

from __future__ import annotations

import re
import struct

from portcullis.antivirus import static_huffman
from portcullis.antivirus.readers import Stored, TooLarge, Unreadable

_METHOD = re.compile(rb"-(?:lh[0-9a-d]|lz[s45]|pm[0-2])-")
STORED_METHODS = (b"-lh0-", b"-lz4-", b"-pm0-")
PACKED = {b"-lh4-": static_huffman.LH5, b"-lh5-": static_huffman.LH5,
          b"-lh6-": static_huffman.LH6, b"-lh7-": static_huffman.LH7}
DIRECTORY = b"-lhd-"
MAX_EXTENDED = 100
NAME, FOLDER = 0x01, 0x02


def is_lzh(head: bytes) -> bool:
    return len(head) > 21 and bool(_METHOD.fullmatch(head[2:7])) and head[20] in (0, 1, 2)


def members(data: bytes, *, max_members: int) -> list[Stored]:
    """The files of an LZH archive, in order."""
    if not is_lzh(data):
        raise Unreadable("not an LZH archive")
    found: list[Stored] = []
    at = 0
    while at < len(data) and data[at] != 0:      # a zero byte (or the end) ends it
        method = data[at + 2:at + 7]
        if not _METHOD.fullmatch(method) and method != DIRECTORY:
            raise Unreadable(f"no member header at {at}")
        level = data[at + 20] if at + 20 < len(data) else -1
        if level == 0 or level == 1:
            names, packed, data_at = _level01(data, at, level)
            crc_at = at + 22 + data[at + 21]            # after the name
        elif level == 2:
            names, packed, data_at = _level2(data, at)
            crc_at = at + 21
        else:
            raise Unreadable(f"header level {level}")
        crc = int.from_bytes(data[crc_at:crc_at + 2], "little")
        size, = struct.unpack_from("<I", data, at + 11)
        content = data[data_at:data_at + packed]
        if len(content) < packed:
            raise Unreadable("a member runs past the end")
        at = data_at + packed
        if method == DIRECTORY:
            continue
        if len(found) >= max_members:
            raise TooLarge(f"more than {max_members} members")
        found.append(Stored(names[0], size, content if method in STORED_METHODS else None,
                            unpack=static_huffman.unpacker(
                                content, size, PACKED[method],
                                lambda whole, crc=crc: crc16(whole) == crc)
                            if method in PACKED else None, aliases=tuple(names[1:])))
    return found


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = crc >> 1 ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def crc16(data: bytes) -> int:
    """LHA's checksum of a member: CRC-16 (the ARC one, polynomial 0x8005 reflected)."""
    crc, table = 0, _CRC16
    for byte in data:
        crc = crc >> 8 ^ table[(crc ^ byte) & 0xFF]
    return crc


def _level01(data: bytes, at: int, level: int) -> tuple[list[str], int, int]:
    """(names, packed size, where the packed bytes start) of a level 0 or 1 header."""
    size = data[at]
    header = data[at + 2:at + 2 + size]
    if len(header) < size or size < 22:
        raise Unreadable(f"header at {at} cut short")
    if sum(header) & 0xFF != data[at + 1]:
        raise Unreadable(f"header at {at} fails its checksum")
    name_length = data[at + 21]
    name = data[at + 22:at + 22 + name_length]
    packed, = struct.unpack_from("<I", data, at + 7)
    data_at = at + 2 + size
    if level == 0:
        return [_text(name.replace(b"\\", b"/"))], packed, data_at
    # Level 1: "packed" counts the extended headers too, which come first.
    next_size, = struct.unpack_from("<H", data, data_at - 2)
    extended, after = _extended(data, data_at, next_size)
    return _paths(extended, name), packed - (after - data_at), after


def _level2(data: bytes, at: int) -> tuple[list[str], int, int]:
    if at + 26 > len(data):
        raise Unreadable(f"header at {at} cut short")
    total, = struct.unpack_from("<H", data, at)
    packed, = struct.unpack_from("<I", data, at + 7)
    next_size, = struct.unpack_from("<H", data, at + 24)
    extended, after = _extended(data, at + 26, next_size)
    if after > at + total:
        raise Unreadable(f"extended headers at {at} run past the header")
    return _paths(extended, b""), packed, at + total


def _extended(data: bytes, at: int, size: int) -> tuple[dict[int, bytes], int]:
    """Extended headers from ``at`` (the first ``size`` bytes long): {type: data}, and
    where they end."""
    found: dict[int, bytes] = {}
    for _ in range(MAX_EXTENDED):
        if size == 0:
            return found, at
        block = data[at:at + size]
        if len(block) < size or size < 3:
            raise Unreadable(f"extended header at {at} cut short")
        found.setdefault(block[0], block[1:-2])
        at += size
        size, = struct.unpack_from("<H", block, size - 2)
    raise Unreadable("too many extended headers")


def _paths(extended: dict[int, bytes], base: bytes) -> list[str]:
    """The member's path by its extended name header (what lhasa extracts), then by the
    name in its base header when that differs (what a level 0 reader extracts)."""
    folder = extended.get(FOLDER, b"").replace(b"\xff", b"/")
    if folder and not folder.endswith(b"/"):
        folder += b"/"
    names = [_text(folder + name) for name in (extended.get(NAME), base) if name]
    return list(dict.fromkeys(names)) or [_text(folder)]


def _text(raw: bytes) -> str:
    """LHA writes names in the system's code page, Shift JIS in Japan."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp932", "replace")
