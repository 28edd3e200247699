"""What a PDF carries besides its pages: embedded files, actions that run code, links.

PDFs are the attachment people open without a second thought, so they carry what filters
look for elsewhere: executables and macro documents as embedded files, a /Launch action
that starts a program, JavaScript run when the document opens, and the single link of a
phishing page.  This reader looks at the document's dictionaries, in plain objects and
inside compressed object streams (PDF 1.5), and at embedded files' bytes; page content is
never decoded.  Names may hide behind #xx escapes (``/J#61vaScript``) and are read with
them undone.  Everything is bounded: objects looked at, bytes inflated (object streams
and embedded files alike), strings read.
"""

from __future__ import annotations

import itertools
import re
import zlib
from dataclasses import dataclass, field

MAX_OBJECTS = 20_000
MAX_STRING = 4096                     # bytes of one string (a name, a link)
MAX_LINKS = 200
_OBJECT = re.compile(rb"(\d{1,10})\s+\d{1,5}\s+obj\b")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_STREAM = re.compile(rb"stream\r?\n")
_LENGTH = re.compile(rb"/Length\s+(\d{1,10})(\s+\d{1,5}\s+R)?\b")
_FLATE = re.compile(rb"/Filter\s*\[?\s*/(?:FlateDecode|Fl)\b")
_EMBEDDED = re.compile(rb"/Type\s*/EmbeddedFile\b")
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b")
_FILESPEC_NAME = re.compile(rb"/(?:UF|F)\s*([(<])")
_EMBEDDED_REF = re.compile(rb"/EF\s*<<[^>]*?/(?:UF|F)\s+(\d{1,10})\s+\d{1,5}\s+R")
_URI = re.compile(rb"/URI\s*([(<])")
_LAUNCH = re.compile(rb"/S\s*/Launch\b")
_JAVASCRIPT = re.compile(rb"/(?:JavaScript|JS)\b")
# Run on opening the document (field actions, /AA, are everyday form logic: not counted).
_AUTOMATIC = re.compile(rb"/OpenAction\b")


@dataclass
class Embedded:
    name: str
    data: bytes                       # the first bytes asked for (all, for a container)
    size: int                         # bytes it inflated to, as far as it was read


@dataclass
class Contents:
    embedded: list[Embedded] = field(default_factory=list)
    # Names in file specifications whose bytes are not in the file (or not found).
    named_only: list[str] = field(default_factory=list)
    launches: bool = False            # a /Launch action: starts a program
    javascript_on_open: bool = False  # JavaScript and an action run on opening
    links: list[str] = field(default_factory=list)
    unpacked: int = 0                 # bytes inflated while looking


def contents(data: bytes, *, budget: int, read: int) -> Contents:
    """What ``data`` (a PDF) carries; at most ``budget`` bytes are inflated, and at most
    ``read`` bytes of each embedded file are kept."""
    found = Contents()
    dictionaries: list[bytes] = []
    streams: list[tuple[int, bytes, bytes]] = []     # (object number, dictionary, raw data)
    objects = _objects(data)
    # Stream lengths are often objects of their own ("/Length 5 0 R"): plain integers.
    integers = {number: int(body) for number, body in objects
                if len(body) < 24 and body.strip().isdigit()}
    for number, body in objects:
        dictionary, raw = _split(body, integers)
        dictionary = _unescape(dictionary)
        if _OBJECT_STREAM.search(dictionary) and _FLATE.search(dictionary):
            inflated = _inflate(raw, budget - found.unpacked)
            found.unpacked += len(inflated)
            dictionaries.extend(_unescape(d) for d in _compressed_objects(dictionary, inflated))
        elif _EMBEDDED.search(dictionary):
            streams.append((number, dictionary, raw))
        dictionaries.append(dictionary)
    names: dict[int, str] = {}
    for dictionary in dictionaries:
        found.launches = found.launches or bool(_LAUNCH.search(dictionary))
        for match in _EMBEDDED_REF.finditer(dictionary):
            name = _first_string(dictionary, _FILESPEC_NAME)
            if name:
                names[int(match.group(1))] = name
        for match in _URI.finditer(dictionary):
            if len(found.links) < MAX_LINKS:
                found.links.append(_string(dictionary, match.start(1)).decode(
                    "latin-1").strip())
    everything = b"".join(dictionaries)
    found.javascript_on_open = bool(_JAVASCRIPT.search(everything)) and \
        bool(_AUTOMATIC.search(everything))
    for number, dictionary, raw in streams:
        if _FLATE.search(dictionary):
            content = _inflate(raw, min(read, budget - found.unpacked))
            found.unpacked += len(content)
        else:
            content = raw[:read]
        found.embedded.append(Embedded(names.get(number, f"(embedded file {number})"),
                                       content, len(content)))
    found.links = [link for link in found.links if link]
    with_bytes = {number for number, _, _ in streams}
    found.named_only = [name for number, name in names.items() if number not in with_bytes]
    return found


