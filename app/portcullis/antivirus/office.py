"""Office documents that carry macros.

Macros are how most malicious Office documents act, and mail from outside rarely needs
them.  They live in a VBA project: in Office 97-2003 files (OLE2 compound files: .doc,
.xls, .ppt) a storage holding the streams ``_VBA_PROJECT`` and ``dir`` ([MS-OVBA] 2.2);
in Office Open XML packages (.docm, .xlsm, .pptm, and .docx files renamed to hide them)
a part named ``vbaProject.bin``.  Finding one needs the directory of the compound file,
not the macro code: the sectors of the directory are followed through the file allocation
table ([MS-CFB]), every sector number checked against the file, loops and sizes bounded.
Excel 4.0 (XLM) macro sheets are not looked for here.
"""

from __future__ import annotations

import struct

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HEADER = 512
HEADER_FAT_ENTRIES = 109             # the first FAT sector numbers, in the header itself
END_OF_CHAIN = 0xFFFFFFFE
ENTRY = 128                          # bytes of one directory entry
STORAGE, STREAM, ROOT = 1, 2, 5
MAX_DIRECTORY_SECTORS = 4096         # 16,384 entries at 512-byte sectors: far beyond Office's
VBA_STREAMS = frozenset({"_VBA_PROJECT", "DIR"})


class Unreadable(Exception):
    """Not a compound file, or a damaged one."""


def vba_part(name: str) -> bool:
    """Whether a package part's name is that of an Office Open XML VBA project."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower() == "vbaproject.bin"


def ole_has_macros(data: bytes) -> bool:
    """Whether an OLE2 compound file holds a VBA project (False when it cannot be read:
    clamd still scans it)."""
    try:
        names = {name.upper() for name in ole_names(data)}
    except Unreadable:
        return False
    return names >= VBA_STREAMS


def ole_names(data: bytes) -> list[str]:
    """The names of the storages and streams in a compound file's directory."""
    if len(data) < HEADER or not data.startswith(OLE_SIGNATURE):
        raise Unreadable("not an OLE2 compound file")
    shift, = struct.unpack_from("<H", data, 30)
    if shift not in (9, 12):
        raise Unreadable(f"sector shift {shift}")
    size = 1 << shift
    fat_sectors, first_directory, _, _, _, first_difat, difat_sectors = \
        struct.unpack_from("<IIIIIII", data, 44)
    sectors = len(data) // size - 1           # the file has room for no more than these
    if fat_sectors > sectors:
        raise Unreadable(f"{fat_sectors} FAT sectors in a file of {sectors}")
    table = _AllocationTable(data, size, _fat_sectors(data, size, sectors, fat_sectors,
                                                      first_difat, difat_sectors))
    names = []
    for sector in table.chain(first_directory, MAX_DIRECTORY_SECTORS):
        block = _sector(data, size, sector)
        for at in range(0, size, ENTRY):
            length, kind = struct.unpack_from("<HB", block, at + 64)
            if kind in (STORAGE, STREAM, ROOT) and 2 <= length <= 64 and length % 2 == 0:
                names.append(block[at:at + length - 2].decode("utf-16-le", "replace"))
    return names


def _fat_sectors(data: bytes, size: int, sectors: int, count: int, first_difat: int,
                 difat_count: int) -> list[int]:
    """Where the file allocation table is: the header's list, continued in DIFAT sectors."""
    numbers = list(struct.unpack_from(f"<{HEADER_FAT_ENTRIES}I", data, 76))
    per_difat = size // 4 - 1                 # the last entry points to the next DIFAT sector
    difat = first_difat
    for _ in range(min(difat_count, sectors)):
        if len(numbers) >= count or difat >= sectors:
            break
        entries = struct.unpack_from(f"<{per_difat + 1}I", _sector(data, size, difat))
        numbers.extend(entries[:per_difat])
        difat = entries[per_difat]
    return numbers[:count]


class _AllocationTable:
    """The FAT, read entry by entry where a chain needs it (a large file's whole table
    would be millions of numbers)."""

    def __init__(self, data: bytes, size: int, fat_sectors: list[int]) -> None:
        self.data, self.size, self.fat_sectors = data, size, fat_sectors
        self.per_sector = size // 4

    def next(self, sector: int) -> int:
        index, entry = divmod(sector, self.per_sector)
        if index >= len(self.fat_sectors):
            raise Unreadable(f"sector {sector} outside the allocation table")
        block = _sector(self.data, self.size, self.fat_sectors[index])
        return struct.unpack_from("<I", block, entry * 4)[0]

    def chain(self, start: int, limit: int) -> list[int]:
        chain: list[int] = []
        seen: set[int] = set()
        sector = start
        while sector != END_OF_CHAIN:
            if sector in seen:
                raise Unreadable(f"a sector chain loops at {sector}")
            if len(chain) >= limit:
                raise Unreadable(f"a chain of more than {limit} sectors")
            seen.add(sector)
            chain.append(sector)
            sector = self.next(sector)
        return chain


def _sector(data: bytes, size: int, number: int) -> bytes:
    start = (number + 1) * size               # the header fills the first sector's place
    block = data[start:start + size]
    if len(block) < size:
        raise Unreadable(f"sector {number} lies beyond the end of the file")
    return block
