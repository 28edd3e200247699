"""The files in a 7z archive: their names from its header, their bytes where the standard
library can unpack them, all within hard bounds.

The header (7zFormat.txt of the LZMA SDK) gives member names, sizes, whether a member is
a directory, and whether its data is encrypted.  7-Zip compresses the header itself, with
LZMA as a rule.  Member data lives in folders: one stream per folder, packed by a chain of
coders and cut into the folder's files.  Folders stored, or packed with LZMA or LZMA2,
alone or behind the x86 branch filter (BCJ) or Delta, are decoded with the standard
library's lzma, those packed by Deflate, Deflate64 or BZip2 alone (``-m0=Deflate``, which
ClamAV's 7z reader does not decode) with its zlib and bz2 and ``inflate64``, those packed
by PPMd (``-m0=PPMd``, variant H) alone or behind BCJ or Delta with ``ppmd7``, and
those behind BCJ2 (four streams, each stored or packed by one of those) with ``bcj2``,
only as far as the bytes asked for; other shapes leave their files known by name, and so
does a PPMd folder claiming more model memory than ``ppmd7.MAX_MEMORY`` (a model cannot
be made smaller than it was packed with).  Every decoder's output is capped, and its
dictionary at the output's size, whatever the archive claims (liblzma would allocate a
claimed 4 GiB up front).

Encrypted folders (an AES coder reading the packed stream, ``sevenzipcrypt``) are decoded
once ``unlock`` finds the password that opens them; an archive made with ``-mhe`` (names
encrypted) has an AES coder on its header too: no names without the password.  A
file's CRC is checked whenever it is read whole.
"""

from __future__ import annotations

import bz2
import dataclasses
import itertools
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from portcullis.antivirus import bcj2, inflate64, ppmd7, sevenzipcrypt
from portcullis.antivirus.readers import (
    Allowance,
    OverBudget,
    TooLarge,
    Unreadable,
    Unsupported,
)

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
SIGNATURE_HEADER = 32
MAX_HEADER = 4 * 1024 * 1024      # bytes of decoded header: names of tens of thousands of files
MAX_COUNT = 1 << 16               # coders, folders, streams: far beyond any real archive
MAX_DICTIONARY = 64 * 1024 * 1024  # no more is ever decoded from one message
# What an encrypted folder must decode to with a password: its first file, when the CRC
# is known and the file no larger than this (else the first 4 KiB, without a fault).
UNLOCK_CHECKED = 256 * 1024
UNLOCK_CHECKED_SLOW = 16 * 1024   # ... decoded in Python (PPMd, Deflate64)
UNLOCK_PROBE = 4096

# Property IDs.
END, HEADER, ARCHIVE_PROPERTIES, ADDITIONAL_STREAMS, MAIN_STREAMS, FILES_INFO = range(6)
PACK_INFO, UNPACK_INFO, SUBSTREAMS_INFO, SIZE, CRC, FOLDER, CODERS_UNPACK_SIZE = range(6, 13)
NUM_UNPACK_STREAM, EMPTY_STREAM, EMPTY_FILE = 13, 14, 15
NAME, WIN_ATTRIBUTES, ENCODED_HEADER = 0x11, 0x15, 0x17
DIRECTORY_ATTRIBUTE = 0x10

# Coder method IDs.
COPY, LZMA, LZMA2, AES = b"\x00", b"\x03\x01\x01", b"\x21", b"\x06\xf1\x07\x01"
BCJ_X86, DELTA, BCJ2 = b"\x03\x03\x01\x03", b"\x03", b"\x03\x03\x01\x1b"
DEFLATE, DEFLATE64, BZIP2 = b"\x04\x01\x08", b"\x04\x01\x09", b"\x04\x02\x02"
PPMD = b"\x03\x04\x01"


class _Decompressor(Protocol):
    """What the folder decoder needs of a decoder: lzma's and bz2's interface, the input
    given once and the output taken ``max_length`` bytes at a time."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Inflater:
    """zlib's raw inflate (7z's Deflate) with that interface."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(-15)

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self._inflate.decompress(self._inflate.unconsumed_tail + data,
                                        max(max_length, 0))


# Coders liblzma does not have, decoded when a folder has no other: their decoders.
_STANDALONE: dict[bytes, Callable[[], _Decompressor]] = {DEFLATE: _Inflater,
                                                         DEFLATE64: inflate64.Inflater,
                                                         BZIP2: bz2.BZ2Decompressor}
