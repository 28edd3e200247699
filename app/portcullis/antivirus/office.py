"""Office documents that carry macros.

Macros are how most malicious Office documents act, and mail from outside rarely needs
them.  Two kinds are looked for:

- VBA projects: in Office 97-2003 files (OLE2 compound files: .doc, .xls, .ppt) a storage
  holding the streams ``_VBA_PROJECT`` and ``dir`` ([MS-OVBA] 2.2); in Office Open XML
  packages (.docm, .xlsm, .pptm, and .docx files renamed to hide them) a part named
  ``vbaProject.bin``.
- Excel 4.0 (XLM) macro sheets in Excel 97-2003 workbooks: a BoundSheet8 record of type
  "macro sheet" in the workbook stream's global part ([MS-XLS] 2.4.28).  Encrypted
  workbooks (a FilePass record) cannot be told and count as without.  In Office Open XML
  workbooks (.xlsm, .xlsb): a part given a macro sheet's content type.

Files packaged into a document (an OLE "Package" object: a ``\x01Ole10Native`` stream
holding a file's name and bytes, the icon a user double-clicks) are handed back to be
judged like archive members: an executable packaged into a .doc is refused as if it
were attached.

The compound file is read through its own tables ([MS-CFB]): the directory and small
streams' sectors are followed through the file allocation table, or the mini stream's,
every sector number checked against the file, chains bounded and never walked in a loop.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from portcullis.antivirus import officecrypt
from portcullis.antivirus.readers import Unreadable

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HEADER = 512
HEADER_FAT_ENTRIES = 109             # the first FAT sector numbers, in the header itself
END_OF_CHAIN = 0xFFFFFFFE
ENTRY = 128                          # bytes of one directory entry
STORAGE, STREAM, ROOT = 1, 2, 5
MAX_CHAIN = 65536                    # sectors of one chain: 32 MiB at 512 bytes
MAX_DIRECTORY_SECTORS = 4096         # 16,384 entries at 512-byte sectors: far beyond Office's
MAX_WORKBOOK_GLOBALS = 1024 * 1024   # bytes of a workbook stream read for its sheet list
MAX_WORKBOOK_PASSWORDS = 64          # candidates tried on an RC4 workbook (two hashes each)
VBA_STREAMS = frozenset({"_VBA_PROJECT", "DIR"})
NATIVE = "\x01Ole10Native"             # an OLE Package object's stream
NATIVE_HEADER = 2 * 260 + 32            # its fields before the file's bytes, at most
MAX_PATH = 260
MAX_PACKAGES = 100
# BIFF8 record types.
BOF, EOF, BOUNDSHEET, FILEPASS = 0x0809, 0x000A, 0x0085, 0x002F
# Records an RC4-encrypted workbook leaves in the clear: BOF, FilePass, UsrExcl, FileLock,
# InterfaceHdr, RRDInfo, RRDHead ([MS-XLS] 2.2.10).
RC4_CLEAR = frozenset({BOF, FILEPASS, 0x0194, 0x0195, 0x00E1, 0x0196, 0x0138})
MACRO_SHEET = 1


@dataclass(frozen=True)
class Entry:
    name: str
    kind: int                        # STORAGE, STREAM or ROOT
    start: int                       # first sector (mini sector for small streams)
    size: int


# Content types of Excel 4.0 macro sheets in Office Open XML workbooks (.xlsm: XML,
# .xlsb: binary); Excel finds a sheet by its type, whatever the part is called.
MACRO_SHEET_TYPES = (b"application/vnd.ms-excel.macrosheet",
                     b"application/vnd.ms-excel.intlmacrosheet")


def content_types_part(name: str) -> bool:
    """Whether a package part's name is that of the package's content types (part names
    are case-insensitive)."""
    return name.lower() == "[content_types].xml"


def declares_macro_sheet(content_types: bytes) -> bool:
    """Whether a package's ``[Content_Types].xml`` gives a part the type of an Excel 4.0
    macro sheet."""
    if content_types.startswith((b"\xff\xfe", b"\xfe\xff")):       # UTF-16, as XML may be
        content_types = content_types.decode("utf-16", "replace").encode("utf-8")
    lowered = content_types.lower()
    return any(kind in lowered for kind in MACRO_SHEET_TYPES)


def vba_part(name: str) -> bool:
    """Whether a package part's name is that of an Office Open XML VBA project."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower() == "vbaproject.bin"


