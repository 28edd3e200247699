"""Files embedded in a OneNote section (``.one``), the lure of 2023's malware campaigns: a
page with a "double-click to view" picture over an embedded ``.hta``, ``.cmd``, ``.wsf``
or ``.exe``.

A section is a revision store ([MS-ONESTORE]): chunks of file nodes and property sets.
Reading all of it is not needed to find what it carries.  An embedded file's bytes sit in
a FileDataStoreObject, framed by two fixed GUIDs with its length after the first; an
embedded file's name is the ``EmbeddedFileName`` property ([MS-ONE] 0x1C001D9C) of a
property set, a count of properties, their ids, then their values in order.  Both are
found by their marks, as ClamAV's own fallback and Volexity's one-extract find the files;
names by walking the property set the mark sits in, so that text on a page that merely
mentions ``setup.exe`` is not taken for one.  Names and bytes are not paired (that would
need the whole object graph): each name is judged as a name, each file by its bytes.

A password-protected section keeps its files encrypted (the ``keyEncryptor/password``
descriptor is in it): they are reported, not read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from portcullis.antivirus.readers import TooLarge

SECTION = bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3")      # {7B5C52E4-D88C-...}
_FILE_DATA = bytes.fromhex("e716e3bd65261145a4c48d4d0b7a9eac")   # {BDE316E7-2665-...}
_FILE_NAME = struct.pack("<I", 0x1C001D9C)                       # EmbeddedFileName
_PASSWORD = b"http://schemas.microsoft.com/office/2006/keyEncryptor/password"
_DATA_AT = 36                   # GUID, cbLength (8), unused (4), reserved (8)
MAX_MARKS = 1000                # name marks tried; more is a built file, not a notebook
MAX_PROPERTIES = 256            # properties in one set (real ones hold a few dozen)
MAX_INDEX = 64                  # how far into its set the name's id may stand
MAX_STEPS = 100_000             # property ids read in one document, over all marks
MAX_NAME = 520                  # bytes of a name: MAX_PATH UTF-16 characters
_MAX_NESTING = 8

# Property types ([MS-ONESTORE] 2.6.6) by the bytes their value takes in rgData.
_NO_DATA = {0x1, 0x2, 0x8, 0xA, 0xC}             # none, bool, object/space/context ids
_FIXED = {0x3: 1, 0x4: 2, 0x5: 4, 0x6: 8}
_COUNTED = {0x9, 0xB, 0xD}                        # arrays of ids: a count here, ids elsewhere
_BLOB, _ARRAY_OF_SETS, _SET = 0x7, 0x10, 0x11


@dataclass
class Contents:
    files: list[bytes] = field(default_factory=list)      # embedded files' bytes, in order
    names: list[str] = field(default_factory=list)        # embedded files' names
    password_protected: bool = False


def is_onenote(head: bytes) -> bool:
    return head.startswith(SECTION)


def contents(data: bytes, *, max_files: int, limit: int) -> Contents:
    """What the section at ``data`` embeds; each file's bytes cut at ``limit``."""
    found = Contents(password_protected=_PASSWORD in data)
    if found.password_protected:
        return found
    at = data.find(_FILE_DATA)
    while 0 <= at <= len(data) - _DATA_AT:
        length, = struct.unpack_from("<Q", data, at + 16)
        if length > len(data) - at - _DATA_AT:  # a stray copy of the GUID, not a file
            at = data.find(_FILE_DATA, at + 1)
            continue
        if len(found.files) >= max_files:
            raise TooLarge(f"more than {max_files} embedded files")
        found.files.append(data[at + _DATA_AT:at + _DATA_AT + min(length, limit)])
        # The next file starts after this one: marks inside a file's bytes are its own
        # (so no byte is read twice, however the marks nest).
        at = data.find(_FILE_DATA, at + _DATA_AT + length)
    walk = _Walk(data)
    mark = data.find(_FILE_NAME)
    for _ in range(MAX_MARKS):
        if mark < 0 or walk.steps <= 0:
            break
        name = _name_at(data, mark, walk)
        if name and name not in found.names:
            if len(found.names) >= max_files:
                raise TooLarge(f"more than {max_files} embedded file names")
            found.names.append(name)
        mark = data.find(_FILE_NAME, mark + 1)
    return found


def _name_at(data: bytes, mark: int, walk: _Walk) -> str | None:
    """The EmbeddedFileName whose property id is at ``mark``, when ``mark`` is the k-th id
    of a property set that reads through to that value; else None."""
    for k in range(MAX_INDEX):
        start = mark - 2 - 4 * k
        if start < 0:
            return None
        count, = struct.unpack_from("<H", data, start)
        if not k < count <= MAX_PROPERTIES:
            continue
        try:
            value = walk.property_set(start, 0)[0].get(k)
        except _NotASet:
            continue
        if value is not None and len(value) % 2 == 0:
            name = value.decode("utf-16-le", "replace").rstrip("\0")
            if name and name.isprintable():
                return name
    return None


class _NotASet(Exception):
    """The bytes do not read as a property set."""


class _Walk:
    """Reads property sets in ``data`` within a budget of property ids for the whole
    document (hostile bytes can make every mark a candidate set)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.steps = MAX_STEPS

    def property_set(self, at: int, depth: int) -> tuple[dict[int, bytes], int]:
        """The length-prefixed values of the set at ``at`` by property index (the others
        stepped over), and where the set ends."""
        data = self.data
        if depth > _MAX_NESTING or at + 2 > len(data):
            raise _NotASet
        count, = struct.unpack_from("<H", data, at)
        if count > MAX_PROPERTIES or at + 2 + 4 * count > len(data):
            raise _NotASet
        self.steps -= count + 1
        if self.steps < 0:
            raise _NotASet
        ids = struct.unpack_from(f"<{count}I", data, at + 2)
        at += 2 + 4 * count
        values: dict[int, bytes] = {}
        for index, prid in enumerate(ids):
            kind = prid >> 26 & 0x1F
            if prid >> 31 and kind != 0x2:      # only a bool keeps its value in the id
                raise _NotASet
            if kind in _NO_DATA:
                continue
            if kind in _FIXED:
                at += _FIXED[kind]
            elif kind in _COUNTED:
                at += 4
            elif kind == _BLOB:
                size = self._count(at)
                if size <= MAX_NAME:
                    values[index] = data[at + 4:at + 4 + size]
                at += 4 + size
            elif kind == _SET:
                at = self.property_set(at, depth + 1)[1]
            elif kind == _ARRAY_OF_SETS:
                sets = self._count(at)
                at += 4
                if sets:
                    at += 4                      # the id the sets are values of
                    for _ in range(min(sets, MAX_PROPERTIES + 1)):
                        at = self.property_set(at, depth + 1)[1]
                    if sets > MAX_PROPERTIES:
                        raise _NotASet
            else:
                raise _NotASet
            if at > len(data):
                raise _NotASet
        return values, at

    def _count(self, at: int) -> int:
        """A 4-byte count or length at ``at`` that fits in what follows."""
        if at + 4 > len(self.data):
            raise _NotASet
        value, = struct.unpack_from("<I", self.data, at)
        if value > len(self.data) - at - 4:
            raise _NotASet
        return value