# Of those, the ones decoded in Python: slow, so they count against their own budget.
_SLOW = {DEFLATE64}


class _Filtered:
    """A decoder liblzma does not have (PPMd) behind branch filters it does have (BCJ,
    Delta): the inner decoder's output is handed to liblzma as LZMA2's stored chunks,
    so the filters are liblzma's own."""

    def __init__(self, inner: ppmd7.SevenZipDecoder, filters: list[dict]) -> None:
        self.inner = inner
        self._outer = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
            *filters, {"id": lzma.FILTER_LZMA2, "dict_size": 4096}])
        self._packed: bytes | None = None
        self._first = True

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._packed is None:
            self._packed = data
        out = bytearray()
        outer = self._outer
        while len(out) < max_length and not outer.eof:
            feed = b""
            if outer.needs_input:
                # A little more than asked: a branch filter holds back up to 4 bytes.
                piece = self.inner.decompress(self._packed,
                                              min(max_length - len(out) + 16, 0x10000))
                if piece:
                    feed = bytes((1 if self._first else 2,)) + \
                        (len(piece) - 1).to_bytes(2, "big") + piece
                    self._first = False
                else:
                    feed = b"\x00"                # the end of the chunks
            out += outer.decompress(feed, max_length - len(out))
        return bytes(out)

    def release(self) -> None:
        self.inner.release()


class NamesEncrypted(Exception):
    """The header is encrypted (7z -mhe): the names need the password."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_dir: bool
    encrypted: bool
    folder: int | None = None                 # whose unpacked stream holds its bytes
    offset: int = 0                           # where in that stream they start
    crc: int | None = None                    # CRC32 of its bytes, when the archive has it


@dataclass(frozen=True)
class _Bcj2Input:
    """One of BCJ2's inputs: the folder's packed stream it is read from, the coders from
    the one giving it back to the one reading that stream (none: the stream itself), and
    the output whose size is its size (None: the packed stream's own)."""

    packed: int
    chain: list[tuple[bytes, bytes]]
    size_of: int | None


@dataclass
class _Folder:
    """A chain of coders producing one unpacked stream, split into ``streams`` files."""

    coders: list[tuple[bytes, bytes]]         # (method ID, properties)
    outputs: int
    unbound_output: int                       # the output no other coder consumes
    # The coders from the one giving the folder's output back to the one reading the
    # packed stream (liblzma's filter order), when every coder has one input and one
    # output; None for other shapes (BCJ2).
    chain: list[tuple[bytes, bytes]] | None = None
    # A folder whose output is BCJ2's: where each of its four inputs comes from.
    bcj2: list[_Bcj2Input] | None = None
    packed_streams: int = 1
    unpack_sizes: list[int] = field(default_factory=list)
    crc_defined: bool = False
    crc: int | None = None                    # of the whole unpacked stream
    streams: int = 1
    sizes: list[int] = field(default_factory=list)
    crcs: list[int | None] = field(default_factory=list)   # of each file in it

    @property
    def encrypted(self) -> bool:
        return any(method == AES for method, _ in self.coders)

    @property
    def unpack_size(self) -> int:
        return self.unpack_sizes[self.unbound_output] if self.unpack_sizes else 0


@dataclass
class _Streams:
    pack_pos: int = 0
    pack_sizes: list[int] = field(default_factory=list)
    folders: list[_Folder] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise Unreadable("header ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise Unreadable("header ends early")
        self.pos += count
        return self.data[self.pos - count:self.pos]

    def number(self) -> int:
        """7z's variable-length integer: leading one bits of the first byte say how many
        bytes follow."""
        first, mask, value = self.byte(), 0x80, 0
        for index in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * index))
            value |= self.byte() << (8 * index)
            mask >>= 1
        return value

    def count(self, what: str, limit: int = MAX_COUNT) -> int:
        value = self.number()
        if value > limit:
            raise Unreadable(f"{value} {what}")
        return value

    def bits(self, count: int) -> list[bool]:
        out: list[bool] = []
        current = 0
        for index in range(count):
            if index % 8 == 0:
                current = self.byte()
            out.append(bool(current & (0x80 >> (index % 8))))
        return out

    def defined(self, count: int) -> list[bool]:
        return [True] * count if self.byte() else self.bits(count)


