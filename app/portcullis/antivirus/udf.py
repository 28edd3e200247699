"""The files on a UDF disc image (ECMA-167 as OSTA UDF 1.02-2.01 records it).

A disc image may carry a UDF file system beside its ISO 9660 one or instead of it, and
Windows mounts the UDF one when both are there: an image whose two trees differ shows
the user the UDF files.  So both are read (``iso9660.py`` for the other).

The path from the start of the image to a file: the anchor at sector 256 points to the
volume descriptors; the partition descriptor says where the partition starts, the logical
volume descriptor where its file set descriptor is; that names the root directory's file
entry, whose allocation descriptors say where the directory's records are; each record
names a child's file entry.  Every descriptor is checked (tag identifier and checksum)
before it is used, every extent must lie inside the image, file entries are visited once
(loops), and depth, entries and directory sizes are bounded.  Only physical (type 1)
partition maps are read: virtual, sparable and metadata partitions (UDF 2.50, packet
writing) are reported as unreadable.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from portcullis.antivirus.readers import TooLarge, Unreadable

SECTOR = 2048
ANCHOR = 256
RECOGNITION_SECTORS = range(16, 32)  # where an NSR descriptor may stand (within 64 KiB)
MAX_DESCRIPTORS = 64                 # in the volume descriptor sequence
MAX_DEPTH = 16
MAX_DIRECTORY = 1024 * 1024          # bytes of one directory's records
MAX_EXTENTS = 1024                   # allocation descriptors of one file
# Descriptor tag identifiers (ECMA-167 3/7.2.1, 4/7.2.1).
ANCHOR_TAG, POINTER_TAG, PARTITION_TAG, VOLUME_TAG, TERMINATOR_TAG = 2, 3, 5, 6, 8
FILE_SET_TAG, IDENTIFIER_TAG, FILE_ENTRY_TAG, EXTENDED_ENTRY_TAG = 256, 257, 261, 266
DIRECTORY, PARENT, DELETED = 0x02, 0x08, 0x04
RECORDED = 0                         # extent type: recorded and allocated
CONTINUATION = 3                     # extent type: the next extent of descriptors


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    extents: tuple[tuple[int, int], ...]     # (byte offset in the image, length)

    def read(self, data: bytes, limit: int) -> bytes:
        """The file's first ``limit`` bytes (fewer when it is shorter)."""
        wanted, out = min(self.size, limit), bytearray()
        for start, length in self.extents:
            if len(out) >= wanted:
                break
            out += data[start:start + min(length, wanted - len(out))]
        return bytes(out)


def present(data: bytes) -> bool:
    """Whether the image says it holds a UDF file system: an NSR descriptor in the volume
    recognition sequence, which starts at sector 16 (after any ISO 9660 descriptors)."""
    return any(data[s * SECTOR + 1:s * SECTOR + 6] in (b"NSR02", b"NSR03")
               for s in RECOGNITION_SECTORS)


def files(data: bytes, *, max_entries: int) -> list[Entry]:
    """Every file on the image's UDF file system (directories walked, not listed)."""
    volume = _Volume(data)
    root = volume.root()
    entries: list[Entry] = []
    seen: set[int] = set()
    directory_bytes = 0
    queue: deque[tuple[str, int, int]] = deque([("", root, 0)])
    while queue:
        prefix, location, depth = queue.popleft()
        if location in seen:
            continue
        seen.add(location)
        size, extents, is_dir = volume.file_entry(location)
        if not is_dir:
            continue
        if size > MAX_DIRECTORY:
            raise TooLarge(f"a directory of {size} bytes")
        # A real image's directories never overlap; crafted ones that do would have the
        # same sectors parsed again for each.
        directory_bytes += size
        if directory_bytes > len(data):
            raise TooLarge("directories overlapping: more records than the image holds")
        records = Entry("", size, extents).read(data, size)
        for name, child, child_is_dir in _identifiers(records, volume):
            if len(entries) + len(queue) >= max_entries:
                raise TooLarge(f"more than {max_entries} entries")
            if child_is_dir:
                if depth + 1 >= MAX_DEPTH:
                    raise TooLarge(f"directories nested more than {MAX_DEPTH} deep")
                queue.append((f"{prefix}{name}/", child, depth + 1))
                continue
            if child in seen:
                continue                 # entries sharing one file entry: judged once
            seen.add(child)
            child_size, child_extents, _ = volume.file_entry(child)
            entries.append(Entry(f"{prefix}{name}", child_size, child_extents))
    return entries


