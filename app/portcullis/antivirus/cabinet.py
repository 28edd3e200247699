"""The files in a Microsoft cabinet (.cab, [MS-CAB]), and their bytes where we can unpack.

Cabinets carry Windows installers and drivers, and malware past filters that look only at
the outer name.  A cabinet lists its files (name, size, offset in a folder) in a plain
header; a folder is one stream, stored or compressed as a whole in blocks of at most
32 KiB.  Stored, MSZIP and LZX folders (what makecab and gcab write by default, and what
makecab writes for size, as Windows updates and drivers come) are unpacked here, block by
block and only as far as the bytes asked for: MSZIP is deflate with each block carrying
the previous block's 32 KiB as its dictionary; LZX is decoded in Python (``lzx``), so its
output counts as slow.  Quantum folders are not unpacked: their files are known by name
only.

Everything the header says is checked against the cabinet's real size before it is
used, counts are bounded before anything is allocated for them, and a read that would
unpack more than the caller's budget is refused before a byte is inflated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from portcullis.antivirus import lzx
from portcullis.antivirus.readers import OverBudget, TooLarge, Unreadable

SIGNATURE = b"MSCF\x00\x00\x00\x00"
HEADER = struct.Struct("<4sIIIIIBBHHHHH")     # CFHEADER up to and including iCabinet
FOLDER = struct.Struct("<IHH")                # CFFOLDER: first block, blocks, compression
FILE = struct.Struct("<IIHHHH")               # CFFILE: size, offset, folder, date, time, attrs
BLOCK = struct.Struct("<IHH")                 # CFDATA: checksum, packed, unpacked bytes
BLOCK_MAX = 32 * 1024                         # unpacked bytes of one block, by the format
MAX_NAME = 256                                # CB_MAX_FILENAME
FLAG_PREVIOUS, FLAG_NEXT, FLAG_RESERVE = 0x1, 0x2, 0x4
NAME_IS_UTF8 = 0x80
STORED, MSZIP, LZX = 0, 1, 3
METHODS = {0: "stored", 1: "MSZIP", 2: "Quantum", 3: "LZX"}
# Folder numbers of files continued from or into another cabinet of a set.
CONTINUED = frozenset({0xFFFD, 0xFFFE, 0xFFFF})


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    folder: int              # index into ``Cabinet.folders``; CONTINUED values for spans
    offset: int              # where its bytes start in the folder's unpacked stream


@dataclass(frozen=True)
class Folder:
    method: int              # low four bits of typeCompress
    blocks: list[tuple[int, int, int]]   # (offset of its data, packed, unpacked) each
    packed: int
    unpacked: int
    window_bits: int = 0     # LZX: bits 8-12 of typeCompress

    @property
    def readable(self) -> bool:
        return self.method in (STORED, MSZIP) or \
            (self.method == LZX and self.window_bits in lzx.SLOTS)


class Cabinet:
    """A cabinet's listing, and reads of its members' bytes (unpacked on demand)."""

    def __init__(self, data: bytes, *, max_members: int) -> None:
        self.data = data
        self.unpacked = 0                       # bytes inflated or copied so far
        self._streams: dict[int, bytearray] = {}
        self._lzx: dict[int, lzx.Decoder] = {}
        self._next_block: dict[int, int] = {}
        (signature, _, size, _, files_at, _, _minor, major, n_folders, n_files, flags, _,
         _) = _unpack(HEADER, data, 0)
        if signature != SIGNATURE[:4] or major != 1:
            raise Unreadable("not a version 1 cabinet")
        if size > len(data):
            raise Unreadable(f"cut short ({len(data)} of {size} bytes)")
        if n_files > max_members:
            raise TooLarge(f"{n_files} files")
        at = HEADER.size
        folder_reserve = block_reserve = 0
        if flags & FLAG_RESERVE:
            header_reserve, folder_reserve, block_reserve = _unpack(struct.Struct("<HBB"),
                                                                    data, at)
            at += 4 + header_reserve
        for flag in (FLAG_PREVIOUS, FLAG_NEXT):   # cabinet and disk names of the set
            if flags & flag:
                for _ in range(2):
                    at = _string(data, at)[1]
        self.folders: list[Folder] = []
        blocks_seen = 0
        for _ in range(n_folders):
            first, count, compression = _unpack(FOLDER, data, at)
            at += FOLDER.size + folder_reserve
            # Folders of a sound cabinet do not share blocks, so all of them together
            # cannot have more than the file has room for.
            blocks_seen += count
            if blocks_seen > len(data) // BLOCK.size:
                raise Unreadable("folders claim more data blocks than the file holds")
            blocks = _blocks(data, first, count, block_reserve)
            self.folders.append(Folder(compression & 0x0F, blocks,
                                       sum(b[1] for b in blocks), sum(b[2] for b in blocks),
                                       compression >> 8 & 0x1F))
        self.members: list[Member] = []
        at = files_at
        for _ in range(n_files):
            size, offset, folder, _, _, attributes = _unpack(FILE, data, at)
            raw, at = _string(data, at + FILE.size)
            name = raw.decode("utf-8" if attributes & NAME_IS_UTF8 else "cp1252", "replace")
            if folder not in CONTINUED and folder >= n_folders:
                raise Unreadable(f"file {name!r} in folder {folder} of {n_folders}")
            self.members.append(Member(name, size, folder, offset))

    def method(self, member: Member) -> str:
        if member.folder in CONTINUED:
            return "continued in another cabinet"
        return METHODS.get(self.folders[member.folder].method, "unknown method")

    def readable(self, member: Member) -> bool:
        return member.folder not in CONTINUED and self.folders[member.folder].readable

    def slowly_decoded(self, member: Member) -> bool:
        """Whether the member's folder is decoded in Python (LZX)."""
        return self.folders[member.folder].method == LZX

    def read(self, member: Member, length: int, *, budget: int) -> bytes:
        """Up to ``length`` bytes from the start of ``member``, unpacking its folder as far
        as that needs; OverBudget when that would unpack more than ``budget`` bytes."""
        folder = self.folders[member.folder]
        stream = self._streams.setdefault(member.folder, bytearray())
        end = member.offset + min(member.size, length)
        if end > folder.unpacked:
            raise Unreadable(f"{member.name!r} lies beyond the end of its folder")
        needed = end - len(stream)
        if needed > budget:
            raise OverBudget(f"{needed} more bytes of the folder to unpack")
        while len(stream) < end:
            index = self._next_block.get(member.folder, 0)
            start, packed, unpacked = folder.blocks[index]
            block = self.data[start:start + packed]
            if folder.method == MSZIP:
                block = _inflate(block, bytes(stream[-BLOCK_MAX:]), unpacked)
            elif folder.method == LZX:
                # One bit stream through the folder's blocks; a frame per block.
                decoder = self._lzx.get(member.folder)
                if decoder is None:
                    decoder = self._lzx[member.folder] = lzx.Decoder(
                        folder.window_bits, b"".join(self.data[at:at + size]
                                                     for at, size, _ in folder.blocks))
                block = decoder.frame(unpacked)
            if len(block) != unpacked:
                raise Unreadable(f"block {index} unpacks to {len(block)}, not {unpacked} bytes")
            stream += block
            self.unpacked += unpacked
            self._next_block[member.folder] = index + 1
        return bytes(stream[member.offset:end])