class Archive:
    """A 7z archive's listing, and reads of its members' bytes (unpacked on demand)."""

    def __init__(self, data: bytes, *, max_members: int,
                 ppmd_allowance: Allowance | None = None, password: str | None = None) -> None:
        """Raises ``Unreadable``, ``NamesEncrypted`` or ``TooLarge``; PPMd folders spend
        their symbols from ``ppmd_allowance`` (the message's).  ``password`` opens a
        header encrypted with AES (7z -mhe: a wrong one raises Unreadable)."""
        self.data = data
        self.ppmd_allowance = ppmd_allowance
        self.unpacked = 0                       # bytes decoded so far, all folders
        self.members, self._streams = _listing(data, max_members, password)
        self._decoders: dict[int, _FolderDecoder | bcj2.Decoder] = {}
        # Keys by (rounds, salt, password): 7-Zip gives every folder its own IV only.
        self._keys: dict[tuple[int, bytes, str], bytes] = {}
        # Where each folder's packed streams are: folders use the packed streams in
        # order, as many as each has inputs from outside.
        self._packed: list[list[tuple[int, int]] | None] = []
        index, offset = 0, SIGNATURE_HEADER + self._streams.pack_pos
        sizes = self._streams.pack_sizes
        for folder in self._streams.folders:
            mine = sizes[index:index + folder.packed_streams]
            starts = itertools.accumulate(mine[:-1], initial=offset)
            self._packed.append(list(zip(starts, mine, strict=True))
                                if len(mine) == folder.packed_streams else None)
            offset += sum(mine)
            index += folder.packed_streams

    def readable(self, member: Member) -> bool:
        """Whether the member's bytes can be unpacked here (else: known by name); an
        encrypted one once it is unlocked."""
        if member.folder is None:
            return not member.is_dir              # an empty file: no bytes to unpack
        return _decodable(_plain(self._streams.folders[member.folder]))

    def derives(self, member: Member, password: str) -> bool:
        """Whether unlocking the member with ``password`` needs a key derivation (it is
        not known from another folder already)."""
        folder = self._streams.folders[member.folder] if member.folder is not None else None
        if folder is None or not folder.encrypted:
            return False
        try:
            lock = sevenzipcrypt.lock(_aes_properties(folder))
        except (Unreadable, Unsupported):
            return False                        # unlock will say why
        return (lock.rounds_log, lock.salt, password) not in self._keys

    def unlock(self, member: Member, password: str) -> bool:
        """Whether ``password`` opens the member's encrypted folder.  There is no password
        check value: the folder's first file must decode and match its CRC, or when that
        is too long to try for each password, its first bytes decode without a fault (a
        member's own CRC is checked once it is read whole).  Raises Unsupported for a key
        derivation too costly to try, Unreadable for damaged coder properties."""
        if member.folder is None:
            return True
        number = member.folder
        current = self._decoders.get(number)
        if current is not None and current.password == password:
            return True
        folder = self._streams.folders[number]
        packed, plain = self._packed[number], _plain(folder)
        if packed is None or len(packed) != 1 or plain is None or not _decodable(plain):
            raise Unsupported("packed in a way not read here")
        [(start, size)] = packed
        lock = sevenzipcrypt.lock(_aes_properties(folder))
        key = self._keys.get((lock.rounds_log, lock.salt, password))
        if key is None:
            key = self._keys[(lock.rounds_log, lock.salt, password)] = \
                sevenzipcrypt.key(lock, password)
        decrypted = sevenzipcrypt.decrypt(self.data[start:start + size], lock, key)
        first = plain.sizes[0] if plain.sizes else plain.unpack_size
        crcs = plain.crcs or [plain.crc]
        checked = crcs[0] is not None and \
            first <= (UNLOCK_CHECKED_SLOW if _slow(plain) else UNLOCK_CHECKED)
        try:
            decoder = self._decoder(decrypted, plain)
            decoder.extend(first if checked else min(plain.unpack_size, UNLOCK_PROBE))
        except Unreadable:
            return False
        if checked and zlib.crc32(decoder.output[:first]) != crcs[0]:
            return False
        if current is not None:
            current.release()
        decoder.password = password
        self._decoders[number] = decoder
        return True

    def clamav_decodes(self, member: Member) -> bool:
        """Whether clamd (ClamAV 1.4, with the LZMA SDK's coders) decodes the member itself:
        not when its folder is packed by Deflate, Deflate64 or BZip2."""
        return member.folder is None or \
            _standalone(self._streams.folders[member.folder]) is None

    def _decoder(self, packed: bytes, folder: _Folder) -> _FolderDecoder:
        """A decoder for a folder's (decrypted) packed stream."""
        if _ppmd(folder) is not None:
            # One PPMd model at a time (each may take up to ppmd7.MAX_MEMORY): the
            # members are read in order, so a folder before this one is done with.
            for earlier in self._decoders.values():
                earlier.release()
        return _FolderDecoder(packed, len(packed), folder, self.ppmd_allowance)

    def _bcj2_decoder(self, streams: list[bytes], folder: _Folder) -> bcj2.Decoder:
        """A BCJ2 folder's decoder, over a decoder for each of its four inputs; its
        opcodes spend from the message's PPMd allowance, the slowest work there is."""
        inputs = []
        for part in _bcj2_parts(folder) or []:
            packed = streams[part.packed]
            size = len(packed) if part.size_of is None else folder.unpack_sizes[part.size_of]
            inputs.append(_FolderDecoder(packed, len(packed), _chain_folder(part.chain, size)))
        main, calls, jumps, ranges = inputs
        return bcj2.Decoder(main, calls, jumps, ranges, folder.unpack_size,
                            self.ppmd_allowance)

    def slowly_decoded(self, member: Member) -> bool:
        """Whether the member's folder is decoded in Python (Deflate64, PPMd)."""
        if member.folder is None:
            return False
        return _slow(_plain(self._streams.folders[member.folder]))

    def read(self, member: Member, length: int, *, budget: int) -> bytes:
        """Up to ``length`` bytes from the start of ``member``, decoding its folder as far
        as that needs; OverBudget when that would decode more than ``budget`` bytes."""
        if member.folder is None:
            return b""
        decoder = self._decoders.get(member.folder)
        if decoder is None:
            if self._streams.folders[member.folder].encrypted:
                raise Unreadable("encrypted, not unlocked")
            packed = self._packed[member.folder]
            if packed is None:
                raise Unreadable("folder without its packed stream")
            folder = self._streams.folders[member.folder]
            streams = [self.data[start:start + size] for start, size in packed]
            decoder = self._decoders[member.folder] = \
                self._bcj2_decoder(streams, folder) if folder.bcj2 else \
                self._decoder(streams[0], folder)
        end = member.offset + min(member.size, length)
        before = len(decoder.output)
        if end - before > budget:
            raise OverBudget(f"{end - before} more bytes of the folder to unpack")
        try:
            decoder.extend(end)
        finally:
            self.unpacked += len(decoder.output) - before
        content = bytes(decoder.output[member.offset:end])
        if len(content) == member.size and member.crc is not None and \
                zlib.crc32(content) != member.crc:
            raise Unreadable("CRC does not match")
        return content