class _Volume:
    """The partition and file set a UDF image's volume descriptors point to."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        anchor = self._descriptor(ANCHOR * SECTOR, ANCHOR_TAG)
        length, location = _u32(anchor, 16), _u32(anchor, 20)
        self.partition_start: int | None = None
        self.partition_length = 0
        self.partition_number: int | None = None
        self.file_set: int | None = None
        self._sequence(location, length)
        if self.partition_start is None or self.file_set is None:
            raise Unreadable("no partition or file set in the volume descriptors")

    def _descriptor(self, offset: int, *tags: int) -> bytes:
        """The descriptor at ``offset``, its tag checked, one of ``tags``."""
        block = self.data[offset:offset + SECTOR]
        if len(block) < 16 or offset < 0:
            raise Unreadable(f"a descriptor at {offset} lies beyond the end of the image")
        if not _tag_ok(block, 0):
            raise Unreadable(f"damaged descriptor tag at {offset}")
        if _u16(block, 0) not in tags:
            raise Unreadable(f"descriptor {_u16(block, 0)} at {offset}, expected {tags}")
        return block

    def _sequence(self, location: int, length: int) -> None:
        for _ in range(MAX_DESCRIPTORS):
            if length < SECTOR:
                return
            block = self._descriptor(location * SECTOR, POINTER_TAG, PARTITION_TAG,
                                     VOLUME_TAG, TERMINATOR_TAG, 1, 4, 7)
            tag = _u16(block, 0)
            if tag == TERMINATOR_TAG:
                return
            if tag == POINTER_TAG:            # the sequence continues elsewhere
                length, location = _u32(block, 20), _u32(block, 24)
                continue
            if tag == PARTITION_TAG and self.partition_start is None:
                self.partition_number = _u16(block, 22)
                self.partition_start = _u32(block, 188) * SECTOR
                self.partition_length = _u32(block, 192) * SECTOR
            elif tag == VOLUME_TAG:
                self._logical_volume(block)
            location, length = location + 1, length - SECTOR
        raise Unreadable("volume descriptor sequence too long")

    def _logical_volume(self, block: bytes) -> None:
        if _u32(block, 212) != SECTOR:
            raise Unreadable(f"logical block size {_u32(block, 212)}")
        if _u32(block, 268) < 1 or block[440] != 1:
            raise Unreadable(f"partition map type {block[440]} (only physical ones are read)")
        if _u16(block, 256) != 0:
            raise Unreadable("file set in a partition other than the physical one")
        self.file_set = _u32(block, 252)     # long_ad: length 248, block 252, partition 256

    def _block(self, number: int) -> int:
        """Byte offset of a logical block of the partition, checked to lie inside it."""
        assert self.partition_start is not None
        if number * SECTOR >= self.partition_length:
            raise Unreadable(f"logical block {number} outside the partition")
        return self.partition_start + number * SECTOR

    def root(self) -> int:
        assert self.file_set is not None
        file_set = self._descriptor(self._block(self.file_set), FILE_SET_TAG)
        return _u32(file_set, 404)           # root directory ICB: long_ad at 400

    def file_entry(self, number: int) -> tuple[int, tuple[tuple[int, int], ...], bool]:
        """(size, extents, is a directory) of the file entry at logical block ``number``."""
        offset = self._block(number)
        entry = self._descriptor(offset, FILE_ENTRY_TAG, EXTENDED_ENTRY_TAG)
        kind, flags = entry[27], _u16(entry, 34)
        size = int.from_bytes(entry[56:64], "little")
        extended = _u16(entry, 0) == EXTENDED_ENTRY_TAG
        ea_at = 208 if extended else 168
        ea_length, ad_length = _u32(entry, ea_at), _u32(entry, ea_at + 4)
        ad_start = ea_at + 8 + ea_length
        if ad_start + ad_length > SECTOR:
            raise Unreadable(f"damaged file entry at block {number}")
        is_dir = kind == 4
        method = flags & 0x7
        if method == 3:                      # the data is in the entry itself
            return min(size, ad_length), ((offset + ad_start, min(size, ad_length)),), is_dir
        if method not in (0, 1):
            raise Unreadable(f"allocation descriptors of type {method}")
        return size, self._extents(entry[ad_start:ad_start + ad_length], method), is_dir

    def _extents(self, descriptors: bytes, method: int) -> tuple[tuple[int, int], ...]:
        step = 8 if method == 0 else 16      # short_ad or long_ad
        extents: list[tuple[int, int]] = []
        position = 0
        # Every descriptor counts, continuations too: they may point at each other.
        for _ in range(MAX_EXTENTS):
            if position + step > len(descriptors):
                return tuple(extents)
            raw_length, block = _u32(descriptors, position), _u32(descriptors, position + 4)
            position += step
            kind, length = raw_length >> 30, raw_length & 0x3FFFFFFF
            if length == 0:
                return tuple(extents)
            if kind == CONTINUATION:
                start = self._block(block)
                descriptors, position = self.data[start:start + min(length, SECTOR)], 0
            elif kind == RECORDED:
                # (Allocated but unrecorded extents read as zeros: nothing to judge.)
                start = self._block(block)
                if start + length > len(self.data) or \
                        start + length > self.partition_start + self.partition_length:  # type: ignore[operator]
                    raise Unreadable("a file lies beyond the end of the image")
                extents.append((start, length))
        raise Unreadable(f"more than {MAX_EXTENTS} allocation descriptors in one file")


def _identifiers(records: bytes, volume: _Volume) -> list[tuple[str, int, bool]]:
    """(name, file entry block, is a directory) of each file identifier in a directory."""
    out = []
    position = 0
    while position + 38 <= len(records):
        if _u16(records, position) != IDENTIFIER_TAG or not _tag_ok(records, position):
            raise Unreadable("damaged directory record")
        characteristics, name_length = records[position + 18], records[position + 19]
        location = _u32(records, position + 24)       # ICB long_ad at 20: block at 24
        if _u16(records, position + 28):
            raise Unreadable("a file entry in a partition other than the physical one")
        use_length = _u16(records, position + 36)
        name_at = position + 38 + use_length
        end = name_at + name_length
        if end > len(records):
            raise Unreadable("damaged directory record")
        if not characteristics & (PARENT | DELETED):
            out.append((_name(records[name_at:end]), location,
                        bool(characteristics & DIRECTORY)))
        position += (38 + use_length + name_length + 3) & ~3
    return out


def _tag_ok(block: bytes, at: int) -> bool:
    """A descriptor tag's checksum: the sum of its other 15 bytes, modulo 256."""
    tag = block[at:at + 16]
    return len(tag) == 16 and (sum(tag) - tag[4]) & 0xFF == tag[4]


def _name(raw: bytes) -> str:
    """An OSTA compressed unicode name: 8 (one byte per character) or 16 (UTF-16BE)."""
    if raw[:1] == b"\x10":
        return raw[1:].decode("utf-16-be", "replace")
    return raw[1:].decode("latin-1")


def _u16(block: bytes, at: int) -> int:
    return int.from_bytes(block[at:at + 2], "little")


def _u32(block: bytes, at: int) -> int:
    return int.from_bytes(block[at:at + 4], "little")