def _unpack(layout: struct.Struct, data: bytes, at: int) -> tuple:
    if at < 0 or at + layout.size > len(data):
        raise Unreadable(f"a header at {at} runs past the end")
    return layout.unpack_from(data, at)


def _string(data: bytes, at: int) -> tuple[bytes, int]:
    """A NUL-terminated string at ``at``, and where the next field starts."""
    end = data.find(b"\0", at, at + MAX_NAME + 1)
    if end < 0:
        raise Unreadable(f"a name at {at} is unterminated or longer than {MAX_NAME} bytes")
    return data[at:end], end + 1


def _blocks(data: bytes, at: int, count: int, reserve: int) -> list[tuple[int, int, int]]:
    """A folder's data blocks, each checked to lie inside the cabinet."""
    blocks = []
    for _ in range(count):
        _, packed, unpacked = _unpack(BLOCK, data, at)
        start = at + BLOCK.size + reserve
        if start + packed > len(data) or unpacked > BLOCK_MAX:
            raise Unreadable(f"a data block at {at} runs past the end")
        blocks.append((start, packed, unpacked))
        at = start + packed
    return blocks


def _inflate(block: bytes, history: bytes, unpacked: int) -> bytes:
    if not block.startswith(b"CK"):
        raise Unreadable("MSZIP block without its signature")
    try:
        inflater = zlib.decompressobj(-15, zdict=history) if history else \
            zlib.decompressobj(-15)
        return inflater.decompress(block[2:], unpacked + 1)
    except zlib.error as exc:
        raise Unreadable(f"damaged MSZIP block ({exc})") from exc