class _FolderDecoder:
    """One folder's unpacked stream, decoded as far as it has been asked for."""

    def __init__(self, packed: bytes, size: int, folder: _Folder,
                 ppmd_allowance: Allowance | None = None) -> None:
        if len(packed) != size:
            raise Unreadable("packed data cut short")
        self.packed = packed
        self.size = folder.unpack_size
        self.output = bytearray()
        filters, standalone, ppmd = _filters(folder), _standalone(folder), _ppmd(folder)
        assert filters is not None or standalone is not None or ppmd is not None
        # None: stored (COPY), the packed bytes are the files' bytes.
        self.decoder: _Decompressor | None = None
        self.released = False
        self.password: str | None = None        # what decrypted the packed stream
        try:
            if ppmd is not None:
                properties, branch = ppmd
                inner = ppmd7.SevenZipDecoder(properties, ppmd_allowance)
                self.decoder = _Filtered(inner, branch) if branch else inner
            elif standalone is not None:
                self.decoder = standalone()
            elif filters:
                self.decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
        except (lzma.LZMAError, ValueError) as exc:   # options liblzma refuses
            raise Unreadable(f"coder options refused ({exc})") from exc
        self._fed = False

    def release(self) -> None:
        """Give a PPMd model's memory back: the folder is decoded no further."""
        if isinstance(self.decoder, (ppmd7.SevenZipDecoder, _Filtered)):
            self.decoder.release()
            self.released = True

    def extend(self, end: int) -> None:
        if end > self.size:
            raise Unreadable("a file lies beyond the end of its folder")
        wanted = end - len(self.output)
        if wanted <= 0:
            return
        if self.released:
            raise OverBudget("the folder's PPMd model was given back for another folder's")
        if self.decoder is None:
            chunk = self.packed[len(self.output):end]
        else:
            data, self._fed = (b"" if self._fed else self.packed), True
            try:
                chunk = self.decoder.decompress(data, max_length=wanted)
            except (lzma.LZMAError, zlib.error, OSError, EOFError) as exc:  # bz2: OSError
                raise Unreadable(f"damaged packed data ({exc})") from exc
        self.output += chunk
        if len(chunk) < wanted:
            raise Unreadable("packed data ends before its files do")


