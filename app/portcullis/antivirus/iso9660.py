"""The files on an ISO 9660 disc image (ECMA-119), with Joliet names when present.

Disc images mailed as attachments (.iso, .img) were a favourite way to deliver
executables past mail filters: the files inside are stored as they are, so once the
directory tree is read, each file's bytes are a slice of the image and can be judged like
any other attachment.  The walk is bounded (directory depth, entries, directory size, and
each extent must lie inside the image; an extent seen twice is not walked again; and
the directories together may not hold more bytes than the image, which only crafted
overlapping ones do: each would have the same sectors parsed again).
The UDF file system an image may carry as well, or instead, is read by ``udf.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from portcullis.antivirus.readers import TooLarge, Unreadable

SECTOR = 2048
FIRST_DESCRIPTOR = 16
MAX_DESCRIPTORS = 32
MAX_DEPTH = 16
MAX_DIRECTORY = 1024 * 1024         # bytes of one directory's records
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
DIRECTORY_FLAG = 0x02


@dataclass(frozen=True)
class Entry:
    path: str
    start: int                       # byte offset of the file's data in the image
    size: int

    @property
    def extents(self) -> tuple[tuple[int, int], ...]:
        return ((self.start, self.size),)

    def read(self, data: bytes, limit: int) -> bytes:
        """The file's first ``limit`` bytes (fewer when it is shorter)."""
        return data[self.start:self.start + min(self.size, limit)]


def present(data: bytes) -> bool:
    """Whether the image starts with an ISO 9660 volume descriptor (sector 16)."""
    return data[FIRST_DESCRIPTOR * SECTOR + 1:FIRST_DESCRIPTOR * SECTOR + 6] == b"CD001"


def files(data: bytes, *, max_entries: int) -> list[Entry]:
    """Every file on the image (directories walked, not listed)."""
    root, joliet = _root_record(data)
    entries: list[Entry] = []
    seen: set[int] = set()
    directory_bytes = 0
    queue: deque[tuple[str, int, int, int]] = deque([("", *root, 0)])
    while queue:
        prefix, extent, length, depth = queue.popleft()
        if extent in seen:
            continue
        seen.add(extent)
        records = _records(data, extent, length, joliet)      # (checked to lie inside)
        directory_bytes += length
        if directory_bytes > len(data):
            raise TooLarge("directories overlapping: more records than the image holds")
        for name, child_extent, size, is_dir in records:
            if len(entries) + len(queue) >= max_entries:
                raise TooLarge(f"more than {max_entries} entries")
            path = f"{prefix}{name}"
            if is_dir:
                if depth + 1 >= MAX_DEPTH:
                    raise TooLarge(f"directories nested more than {MAX_DEPTH} deep")
                queue.append((f"{path}/", child_extent, size, depth + 1))
            else:
                entries.append(Entry(path, child_extent * SECTOR, size))
    return entries


def _root_record(data: bytes) -> tuple[tuple[int, int], bool]:
    """(extent, length) of the root directory, from the Joliet descriptor if there is
    one; and whether it is Joliet."""
    primary = None
    for index in range(FIRST_DESCRIPTOR, FIRST_DESCRIPTOR + MAX_DESCRIPTORS):
        descriptor = data[index * SECTOR:(index + 1) * SECTOR]
        if len(descriptor) < SECTOR or descriptor[1:6] != b"CD001":
            break
        kind = descriptor[0]
        if kind == 255:
            break
        root = _extent(descriptor[156:190])
        if kind == 2 and descriptor[88:91] in JOLIET_ESCAPES:
            return root, True
        if kind == 1 and primary is None:
            primary = root
    if primary is None:
        raise Unreadable("no ISO 9660 volume descriptor")
    return primary, False


def _extent(record: bytes) -> tuple[int, int]:
    return int.from_bytes(record[2:6], "little"), int.from_bytes(record[10:14], "little")


def _records(data: bytes, extent: int, length: int,
             joliet: bool) -> list[tuple[str, int, int, bool]]:
    if extent * SECTOR + length > len(data):
        raise Unreadable("a directory lies beyond the end of the image")
    if length > MAX_DIRECTORY:
        raise TooLarge(f"a directory of {length} bytes")
    block = data[extent * SECTOR:extent * SECTOR + length]
    out = []
    position = 0
    while position < len(block):
        size = block[position]
        if size == 0:                               # records do not cross sectors
            position = (position // SECTOR + 1) * SECTOR
            continue
        record = block[position:position + size]
        position += size
        if size < 34 or len(record) < size or 33 + record[32] > size:
            raise Unreadable("damaged directory record")
        raw_name = record[33:33 + record[32]]
        if raw_name in (b"\x00", b"\x01"):          # the directory itself, its parent
            continue
        child, child_length = _extent(record)
        if child * SECTOR + child_length > len(data):
            raise Unreadable("a file lies beyond the end of the image")
        out.append((_name(raw_name, joliet), child, child_length,
                    bool(record[25] & DIRECTORY_FLAG)))
    return out


def _name(raw: bytes, joliet: bool) -> str:
    name = raw.decode("utf-16-be", "replace") if joliet else raw.decode("latin-1")
    # "README.TXT;1": the version number is not part of the name a user sees.
    name = name.split(";", 1)[0]
    return name.rstrip(".") if "." in name else name
