"""The names of the files in a 7z archive, read from its header within hard bounds.

Only the header is read (7zFormat.txt of the LZMA SDK): member names, sizes, whether a
member is a directory, and whether its data is encrypted.  Member contents are never
unpacked here (clamd scans them); what the attachment check needs is the names.  7-Zip
compresses the header itself, with LZMA as a rule: it is decoded with the standard
library's lzma, the output capped at ``MAX_HEADER`` and the dictionary at the output's
size, whatever the archive claims.  An archive made with ``-mhe`` (names encrypted) has
an AES coder on its header: no names without the password.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass, field

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
SIGNATURE_HEADER = 32
MAX_HEADER = 4 * 1024 * 1024      # bytes of decoded header: names of tens of thousands of files
MAX_COUNT = 1 << 16               # coders, folders, streams: far beyond any real archive

# Property IDs.
END, HEADER, ARCHIVE_PROPERTIES, ADDITIONAL_STREAMS, MAIN_STREAMS, FILES_INFO = range(6)
PACK_INFO, UNPACK_INFO, SUBSTREAMS_INFO, SIZE, CRC, FOLDER, CODERS_UNPACK_SIZE = range(6, 13)
NUM_UNPACK_STREAM, EMPTY_STREAM, EMPTY_FILE = 13, 14, 15
NAME, WIN_ATTRIBUTES, ENCODED_HEADER = 0x11, 0x15, 0x17
DIRECTORY_ATTRIBUTE = 0x10

# Coder method IDs.
COPY, LZMA, LZMA2, AES = b"\x00", b"\x03\x01\x01", b"\x21", b"\x06\xf1\x07\x01"


class Unreadable(Exception):
    """Damaged, or built in a way this reader does not follow."""


class NamesEncrypted(Exception):
    """The header is encrypted (7z -mhe): the names need the password."""


class TooLarge(Exception):
    """More files, or a larger header, than the bounds allow."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_dir: bool
    encrypted: bool


@dataclass
class _Folder:
    """A chain of coders producing one unpacked stream, split into ``streams`` files."""

    coders: list[tuple[bytes, bytes]]         # (method ID, properties)
    outputs: int
    unbound_output: int                       # the output no other coder consumes
    unpack_sizes: list[int] = field(default_factory=list)
    crc_defined: bool = False
    streams: int = 1
    sizes: list[int] = field(default_factory=list)

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


def members(data: bytes, *, max_members: int) -> list[Member]:
    """Every file and directory the archive lists; raises ``Unreadable``,
    ``NamesEncrypted`` or ``TooLarge``."""
    if not data.startswith(SIGNATURE) or len(data) < SIGNATURE_HEADER:
        raise Unreadable("not a 7z archive")
    start = _Reader(data[12:SIGNATURE_HEADER])
    offset, size = int.from_bytes(start.take(8), "little"), int.from_bytes(start.take(8),
                                                                           "little")
    if size == 0:
        return []                                   # an empty archive
    if size > MAX_HEADER:
        raise TooLarge(f"header of {size} bytes")
    header = data[SIGNATURE_HEADER + offset:SIGNATURE_HEADER + offset + size]
    if len(header) != size:
        raise Unreadable("truncated")
    reader = _Reader(header)
    kind = reader.number()
    if kind == ENCODED_HEADER:
        reader = _Reader(_decode_header(data, _streams_info(reader)))
        kind = reader.number()
    if kind != HEADER:
        raise Unreadable(f"unexpected header type {kind}")
    return _files(reader, max_members)