def _decodable(folder: _Folder | None) -> bool:
    return folder is not None and (_filters(folder) is not None or
                                   _standalone(folder) is not None or _ppmd(folder) is not None
                                   or _bcj2_parts(folder) is not None)


def _bcj2_parts(folder: _Folder) -> list[_Bcj2Input] | None:
    """A BCJ2 folder's inputs, when each is stored or decoded by liblzma or one of the
    standalone decoders (not PPMd: one model at a time, see ``Archive._decoder``)."""
    if folder.bcj2 is None or folder.encrypted:
        return None
    for part in folder.bcj2:
        inner = _chain_folder(part.chain, 0)
        if _filters(inner) is None and _standalone(inner) is None:
            return None
    return folder.bcj2


def _chain_folder(chain: list[tuple[bytes, bytes]], size: int) -> _Folder:
    """The coders producing one of BCJ2's inputs, as a folder of their own."""
    chain = chain or [(COPY, b"")]
    return _Folder(chain, 1, 0, chain=chain, unpack_sizes=[size])


def _plain(folder: _Folder) -> _Folder | None:
    """The folder as it is once decrypted: itself when it is not encrypted; its coders
    without the AES one reading the packed stream (7-Zip's only way to encrypt); None
    for other shapes."""
    if not folder.encrypted:
        return folder
    if not folder.chain or folder.chain[-1][0] != AES or \
            sum(method == AES for method, _ in folder.coders) != 1:
        return None
    # AES alone: the decrypted bytes are the files' (a small header, 7-Zip's -m0=Copy).
    chain = folder.chain[:-1] or [(COPY, b"")]
    return dataclasses.replace(
        folder, chain=chain, coders=[c for c in folder.coders if c[0] != AES] or chain)


def _slow(folder: _Folder | None) -> bool:
    """Whether the folder is decoded in Python (Deflate64, PPMd, BCJ2)."""
    return folder is not None and (_ppmd(folder) is not None or folder.bcj2 is not None or (
        _standalone(folder) is not None and folder.chain[0][0] in _SLOW))  # type: ignore[index]


def _aes_properties(folder: _Folder) -> bytes:
    return next(properties for method, properties in folder.coders if method == AES)


def _ppmd(folder: _Folder) -> tuple[bytes, list[dict]] | None:
    """A PPMd folder's coder properties and liblzma's filters for the branch coders
    before it (BCJ, Delta), when ``ppmd7`` decodes it: order 2-64, memory within its
    bound."""
    if not folder.chain or folder.encrypted:
        return None
    *branch, (method, properties) = folder.chain
    if method != PPMD or len(properties) != 5:
        return None
    memory = int.from_bytes(properties[1:], "little")
    if not (ppmd7.MIN_ORDER <= properties[0] <= ppmd7.MAX_ORDER
            and ppmd7.MIN_MEMORY <= memory <= ppmd7.MAX_MEMORY):
        return None
    filters = _branch_filters(branch)
    return None if filters is None else (properties, filters)


def _branch_filters(branch: list[tuple[bytes, bytes]]) -> list[dict] | None:
    """liblzma's filters for the coders before the one reading the packed stream, or
    None when one of them is not BCJ (x86) or Delta."""
    filters: list[dict] = []
    for method, properties in reversed(branch):
        if method == BCJ_X86 and not properties:
            filters.insert(0, {"id": lzma.FILTER_X86})
        elif method == DELTA and len(properties) == 1:
            filters.insert(0, {"id": lzma.FILTER_DELTA, "dist": properties[0] + 1})
        else:
            return None
    return filters