@dataclass(frozen=True)
class Encrypted:
    """A password-protected Office Open XML document: its EncryptionInfo stream, and its
    EncryptedPackage stream's first ``limit`` bytes, read only once a key is found (it is
    the whole document, up to max_member)."""
    info: bytes
    read_package: Callable[[], bytes]


@dataclass
class Contents:
    macros: str | None = None                     # "VBA macros", "Excel 4.0 macro sheet"
    # (names: the label first, then the paths' file names; first bytes)
    packaged: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    # A password-protected Office Open XML document (officecrypt.py opens it).
    encrypted: Encrypted | None = None
    # An Excel 97-2003 workbook encrypted with a password that was not found.
    locked: bool = False


class Locked(Exception):
    """Encrypted with a password nobody gave."""


def contents(data: bytes, *, limit: int,
             passwords: Callable[[], list[str]] = list) -> Contents:
    """What an OLE2 compound file carries: macros, and the files packaged into it (their
    first ``limit`` bytes); nothing when it cannot be read (clamd still scans it).
    ``passwords()``: candidates from the message, for an encrypted workbook."""
    found = Contents()
    try:
        document = CompoundFile(data)
    except Unreadable:
        return found
    try:
        found.macros = _macros(document, passwords)
    except Locked:
        found.locked = True
    except Unreadable:
        pass
    with contextlib.suppress(Unreadable):
        found.packaged = _packaged(document, limit)
    with contextlib.suppress(Unreadable):
        found.encrypted = _encrypted(document, limit)
    return found


def _encrypted(document: CompoundFile, limit: int) -> Encrypted | None:
    streams = {e.name: e for e in document.entries if e.kind == STREAM}
    info = streams.get(officecrypt.ENCRYPTION_INFO)
    package = streams.get(officecrypt.ENCRYPTED_PACKAGE)
    if info is None or package is None:
        return None
    return Encrypted(document.read(info, officecrypt.MAX_INFO),
                     lambda: document.read(package, limit + officecrypt.SEGMENT + 8))


def _macros(document: CompoundFile, passwords: Callable[[], list[str]]) -> str | None:
    if {entry.name.upper() for entry in document.entries} >= VBA_STREAMS:
        return "VBA macros"
    workbook = next((e for e in document.entries if e.kind == STREAM
                     and e.name in ("Workbook", "Book")), None)
    if workbook is not None:
        return _macro_sheet(document.read(workbook, MAX_WORKBOOK_GLOBALS), passwords)
    return None


def _packaged(document: CompoundFile, limit: int) -> list[tuple[tuple[str, ...], bytes]]:
    """The files packaged in a document, ``limit`` bytes of them in all: directory entries
    may share one sector chain, and a hundred of them read a 6 MiB document as 600 MiB."""
    found = []
    streams = [e for e in document.entries if e.kind == STREAM and e.name == NATIVE]
    chains: set[tuple[int, int]] = set()
    left = limit
    for entry in streams[:MAX_PACKAGES]:
        if (entry.start, entry.size) in chains:
            continue
        chains.add((entry.start, entry.size))
        # Past the limit a package is still read far enough for its name to be judged.
        package = native_package(document.read(entry, max(left, 4096) + NATIVE_HEADER))
        if package is not None:
            found.append((package[0], package[1][:max(left, 0)]))
            left -= len(found[-1][1])
    return found