def _decode_header(data: bytes, streams: _Streams) -> bytes:
    if len(streams.folders) != 1 or not streams.pack_sizes:
        raise Unreadable("header in several streams")
    folder = streams.folders[0]
    if folder.encrypted:
        raise NamesEncrypted
    if len(folder.coders) != 1:
        raise Unreadable("header packed by several coders")
    method, properties = folder.coders[0]
    wanted = folder.unpack_size
    if wanted > MAX_HEADER:
        raise TooLarge(f"header of {wanted} bytes")
    begin = SIGNATURE_HEADER + streams.pack_pos
    packed = data[begin:begin + streams.pack_sizes[0]]
    if method == COPY:
        out = packed[:wanted]
    else:
        # The dictionary need not exceed what is decoded; the archive's claim (up to
        # 4 GiB, allocated up front by liblzma) is not believed.
        dictionary = max(wanted, 4096)
        if method == LZMA and len(properties) == 5 and properties[0] < 9 * 5 * 5:
            lc, lp, pb = properties[0] % 9, properties[0] // 9 % 5, properties[0] // 45
            dictionary = min(dictionary, max(int.from_bytes(properties[1:], "little"), 4096))
            lzma_filter = {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb,
                           "dict_size": dictionary}
        elif method == LZMA2 and len(properties) == 1 and properties[0] <= 40:
            lzma_filter = {"id": lzma.FILTER_LZMA2, "dict_size": dictionary}
        else:
            raise Unreadable(f"header packed with method {method.hex() or '?'}")
        try:
            decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter])
            out = decoder.decompress(packed, max_length=wanted)
        except (lzma.LZMAError, ValueError) as exc:
            raise Unreadable(f"header does not unpack ({exc})") from exc
    if len(out) != wanted:
        raise Unreadable("header does not unpack to its size")
    return out


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
        reader.take(4 * sum(f.crc_defined for f in folders))
    return folders


def _folder(reader: _Reader) -> _Folder:
    coders: list[tuple[bytes, bytes]] = []
    inputs = outputs = 0
    for _ in range(reader.count("coders", 64)):
        flags = reader.byte()
        if flags & 0x80:
            raise Unreadable("alternative coder methods")
        method = reader.take(flags & 0x0F)
        ins, outs = (reader.count("coder inputs", 64), reader.count("coder outputs", 64)) \
            if flags & 0x10 else (1, 1)
        properties = reader.take(reader.count("property bytes")) if flags & 0x20 else b""
        coders.append((method, properties))
        inputs, outputs = inputs + ins, outputs + outs
    if outputs < 1:
        raise Unreadable("folder without output")
    bound = set()
    for _ in range(outputs - 1):
        reader.number()                                  # the input it feeds
        bound.add(reader.number())
    packed = inputs - (outputs - 1)
    if packed < 1:
        raise Unreadable("folder without input")
    if packed > 1:
        for _ in range(packed):
            reader.number()
    unbound = [index for index in range(outputs) if index not in bound]
    if len(unbound) != 1:
        raise Unreadable("folder coders do not chain")
    return _Folder(coders, outputs, unbound[0])


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
        unknown = sum(f.streams for f in folders if not (f.streams == 1 and f.crc_defined))
        reader.take(4 * sum(reader.defined(unknown)))
        prop = reader.number()


def _files(reader: _Reader, max_members: int) -> list[Member]:
    kind = reader.number()
    if kind == ARCHIVE_PROPERTIES:
        while reader.number() != END:
            reader.take(reader.number())
        kind = reader.number()
    if kind == ADDITIONAL_STREAMS:
        _streams_info(reader)
        kind = reader.number()
    folders: list[_Folder] = []
    if kind == MAIN_STREAMS:
        folders = _streams_info(reader).folders
        kind = reader.number()
    if kind == END:
        return []
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
    files = iter((folder, size) for folder in folders for size in folder.sizes)
    listed = []
    for index in range(count):
        if empty_stream[index]:
            is_dir = not empty_file[index] or bool(attributes[index] & DIRECTORY_ATTRIBUTE)
            listed.append(Member(names[index], 0, is_dir, False))
            continue
        folder, size = next(files, (None, 0))
        if folder is None:
            raise Unreadable("more files than data streams")
        listed.append(Member(names[index], size, False, folder.encrypted))
    return listed