def _standalone(folder: _Folder) -> Callable[[], _Decompressor] | None:
    """The decoder of a folder packed by a single coder liblzma does not have."""
    if folder.chain is None or folder.encrypted or len(folder.chain) != 1:
        return None
    return _STANDALONE.get(folder.chain[0][0])


def _filters(folder: _Folder) -> list[dict] | None:
    """liblzma's filter chain for a folder ([] when stored), or None when it cannot be
    decoded here.  Dictionaries are capped at what the folder unpacks to."""
    if not folder.chain or folder.encrypted:
        return None
    if folder.chain == [(COPY, b"")]:
        return []
    *branch, (method, properties) = folder.chain
    dictionary = max(4096, min(folder.unpack_size, MAX_DICTIONARY))
    if method == LZMA and len(properties) == 5 and properties[0] < 9 * 5 * 5:
        lc, lp, pb = properties[0] % 9, properties[0] // 9 % 5, properties[0] // 45
        claimed = int.from_bytes(properties[1:], "little")
        filters: list[dict] = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb,
                                "dict_size": max(4096, min(dictionary, claimed))}]
    elif method == LZMA2 and len(properties) == 1 and properties[0] <= 40:
        claimed = (2 | (properties[0] & 1)) << (properties[0] // 2 + 11)
        filters = [{"id": lzma.FILTER_LZMA2, "dict_size": max(4096, min(dictionary, claimed))}]
    else:
        return None
    before = _branch_filters(branch)
    return None if before is None else before + filters


def _listing(data: bytes, max_members: int,
             password: str | None = None) -> tuple[list[Member], _Streams]:
    if not data.startswith(SIGNATURE) or len(data) < SIGNATURE_HEADER:
        raise Unreadable("not a 7z archive")
    start = _Reader(data[12:SIGNATURE_HEADER])
    offset, size = int.from_bytes(start.take(8), "little"), int.from_bytes(start.take(8),
                                                                           "little")
    if size == 0:
        return [], _Streams()                       # an empty archive
    if size > MAX_HEADER:
        raise TooLarge(f"header of {size} bytes")
    header = data[SIGNATURE_HEADER + offset:SIGNATURE_HEADER + offset + size]
    if len(header) != size:
        raise Unreadable("truncated")
    reader = _Reader(header)
    kind = reader.number()
    if kind == ENCODED_HEADER:
        reader = _Reader(_decode_header(data, _streams_info(reader), password))
        kind = reader.number()
    if kind != HEADER:
        raise Unreadable(f"unexpected header type {kind}")
    return _files(reader, max_members)


def _decode_header(data: bytes, streams: _Streams, password: str | None) -> bytes:
    if len(streams.folders) != 1 or not streams.pack_sizes:
        raise Unreadable("header in several streams")
    folder = streams.folders[0]
    start = SIGNATURE_HEADER + streams.pack_pos
    packed = data[start:start + streams.pack_sizes[0]]
    if folder.encrypted:
        plain = _plain(folder)
        if password is None:
            raise NamesEncrypted
        if plain is None:
            raise Unsupported("a header encrypted in a way not read here")
        lock = sevenzipcrypt.lock(_aes_properties(folder))
        packed = sevenzipcrypt.decrypt(packed, lock, sevenzipcrypt.key(lock, password))
        folder = plain
    if folder.unpack_size > MAX_HEADER:
        raise TooLarge(f"header of {folder.unpack_size} bytes")
    # 7-Zip packs headers with LZMA; PPMd, slow in Python, would go uncounted here.
    if not _decodable(folder) or _ppmd(folder) is not None or folder.bcj2 is not None:
        methods = "+".join(m.hex() or "?" for m, _ in folder.coders)
        raise Unreadable(f"header packed with method {methods}")
    decoder = _FolderDecoder(packed, len(packed), folder)
    decoder.extend(folder.unpack_size)
    if folder.crc is not None and zlib.crc32(decoder.output) != folder.crc:
        raise Unreadable("header CRC does not match (damaged, or a wrong password)")
    return bytes(decoder.output)


def _streams_info(reader: _Reader) -> _Streams:
    streams = _Streams()
    while (kind := reader.number()) != END:
        if kind == PACK_INFO:
            streams.pack_pos = reader.number()
            count = reader.count("packed streams")
            while (prop := reader.number()) != END:
                if prop == SIZE:
                    streams.pack_sizes = [reader.number() for _ in range(count)]
                elif prop == CRC:
                    reader.take(4 * sum(reader.defined(count)))
                else:
                    raise Unreadable(f"unexpected pack property {prop}")
        elif kind == UNPACK_INFO:
            streams.folders = _unpack_info(reader)
        elif kind == SUBSTREAMS_INFO:
            _substreams_info(reader, streams.folders)
        else:
            raise Unreadable(f"unexpected streams property {kind}")
    return streams


def _unpack_info(reader: _Reader) -> list[_Folder]:
    if reader.number() != FOLDER:
        raise Unreadable("folders expected")
    count = reader.count("folders")
    if reader.byte():
        raise Unreadable("folders stored elsewhere")
    folders = [_folder(reader) for _ in range(count)]
    if reader.number() != CODERS_UNPACK_SIZE:
        raise Unreadable("unpack sizes expected")
    for folder in folders:
        folder.unpack_sizes = [reader.number() for _ in range(folder.outputs)]
    while (prop := reader.number()) != END:
        if prop != CRC:
            raise Unreadable(f"unexpected unpack property {prop}")
        for folder, defined in zip(folders, reader.defined(count), strict=True):
            folder.crc_defined = defined
        for folder in folders:
            if folder.crc_defined:
                folder.crc = int.from_bytes(reader.take(4), "little")
    return folders


def _folder(reader: _Reader) -> _Folder:
    coders: list[tuple[bytes, bytes]] = []
    shapes: list[tuple[int, int]] = []                   # (inputs, outputs) of each coder
    inputs = outputs = 0
    simple = True
    for _ in range(reader.count("coders", 64)):
        flags = reader.byte()
        if flags & 0x80:
            raise Unreadable("alternative coder methods")
        method = reader.take(flags & 0x0F)
        ins, outs = (reader.count("coder inputs", 64), reader.count("coder outputs", 64)) \
            if flags & 0x10 else (1, 1)
        properties = reader.take(reader.count("property bytes")) if flags & 0x20 else b""
        coders.append((method, properties))
        shapes.append((ins, outs))
        inputs, outputs = inputs + ins, outputs + outs
        simple = simple and ins == outs == 1
    if outputs < 1:
        raise Unreadable("folder without output")
    feeds: dict[int, int] = {}                           # input index <- output index
    for _ in range(outputs - 1):
        target = reader.number()
        feeds[target] = reader.number()
    packed = inputs - (outputs - 1)
    if packed < 1:
        raise Unreadable("folder without input")
    # The input each packed stream feeds, in the streams' order.
    packed_inputs = [reader.number() for _ in range(packed)] if packed > 1 else \
        [index for index in range(inputs) if index not in feeds][:1]
    unbound = [index for index in range(outputs) if index not in feeds.values()]
    if len(unbound) != 1:
        raise Unreadable("folder coders do not chain")
    folder = _Folder(coders, outputs, unbound[0], packed_streams=packed)
    folder.bcj2 = _bcj2_inputs(coders, shapes, feeds, packed_inputs, unbound[0])
    if simple:       # coder n reads input n and writes output n
        chain, current = [], unbound[0]
        while current is not None and len(chain) < len(coders):
            chain.append(coders[current])
            current = feeds.get(current)
        folder.chain = chain if current is None else None
    return folder


def _bcj2_inputs(coders: list[tuple[bytes, bytes]], shapes: list[tuple[int, int]],
                 feeds: dict[int, int], packed_inputs: list[int],
                 unbound: int) -> list[_Bcj2Input] | None:
    """Where each of BCJ2's four inputs comes from, when BCJ2 gives the folder's output
    and every other coder has one input and one output; else None."""
    first_input = list(itertools.accumulate((ins for ins, _ in shapes), initial=0))
    coder_of = {output: number for number, output in
                enumerate(itertools.accumulate((outs for _, outs in shapes), initial=0))
                if number < len(shapes)}
    top = coder_of.get(unbound)
    if top is None or coders[top][0] != BCJ2 or shapes[top] != (4, 1) or \
            any(shape != (1, 1) for number, shape in enumerate(shapes) if number != top):
        return None
    parts = []
    for slot in range(4):
        index, chain, size_of = first_input[top] + slot, [], None
        while index in feeds:
            coder = coder_of.get(feeds[index])
            if coder is None or coder == top or len(chain) == len(coders):
                return None
            size_of = feeds[index] if size_of is None else size_of
            chain.append(coders[coder])
            index = first_input[coder]
        if index not in packed_inputs:
            return None
        parts.append(_Bcj2Input(packed_inputs.index(index), chain, size_of))
    return parts


def _substreams_info(reader: _Reader, folders: list[_Folder]) -> None:
    prop = reader.number()
    if prop == NUM_UNPACK_STREAM:
        for folder in folders:
            folder.streams = reader.count("files in one folder")
        claimed = sum(f.streams for f in folders)
        if claimed > MAX_COUNT:
            raise TooLarge(f"{claimed} files")
        prop = reader.number()
    for folder in folders:
        if folder.streams == 0:
            continue
        sizes = [reader.number() for _ in range(folder.streams - 1)] if prop == SIZE else []
        last = folder.unpack_size - sum(sizes)
        if last < 0:
            raise Unreadable("file sizes exceed their folder")
        folder.sizes = [*sizes, last] if prop == SIZE or folder.streams == 1 \
            else [0] * folder.streams
    if prop == SIZE:
        prop = reader.number()
    while prop != END:
        if prop != CRC:
            raise Unreadable(f"unexpected substreams property {prop}")
        unknown = [f for f in folders if not (f.streams == 1 and f.crc_defined)]
        defined = iter(reader.defined(sum(f.streams for f in unknown)))
        for folder in unknown:
            folder.crcs = [int.from_bytes(reader.take(4), "little") if next(defined) else None
                           for _ in range(folder.streams)]
        prop = reader.number()


def _files(reader: _Reader, max_members: int) -> tuple[list[Member], _Streams]:
    kind = reader.number()
    if kind == ARCHIVE_PROPERTIES:
        while reader.number() != END:
            reader.take(reader.number())
        kind = reader.number()
    if kind == ADDITIONAL_STREAMS:
        _streams_info(reader)
        kind = reader.number()
    streams = _Streams()
    if kind == MAIN_STREAMS:
        streams = _streams_info(reader)
        kind = reader.number()
    folders = streams.folders
    if kind == END:
        return [], streams
    if kind != FILES_INFO:
        raise Unreadable(f"unexpected header property {kind}")
    count = reader.number()
    if count > max_members:
        raise TooLarge(f"{count} files")
    empty_stream, empty_file = [False] * count, [False] * count
    names: list[str] = []
    attributes = [0] * count
    while (prop := reader.number()) != END:
        body = _Reader(reader.take(reader.number()))
        if prop == EMPTY_STREAM:
            empty_stream = body.bits(count)
        elif prop == EMPTY_FILE:
            flags = iter(body.bits(sum(empty_stream)))
            empty_file = [next(flags) if empty else False for empty in empty_stream]
        elif prop == NAME:
            if body.byte():
                raise Unreadable("names stored elsewhere")
            names = body.data[1:].decode("utf-16-le", "replace").split("\x00")
        elif prop == WIN_ATTRIBUTES:
            defined = body.defined(count)
            if body.byte():
                raise Unreadable("attributes stored elsewhere")
            attributes = [int.from_bytes(body.take(4), "little") if d else 0 for d in defined]
    if len(names) < count:
        raise Unreadable("fewer names than files")
    files = _data_streams(folders)
    listed = []
    for index in range(count):
        if empty_stream[index]:
            is_dir = not empty_file[index] or bool(attributes[index] & DIRECTORY_ATTRIBUTE)
            listed.append(Member(names[index], 0, is_dir, False))
            continue
        number, folder, offset, size, crc = next(files, (None, None, 0, 0, None))
        if folder is None:
            raise Unreadable("more files than data streams")
        listed.append(Member(names[index], size, False, folder.encrypted, number, offset,
                             crc))
    return listed, streams


def _data_streams(folders: list[_Folder],
                  ) -> Iterator[tuple[int, _Folder, int, int, int | None]]:
    """(folder number, folder, offset, size, CRC) of each file's bytes, in the files'
    order."""
    for number, folder in enumerate(folders):
        offset = 0
        crcs = folder.crcs or ([folder.crc] if len(folder.sizes) == 1 else [])
        for index, size in enumerate(folder.sizes):
            yield number, folder, offset, size, crcs[index] if index < len(crcs) else None
            offset += size