class CompoundFile:
    """An OLE2 compound file's directory, and reads of its streams."""

    def __init__(self, data: bytes) -> None:
        if len(data) < HEADER or not data.startswith(OLE_SIGNATURE):
            raise Unreadable("not an OLE2 compound file")
        shift, mini_shift = struct.unpack_from("<HH", data, 30)
        if shift not in (9, 12) or mini_shift != 6:
            raise Unreadable(f"sector shifts {shift}/{mini_shift}")
        self.data = data
        self.size = 1 << shift
        (fat_sectors, first_directory, _, self.cutoff, first_mini_fat, mini_fat_sectors,
         first_difat, difat_sectors) = struct.unpack_from("<IIIIIIII", data, 44)
        self.sectors = len(data) // self.size - 1  # the file has room for no more than these
        if fat_sectors > self.sectors:
            raise Unreadable(f"{fat_sectors} FAT sectors in a file of {self.sectors}")
        self._fat = self._fat_sectors(fat_sectors, first_difat, difat_sectors)
        self.entries = self._directory(first_directory)
        self._first_mini_fat, self._mini_fat_sectors = first_mini_fat, mini_fat_sectors
        self._mini_fat: list[int] | None = None       # read when a small stream is
        self._mini_stream: bytes | None = None

    def read(self, entry: Entry, limit: int) -> bytes:
        """The first ``limit`` bytes of a stream (fewer when it is shorter)."""
        wanted = min(entry.size, limit)
        # The root entry's stream is the mini stream itself: always in regular sectors.
        if entry.size >= self.cutoff or entry.kind == ROOT:
            chain = self._chain(entry.start, -(-wanted // self.size))
            return b"".join(self._sector(n) for n in chain)[:wanted]
        if self._mini_stream is None or self._mini_fat is None:
            root = self.entries[0]
            self._mini_stream = self.read(root, root.size)
            self._mini_fat = self._chain(self._first_mini_fat, self._mini_fat_sectors)
        out = b"".join(self._mini_stream[n * 64:(n + 1) * 64]
                       for n in self._mini_chain(entry.start, -(-wanted // 64)))
        if len(out) < wanted:
            raise Unreadable("a stream lies beyond the end of the mini stream")
        return out[:wanted]

    # -- tables ---------------------------------------------------------------------------

    def _fat_sectors(self, count: int, first_difat: int, difat_count: int) -> list[int]:
        """Where the file allocation table is: the header's list, continued in DIFAT
        sectors."""
        numbers = list(struct.unpack_from(f"<{HEADER_FAT_ENTRIES}I", self.data, 76))
        per_difat = self.size // 4 - 1       # the last entry points to the next DIFAT sector
        difat = first_difat
        for _ in range(min(difat_count, self.sectors)):
            if len(numbers) >= count or difat >= self.sectors:
                break
            entries = struct.unpack_from(f"<{per_difat + 1}I", self._sector(difat))
            numbers.extend(entries[:per_difat])
            difat = entries[per_difat]
        return numbers[:count]

    def _directory(self, first: int) -> list[Entry]:
        entries = []
        for sector in self._chain(first, MAX_DIRECTORY_SECTORS):
            block = self._sector(sector)
            for at in range(0, self.size, ENTRY):
                length, kind = struct.unpack_from("<HB", block, at + 64)
                start, size = struct.unpack_from("<IQ", block, at + 116)
                if kind in (STORAGE, STREAM, ROOT) and 2 <= length <= 64 and length % 2 == 0:
                    name = block[at:at + length - 2].decode("utf-16-le", "replace")
                    entries.append(Entry(name, kind, start, size & 0xFFFFFFFF
                                         if self.size == 512 else size))
        if not entries or entries[0].kind != ROOT:
            raise Unreadable("no root entry")
        return entries

    def _next(self, sector: int) -> int:
        """The sector after ``sector`` in its chain, from the FAT (read entry by entry:
        a large file's whole table would be millions of numbers)."""
        index, entry = divmod(sector, self.size // 4)
        if index >= len(self._fat):
            raise Unreadable(f"sector {sector} outside the allocation table")
        return struct.unpack_from("<I", self._sector(self._fat[index]), entry * 4)[0]

    def _mini_next(self, sector: int) -> int:
        assert self._mini_fat is not None
        index, entry = divmod(sector, self.size // 4)
        if index >= len(self._mini_fat):
            raise Unreadable(f"mini sector {sector} outside the mini allocation table")
        return struct.unpack_from("<I", self._sector(self._mini_fat[index]), entry * 4)[0]

    def _chain(self, start: int, limit: int) -> list[int]:
        return _walk(start, limit, self._next)

    def _mini_chain(self, start: int, limit: int) -> list[int]:
        return _walk(start, limit, self._mini_next)

    def _sector(self, number: int) -> bytes:
        begin = (number + 1) * self.size       # the header fills the first sector's place
        block = self.data[begin:begin + self.size]
        if len(block) < self.size:
            raise Unreadable(f"sector {number} lies beyond the end of the file")
        return block


def _walk(start: int, limit: int, following: Callable[[int], int]) -> list[int]:
    """The first ``limit`` sectors (at most MAX_CHAIN) of the chain from ``start``, fewer
    when it ends sooner."""
    chain: list[int] = []
    seen: set[int] = set()
    sector = start
    while sector != END_OF_CHAIN and len(chain) < min(limit, MAX_CHAIN):
        if sector in seen:
            raise Unreadable(f"a sector chain loops at {sector}")
        seen.add(sector)
        chain.append(sector)
        sector = following(sector)
    return chain


def native_package(stream: bytes) -> tuple[tuple[str, ...], bytes] | None:
    """(names, bytes) of the file in an OLE Package's native data, as an Ole10Native
    stream holds it: size (4), flags (2), label, source path, two numbers (8), temporary
    path, data size (4), data (oletools' oleobj reads it so); None when not laid out so.
    The names: the label (what the icon shows), then the file names of the source and
    temporary paths (the packager writes the file under the latter and opens it)."""
    label_end = stream.find(b"\0", 6, 6 + MAX_PATH)
    source_end = stream.find(b"\0", label_end + 1, label_end + 1 + MAX_PATH) \
        if label_end >= 0 else -1
    temporary = source_end + 1 + 8
    temporary_end = stream.find(b"\0", temporary, temporary + MAX_PATH) \
        if source_end >= 0 else -1
    if temporary_end < 0 or temporary_end + 5 > len(stream):
        return None
    size, = struct.unpack_from("<I", stream, temporary_end + 1)
    data = stream[temporary_end + 5:temporary_end + 5 + size]
    paths = [stream[label_end + 1:source_end], stream[temporary:temporary_end]]
    names = [stream[6:label_end], *(p.replace(b"\\", b"/").rsplit(b"/", 1)[-1] for p in paths)]
    decoded = [n.decode("cp1252", "replace") for n in names if n]
    return tuple(dict.fromkeys(decoded)) or ("(packaged file)",), data


def _macro_sheet(workbook: bytes, passwords: Callable[[], list[str]]) -> str | None:
    """What says the global part of a BIFF8 workbook stream lists an Excel 4.0 macro
    sheet, or None.  An RC4-encrypted workbook is decrypted with Excel's built-in password
    (Excel opens those without asking) or one from the message; Locked when neither."""
    at = 0
    rc4: officecrypt.Rc4Workbook | None = None
    how = ""
    while at + 4 <= len(workbook):
        kind, length = struct.unpack_from("<HH", workbook, at)
        body = workbook[at + 4:at + 4 + length]
        if at == 0 and kind != BOF:
            return None                      # not a workbook stream
        if rc4 is not None and kind not in RC4_CLEAR:
            # lbPlyPos, a BoundSheet8's first field, is left in the clear.
            skip = 4 if kind == BOUNDSHEET else 0
            body = body[:skip] + rc4.decrypt(at + 4 + skip, body[skip:])
        at += 4 + length
        if kind == EOF:
            return None
        if kind == FILEPASS and rc4 is None:   # one per workbook: each would search again
            rc4, how = _open_workbook(body, passwords)
        if kind == BOUNDSHEET and len(body) >= 6 and body[5] == MACRO_SHEET:
            return "Excel 4.0 macro sheet" + how
    return None


def _open_workbook(filepass: bytes, passwords: Callable[[], list[str]]
                   ) -> tuple[officecrypt.Rc4Workbook, str]:
    """The decryption of an RC4-encrypted workbook and how it was opened; Locked when no
    password opens it, Unreadable when it cannot be told (XOR obfuscation, damage)."""
    try:
        for password in (officecrypt.VELVET_SWEATSHOP, *passwords()[:MAX_WORKBOOK_PASSWORDS]):
            rc4 = officecrypt.Rc4Workbook.open(filepass, password)
            if rc4 is not None:
                return rc4, (" (encrypted with Excel's built-in password)"
                             if password == officecrypt.VELVET_SWEATSHOP else
                             " (encrypted; opened with a password from the message)")
    except officecrypt.UnsupportedScheme as exc:
        raise Unreadable(str(exc)) from exc
    raise Locked