def _objects(data: bytes) -> list[tuple[int, bytes]]:
    """(number, body) of each ``N G obj ... endobj`` in the file, in order."""
    out = []
    position = 0
    while len(out) < MAX_OBJECTS:
        match = _OBJECT.search(data, position)
        if match is None:
            break
        end = data.find(b"endobj", match.end())
        if end < 0:
            end = len(data)
        out.append((int(match.group(1)), data[match.end():end]))
        position = end
    return out


def _compressed_objects(dictionary: bytes, content: bytes) -> list[bytes]:
    """The objects of an object stream: /N pairs of (number, offset) and then, from
    /First on, the objects one after another."""
    first = re.search(rb"/First\s+(\d{1,10})", dictionary)
    start = int(first.group(1)) if first else 0
    offsets = [int(n) for n in re.findall(rb"\d{1,10}", content[:start])[1::2]]
    offsets = [o for o in offsets if start + o <= len(content)][:MAX_OBJECTS]
    bounds = [*offsets, len(content) - start]
    return [content[start + a:start + b] for a, b in itertools.pairwise(bounds)
            if a <= b] or [content]


def _unescape(dictionary: bytes) -> bytes:
    """Names with their #xx escapes undone."""
    return _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), dictionary)


def _split(body: bytes, integers: dict[int, int]) -> tuple[bytes, bytes]:
    """An object's dictionary and its stream's raw bytes (empty when it has none): as
    long as /Length says (directly, or in an integer object it refers to), else up to
    the end-of-line before ``endstream``."""
    match = _STREAM.search(body)
    if match is None:
        return body, b""
    dictionary = body[:match.start()]
    end = body.rfind(b"endstream")
    raw = body[match.end():end if end >= 0 else len(body)]
    length = _LENGTH.search(dictionary)
    if length is not None:
        value = integers.get(int(length.group(1)), -1) if length.group(2) else \
            int(length.group(1))
        if 0 <= value <= len(raw):
            return dictionary, raw[:value]
    return dictionary, raw.removesuffix(b"\n").removesuffix(b"\r")


def _inflate(raw: bytes, limit: int) -> bytes:
    if limit <= 0:
        return b""
    try:
        return zlib.decompressobj().decompress(raw, limit)
    except zlib.error:
        return b""                   # damaged: nothing to look at in it


def _first_string(dictionary: bytes, pattern: re.Pattern[bytes]) -> str:
    match = pattern.search(dictionary)
    if match is None:
        return ""
    raw = _string(dictionary, match.start(1))
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _string(data: bytes, start: int) -> bytes:
    """The PDF string starting at ``start``: a literal ``(...)`` (nested parentheses,
    backslash escapes) or a hex string ``<...>``; at most MAX_STRING bytes of it."""
    if data[start:start + 1] == b"<":
        end = data.find(b">", start)
        digits = re.sub(rb"[^0-9A-Fa-f]", b"", data[start + 1:end if end >= 0 else None])
        digits = digits[:MAX_STRING * 2]
        return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
    out = bytearray()
    depth, position = 1, start + 1
    stop = min(len(data), start + 4 * MAX_STRING)       # escapes that produce nothing too
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
               ord("f"): b"\f"}
    while position < stop and len(out) < MAX_STRING:
        byte = data[position]
        position += 1
        if byte == 0x5C and position < len(data):          # backslash
            following = data[position]
            position += 1
            if following in escapes:
                out += escapes[following]
            elif 0x30 <= following <= 0x37:                 # octal, up to three digits
                digits = bytes([following])
                while len(digits) < 3 and position < len(data) and \
                        0x30 <= data[position] <= 0x37:
                    digits += data[position:position + 1]
                    position += 1
                out.append(int(digits, 8) & 0xFF)
            elif following not in (0x0A, 0x0D):             # a line break is no character
                out.append(following)
            continue
        if byte == 0x28:
            depth += 1
        elif byte == 0x29:
            depth -= 1
            if depth == 0:
                break
        out.append(byte)
    return bytes(out)
