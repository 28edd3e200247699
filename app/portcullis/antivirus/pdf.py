"""What a PDF carries besides its pages: embedded files, actions that run code, links,
login forms; an encrypted one opened first (``pdfcrypt``).

PDFs are the attachment people open without a second thought, so they carry what filters
look for elsewhere: executables and macro documents as embedded files, a /Launch action
that starts a program, JavaScript run when the document opens, and the single link of a
phishing page.  JavaScript counts when something the reader does by merely opening the
document runs it (ISO 32000-1 12.6.3): the /OpenAction, the document-level scripts of the
/Names /JavaScript tree, a page's or an annotation's page-opened and page-visible actions
(/AA /O, /PO, /PV), each followed through its /Next actions.  A form field's own scripts
(keystroke, format, validate, calculate) are everyday form logic and do not count.  A
form with a password field is a login page in a PDF, as it would be in HTML; where its
/SubmitForm actions send what is typed is read like a link.

This reader looks at the document's dictionaries, in plain objects and inside compressed
object streams (PDF 1.5), and at embedded files' bytes; page content is never decoded.
Names may hide behind #xx escapes (``/J#61vaScript``) and are read with them undone.
Streams are decoded through their /Filter chain (Flate, ASCIIHex, ASCII85, RunLength:
what writers use for files; an executable hex-encoded into a PDF is still an executable).
Everything is bounded: objects looked at, bytes inflated (object streams and embedded
files alike), strings read, dictionaries followed.

An encrypted document is opened with its empty user password (most are: only an owner
password restricts printing, and readers open them without asking), else with a password
from the message; its strings are decrypted object by object (and written back as hex
strings) and its streams before their filters.  One no password opens is locked: its
structure still tells a /Launch action, but its names, links and files are not read.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from portcullis.antivirus import pdfcrypt

MAX_OBJECTS = 20_000
MAX_STRING = 4096                     # bytes of one string (a name, a link)
MAX_LINKS = 200
_OBJECT = re.compile(rb"(\d{1,10})\s+(\d{1,5})\s+obj\b")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_STREAM = re.compile(rb"stream\r?\n")
_LENGTH = re.compile(rb"/Length\s+(\d{1,10})(\s+\d{1,5}\s+R)?\b")
# A stream's /Filter: one name, or an array of them applied in order.
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]{0,400}\]|/[^\s/<>\[\]()%{}]*)")
_FILTER_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]+)")
_EMBEDDED = re.compile(rb"/Type\s*/EmbeddedFile\b")
_PICTURE = re.compile(rb"/Subtype\s*/Image\b")
MAX_PICTURES = 8                      # pictures handed on (for their QR codes)
MAX_PICTURE_BYTES = 16 * 2**20        # bytes of one picture's pixels or file
MAX_FILTERS = 4                       # a longer /Filter chain is left undecoded
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b")
_FILESPEC_NAMES = (re.compile(rb"/UF\s*([(<])"), re.compile(rb"/F\s*([(<])"))
# Bounded: an unbounded scan to the next ">" from each of many "/EF<<" was quadratic.
_EMBEDDED_REF = re.compile(rb"/EF\s*<<[^>]{0,400}?/(?:UF|F)\s+(\d{1,10})\s+\d{1,5}\s+R")
_URI = re.compile(rb"/URI\s*([(<])")
_LAUNCH = re.compile(rb"/S\s*/Launch\b")
# The keys under which a dictionary hangs what runs on opening (see above).
_OPENING_KEYS = (b"/OpenAction", b"/AA", b"/JavaScript")
_ON_PAGE_OPENING = (b"/O", b"/PO", b"/PV")     # keys of an /AA dictionary
MAX_NESTING = 64                      # arrays and dictionaries inside one another
MAX_ACTIONS = 64                      # actions followed from one trigger (/Next chains)
# Triggers bigger than this (with what they refer to), or holding more dictionaries, are
# not followed: the document runs its JavaScript if it has any (a real catalog, page or
# annotation is a few hundred bytes).
MAX_PARSED = 2**21                    # bytes of triggers and what they refer to
MAX_INNER_DICTIONARIES = 4096
_JAVASCRIPT = re.compile(rb"/(?:JavaScript|JS)\b")
_FIELD_FLAGS = re.compile(rb"/Ff\s+(\d{1,10})\b")
_PASSWORD_FLAG = 1 << 13                       # bit 14 of a text field's /Ff
_NOT_TEXT_FIELD = re.compile(rb"/FT\s*/(?:Btn|Ch|Sig)\b")
_TOKEN = re.compile(rb"""(?:\s|%[^\r\n]*)*(?:
    (?P<open><<|\[) | (?P<close>>>|\]) | (?P<reference>\d{1,10}\s+\d{1,5}\s+R\b)
  | (?P<name>/[^\s/<>\[\]()%{}]*) | (?P<hex><[^<>]*>) | (?P<string>\()
  | (?P<word>[^\s/<>\[\]()%{}]+))""", re.VERBOSE)
_LITERAL_STOP = re.compile(rb"\\.|[()]", re.DOTALL)   # what changes a string's depth


@dataclass
class Embedded:
    name: str
    data: bytes                       # the first bytes asked for (all, for a container)
    size: int                         # bytes it inflated to, as far as it was read
    # Every name its file specification gives (/UF, which readers show, and /F).
    names: tuple[str, ...] = ()


@dataclass
class Contents:
    embedded: list[Embedded] = field(default_factory=list)
    # Names in file specifications whose bytes are not in the file (or not found).
    named_only: list[str] = field(default_factory=list)
    launches: bool = False            # a /Launch action: starts a program
    javascript_on_open: bool = False  # JavaScript and an action run on opening
    links: list[str] = field(default_factory=list)
    password_field: bool = False      # a form's text field typed into as a password
    form_targets: list[str] = field(default_factory=list)    # where /SubmitForm sends it
    unpacked: int = 0                 # bytes inflated while looking
    encryption: str | None = None     # how it is encrypted ("AES-256", ...), if it is
    locked: bool = False              # encrypted, and no password opened it
    unsupported: bool = False         # encrypted in a way not opened here (so: locked)
    opened_with_password: bool = False   # one of the passwords given, not the empty one
    # The document's pictures (image XObjects) as image files (JPEG, JPEG 2000, netpbm),
    # the first MAX_PICTURES of them: a QR code is drawn as one.
    pictures: list[bytes] = field(default_factory=list)


def contents(data: bytes, *, budget: int, read: int,
             passwords: Callable[[], list[str]] = list) -> Contents:
    """What ``data`` (a PDF) carries; at most ``budget`` bytes are inflated, and at most
    ``read`` bytes of each embedded file are kept.  An encrypted one is opened with the
    empty user password, else with one of ``passwords()`` (asked for only then)."""
    found = Contents()
    dictionaries: list[bytes] = []
    streams: list[tuple[int, bytes, bytes]] = []     # (object number, dictionary, raw data)
    pictures: list[tuple[bytes, bytes]] = []         # (dictionary, raw data)
    by_number: dict[int, bytes] = {}                 # the last of a number wins, as updated
    objects = _objects(data)
    # Stream lengths are often objects of their own ("/Length 5 0 R"): plain integers.
    integers = {number: int(body) for number, _, body in objects
                if len(body) < 24 and body.strip().isdigit()}
    security, settings_object = _security(data, objects, integers, found)
    if security is not None:
        found.opened_with_password = not security.open("") and any(
            security.open(candidate) for candidate in passwords())
        found.locked = not security.opened
        if found.locked:
            security = None          # its strings and streams stay as they are: unread
    for number, generation, body in objects:
        dictionary, raw = _split(body, integers)
        if security is not None and number != settings_object:
            dictionary = _decrypted_strings(dictionary, lambda text, n=number, g=generation:
                                            security.string(n, g, text))
            if raw:
                raw = security.stream(number, generation, raw,
                                      embedded_file=bool(_EMBEDDED.search(dictionary)))
        dictionary = _unescape(dictionary)
        if _OBJECT_STREAM.search(dictionary):
            inflated = _decoded(dictionary, raw, budget - found.unpacked, found)
            for inner, body in _compressed_objects(dictionary, inflated):
                by_number[inner] = _unescape(body)
                dictionaries.append(by_number[inner])
        elif _EMBEDDED.search(dictionary):
            streams.append((number, dictionary, raw))
        elif _PICTURE.search(dictionary) and len(pictures) < MAX_PICTURES:
            pictures.append((dictionary, raw))
        by_number[number] = dictionary
        dictionaries.append(dictionary)
    if found.locked:                 # names, links and files are encrypted: unread
        found.launches = any(_LAUNCH.search(d) for d in dictionaries)
        return found
    names: dict[int, tuple[str, ...]] = {}
    for dictionary in dictionaries:
        found.launches = found.launches or bool(_LAUNCH.search(dictionary))
        for match in _EMBEDDED_REF.finditer(dictionary):
            spec_names = _filespec_names(dictionary)
            if spec_names:
                names[int(match.group(1))] = spec_names
        for match in _URI.finditer(dictionary):
            if len(found.links) < MAX_LINKS:
                found.links.append(_string(dictionary, match.start(1)).decode(
                    "latin-1").strip())
    triggers = [d for d in dictionaries if any(key in d for key in _OPENING_KEYS)]
    if triggers and any(_JAVASCRIPT.search(d) for d in dictionaries):
        try:
            parsed = _Objects(by_number)
            found.javascript_on_open = any(_runs_script_on_opening(d, parsed) for d in triggers)
        except _TooMuch:
            found.javascript_on_open = True
    found.password_field = any(_is_password_field(d) for d in dictionaries if b"/Ff" in d)
    with contextlib.suppress(_TooMuch):           # what was found before stays found
        _form_targets([d for d in dictionaries if b"/SubmitForm" in d], _Objects(by_number),
                      found.form_targets)
    for number, dictionary, raw in streams:
        content = _decoded(dictionary, raw, min(read, budget - found.unpacked), found)
        given = names.get(number, (f"(embedded file {number})",))
        found.embedded.append(Embedded(given[0], content, len(content), given))
    for dictionary, raw in pictures:
        picture = _picture(dictionary, raw, min(MAX_PICTURE_BYTES, budget - found.unpacked),
                           found)
        if picture:
            found.pictures.append(picture)
    found.links = [link for link in found.links if link]
    with_bytes = {number for number, _, _ in streams}
    found.named_only = [name for number, given in names.items() if number not in with_bytes
                        for name in given]
    return found


def _objects(data: bytes) -> list[tuple[int, int, bytes]]:
    """(number, generation, body) of each ``N G obj ... endobj`` in the file, in order."""
    out = []
    position = 0
    while len(out) < MAX_OBJECTS:
        match = _OBJECT.search(data, position)
        if match is None:
            break
        end = data.find(b"endobj", match.end())
        if end < 0:
            end = len(data)
        out.append((int(match.group(1)), int(match.group(2)), data[match.end():end]))
        position = end
    return out


_ENCRYPT = re.compile(rb"/Encrypt\s+(\d{1,10})\s+\d{1,5}\s+R")
_FIRST_ID = re.compile(rb"/ID\s*\[\s*")
_STRING_START = re.compile(rb"<<|>>|<|\(")


def _security(data: bytes, objects: list[tuple[int, int, bytes]], integers: dict[int, int],
              found: Contents) -> tuple[pdfcrypt.Security | None, int]:
    """The document's encryption, as its (last) trailer names it, and the number of the
    object holding its settings (whose strings are not encrypted); None when it is not
    encrypted, or is in a way not opened here (then ``found`` is marked locked)."""
    references = list(_ENCRYPT.finditer(data))
    if not references:
        return None, -1
    number = int(references[-1].group(1))
    body = next((b for n, _, b in reversed(objects) if n == number), b"")
    entries = _parse(_unescape(_split(body, integers)[0]))
    first_id = _FIRST_ID.search(data)
    try:
        if not isinstance(entries, dict):
            raise pdfcrypt.Unsupported("no readable encryption dictionary")
        security = pdfcrypt.Security(_settings(entries), _string(data, first_id.end())
                                     if first_id else b"")
    except pdfcrypt.Unsupported as exc:
        found.encryption, found.locked, found.unsupported = f"{exc}", True, True
        return None, number
    found.encryption = security.description
    return security, number


def _settings(entries: dict[bytes, _Value]) -> pdfcrypt.Settings:
    """An /Encrypt dictionary read into its settings."""
    def number(key: bytes, default: int) -> int:
        value = entries.get(key)
        return int(value) if isinstance(value, bytes) and re.fullmatch(rb"-?\d{1,12}", value) \
            else default

    def string(key: bytes) -> bytes:
        value = entries.get(key)
        return _string(value, 0) if isinstance(value, bytes) and value[:1] in b"(<" \
            else b""

    version = number(b"/V", 0)
    methods = {b"/Identity": b"/None"}
    filters = entries.get(b"/CF")
    for name, crypt_filter in (filters.items() if isinstance(filters, dict) else ()):
        method = crypt_filter.get(b"/CFM") if isinstance(crypt_filter, dict) else None
        methods[name] = method if isinstance(method, bytes) else b"/None"

    def method(key: bytes, default: bytes) -> bytes:
        if version < 4:
            return b"/V2"
        name = entries.get(key, default)
        return methods.get(name, b"?") if isinstance(name, bytes) else b"?"

    filter_ = entries.get(b"/Filter")
    streams = method(b"/StmF", b"/Identity")
    return pdfcrypt.Settings(
        filter=filter_ if isinstance(filter_, bytes) else b"?", version=version,
        revision=number(b"/R", 0), length=number(b"/Length", 40), owner=string(b"/O"),
        user=string(b"/U"), permissions=number(b"/P", 0), user_key=string(b"/UE"),
        encrypt_metadata=entries.get(b"/EncryptMetadata") != b"false",
        strings=method(b"/StrF", b"/Identity"), streams=streams,
        files=method(b"/EFF", b"/Identity") if b"/EFF" in entries else streams)


def _decrypted_strings(dictionary: bytes, decrypt: Callable[[bytes], bytes]) -> bytes:
    """``dictionary`` with each string in it decrypted, written back as a hex string."""
    out = bytearray()
    position = 0
    while (match := _STRING_START.search(dictionary, position)) is not None:
        start, token = match.start(), match.group()
        if token in (b"<<", b">>"):
            out += dictionary[position:match.end()]
            position = match.end()
            continue
        end = _literal_end(dictionary, start) if token == b"(" else \
            (dictionary.find(b">", start) + 1 or len(dictionary))
        out += dictionary[position:start] + b"<" + decrypt(_string(dictionary, start)).hex(
        ).encode() + b">"
        position = end
    out += dictionary[position:]
    return bytes(out)


def _compressed_objects(dictionary: bytes, content: bytes) -> list[tuple[int, bytes]]:
    """(number, body) of the objects of an object stream: /N pairs of (number, offset)
    and then, from /First on, the objects one after another."""
    first = re.search(rb"/First\s+(\d{1,10})", dictionary)
    start = int(first.group(1)) if first else 0
    header = [int(n) for n in re.findall(rb"\d{1,10}", content[:start])]
    pairs = [(n, o) for n, o in zip(header[::2], header[1::2], strict=False)
             if start + o <= len(content)][:MAX_OBJECTS]
    bounds = [*pairs, (-1, len(content) - start)]
    return [(number, content[start + a:start + b])
            for (number, a), (_, b) in itertools.pairwise(bounds) if a <= b] \
        or [(-1, content)]


class _TooMuch(Exception):
    """The triggers' dictionaries hold more than is worth following."""


@dataclass(frozen=True)
class _Reference:
    number: int


# A parsed value: a dictionary, an array, a reference, or the bytes of anything else (a
# name with its slash, a number, a string with its delimiters).
_Value = dict[bytes, "_Value"] | list["_Value"] | _Reference | bytes | None


class _Objects:
    """The document's objects by number, parsed when first asked for, within a budget of
    bytes parsed (MAX_PARSED) for the whole document."""

    def __init__(self, objects: dict[int, bytes]) -> None:
        self._raw = objects
        self._parsed: dict[int, _Value] = {}
        self._left = MAX_PARSED

    def parse(self, data: bytes) -> _Value:
        if len(data) > self._left:
            raise _TooMuch
        self._left -= len(data)
        return _parse(data)

    def resolve(self, value: _Value) -> _Value:
        """The object ``value`` refers to, else ``value`` itself."""
        for _ in range(MAX_ACTIONS):             # a reference to a reference, not forever
            if not isinstance(value, _Reference):
                break
            if value.number not in self._parsed:
                self._parsed[value.number] = self.parse(self._raw.get(value.number, b""))
            value = self._parsed[value.number]
        return value


def _runs_script_on_opening(dictionary: bytes, objects: _Objects) -> bool:
    """Whether ``dictionary`` (or one inside it) runs JavaScript when the document is
    opened: its /OpenAction, its /JavaScript name tree (when it is a /Names dictionary),
    or the page-opening entries of its /AA."""
    for entries in _dictionaries(objects.parse(dictionary)):
        if _is_script(entries.get(b"/OpenAction"), objects):
            return True
        if isinstance(entries.get(b"/JavaScript"), dict | _Reference):
            return True                  # document-level scripts: run as it opens
        additional = objects.resolve(entries.get(b"/AA"))
        if isinstance(additional, dict) and any(
                _is_script(additional.get(key), objects) for key in _ON_PAGE_OPENING):
            return True
    return False


def _is_password_field(dictionary: bytes) -> bool:
    """A text field (or a widget of one, its type inherited) with the Password flag."""
    flags = _FIELD_FLAGS.search(dictionary)
    return flags is not None and int(flags.group(1)) & _PASSWORD_FLAG != 0 and \
        not _NOT_TEXT_FIELD.search(dictionary)


def _form_targets(dictionaries: list[bytes], objects: _Objects, out: list[str]) -> None:
    """Where the /SubmitForm actions in ``dictionaries`` send a form: the URL of each
    one's file specification (a string, or a dictionary holding it), onto ``out``."""
    for dictionary in dictionaries:
        for entries in _dictionaries(objects.parse(dictionary)):
            if entries.get(b"/S") != b"/SubmitForm" or len(out) >= MAX_LINKS:
                continue
            target = objects.resolve(entries.get(b"/F"))
            if isinstance(target, dict):
                target = objects.resolve(target.get(b"/UF", target.get(b"/F")))
            if isinstance(target, bytes) and target[:1] in (b"(", b"<"):
                url = _text(_string(target, 0)).strip()
                if url:
                    out.append(url)


def _is_script(value: _Value, objects: _Objects) -> bool:
    """Whether the action ``value`` (a dictionary, a reference to one, or an array of
    them, as /Next holds) is JavaScript or leads to JavaScript through its /Next."""
    pending, seen = [value], 0
    while pending and seen < MAX_ACTIONS:
        action = objects.resolve(pending.pop())
        seen += 1
        if isinstance(action, list):
            pending.extend(action)
        elif isinstance(action, dict):
            if action.get(b"/S") == b"/JavaScript" or b"/JS" in action:
                return True
            pending.append(action.get(b"/Next"))
    return False


def _dictionaries(value: _Value) -> list[dict[bytes, _Value]]:
    """Every dictionary in ``value``, the outermost first and then those in its values
    (references are not followed); more than MAX_INNER_DICTIONARIES is too many."""
    out: list[dict[bytes, _Value]] = []
    pending = [value]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            out.append(value)
            if len(out) > MAX_INNER_DICTIONARIES:
                raise _TooMuch
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return out


def _parse(data: bytes) -> _Value:
    """The first value in ``data``, in one pass.  Damage, or nesting past MAX_NESTING,
    ends it where it happens: a dictionary or an array keeps what it had."""
    open_: list[dict[bytes, _Value] | list[_Value]] = []
    keys: list[bytes | None] = []        # for each open dictionary: a key awaiting its value
    position = 0
    while True:
        match = _TOKEN.match(data, position)
        if match is None:
            break                        # the end, or a byte no value starts with
        position = match.end()
        kind = match.lastgroup
        value: _Value
        if kind == "open":
            if len(open_) == MAX_NESTING:
                break
            open_.append({} if match.group(kind) == b"<<" else [])
            keys.append(None)
            continue
        if kind == "close":
            if not open_:
                break
            value = open_.pop()
            keys.pop()
        elif kind == "reference":
            value = _Reference(int(match.group(kind).split()[0]))
        elif kind == "string":
            start, position = match.start(kind), _literal_end(data, match.start(kind))
            value = data[start:position]
        else:
            value = match.group(kind)
        if not open_:
            return value
        _put(open_[-1], keys, value)
    while len(open_) > 1:                # unfinished: each keeps what it had
        value = open_.pop()
        keys.pop()
        _put(open_[-1], keys, value)
    return open_[0] if open_ else None


def _put(container: dict[bytes, _Value] | list[_Value], keys: list[bytes | None],
         value: _Value) -> None:
    """``value`` into the open ``container``: an array's next item, a dictionary's key
    (a name) or the value for the key before it."""
    if isinstance(container, list):
        container.append(value)
    elif keys[-1] is not None:
        container[keys[-1]] = value
        keys[-1] = None
    elif isinstance(value, bytes) and value.startswith(b"/"):
        keys[-1] = value


def _literal_end(data: bytes, start: int) -> int:
    """Where the literal string starting at ``start`` ends (nested parentheses, escapes)."""
    depth = 0
    for match in _LITERAL_STOP.finditer(data, start):
        if match.group() == b"(":
            depth += 1
        elif match.group() == b")":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(data)


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


def _decoded(dictionary: bytes, raw: bytes, limit: int, found: Contents) -> bytes:
    """A stream's bytes through its /Filter chain, at most ``limit`` of them; its raw
    bytes when a filter is none of these (LZW, images' filters: not what files use).

    What every step produces counts in ``found.unpacked``, the last one's or not: a chain
    whose last step yields nothing (RunLength's end mark first) cost its inner steps'
    inflating all the same, and one object after another would not be stopped.
    """
    match = _FILTER.search(dictionary)
    names = _FILTER_NAME.findall(match.group(1)) if match else []
    if len(names) > MAX_FILTERS or not all(name in _DECODERS for name in names):
        return raw[:max(limit, 0)]
    data = raw
    for index, name in enumerate(names):
        # Text encodings only shrink; an inner step gets room for what follows it.
        last = index == len(names) - 1
        data = _DECODERS[name](data, limit if last else max(limit, 0) + len(raw))
        found.unpacked += len(data)
        if not data:
            break
    return data[:max(limit, 0)]


_IMAGE_FILES = {b"DCTDecode": b"\xff\xd8", b"DCT": b"\xff\xd8",   # JPEG
                b"JPXDecode": b""}                                # JPEG 2000
_INVERT = bytes(range(255, -1, -1))
_NUMBER = {key: re.compile(rb"/" + key + rb"\s+(\d{1,6})\b")
           for key in (b"Width", b"Height", b"BitsPerComponent")}


def _picture(dictionary: bytes, raw: bytes, limit: int, found: Contents) -> bytes:
    """An image XObject as an image file: its bytes when they are one (JPEG, JPEG 2000),
    else its pixels (8-bit grey or RGB, or 1-bit) with a netpbm header; b"" when it is
    none of these (indexed colours, 16 bits, other filters) or bigger than ``limit``."""
    match = _FILTER.search(dictionary)
    names = _FILTER_NAME.findall(match.group(1)) if match else []
    if names and names[-1] in _IMAGE_FILES:
        data = _decoded(b"/Filter [" + b" ".join(b"/" + n for n in names[:-1]) + b"]",
                        raw, limit, found) if len(names) > 1 else raw[:limit]
        return data if data.startswith(_IMAGE_FILES[names[-1]]) and len(data) < limit else b""
    if not all(name in _DECODERS for name in names):
        return b""
    sizes = {key: int(m.group(1)) for key, pattern in _NUMBER.items()
             if (m := pattern.search(dictionary))}
    width, height = sizes.get(b"Width", 0), sizes.get(b"Height", 0)
    mask = re.search(rb"/ImageMask\s+true\b", dictionary) is not None
    bits = 1 if mask else sizes.get(b"BitsPerComponent", 8)
    channels = 3 if re.search(rb"/ColorSpace\s*/DeviceRGB\b", dictionary) else 1
    if not (width and height) or bits not in (1, 8) or (bits == 1 and channels != 1) or \
            (channels == 1 and not mask and not re.search(rb"/ColorSpace\s*/DeviceGray\b",
                                                          dictionary)):
        return b""
    row = (width + 7) // 8 if bits == 1 else width * channels
    if row * height > limit:
        return b""
    pixels = _decoded(dictionary, raw, row * height, found)
    if len(pixels) < row * height:
        return b""
    if bits == 1:
        # PDF's 0 is black (for a mask: painted), netpbm's 1; /Decode [1 0] swaps them.
        inverted = re.search(rb"/Decode\s*\[\s*1(?:\.0*)?\s+0", dictionary) is not None
        pixels = pixels if inverted else pixels.translate(_INVERT)
        return b"P4\n%d %d\n" % (width, height) + pixels
    return b"P%d\n%d %d\n255\n" % (6 if channels == 3 else 5, width, height) + pixels


def _inflate(raw: bytes, limit: int) -> bytes:
    if limit <= 0:
        return b""
    try:
        return zlib.decompressobj().decompress(raw, limit)
    except zlib.error:
        return b""                   # damaged: nothing to look at in it


def _ascii_hex(raw: bytes, limit: int) -> bytes:
    """ASCIIHexDecode: pairs of hex digits, blanks between, ``>`` at the end (an odd
    last digit stands for its high half)."""
    digits = re.sub(rb"[^0-9A-Fa-f]", b"", raw.split(b">", 1)[0])[:2 * max(limit, 0)]
    return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())


def _ascii85(raw: bytes, limit: int) -> bytes:
    """ASCII85Decode: Adobe's base-85, ``~>`` at the end.  Only as much text is decoded
    as ``limit`` needs: five characters make four bytes, but a ``z`` alone makes four."""
    text = re.sub(rb"[ \t\n\r\x0b\x0c\0]", b"", raw.split(b"~>", 1)[0].removeprefix(b"<~"))
    groups = max(limit, 0) // 4 + 1
    text = text[:groups] if b"z" in text else text[:groups * 5]
    try:
        return base64.a85decode(text)[:max(limit, 0)]
    except ValueError:
        return b""                   # damaged: nothing to look at in it


def _run_length(raw: bytes, limit: int) -> bytes:
    """RunLengthDecode: a length byte, then as many plus one bytes as they are (0-127)
    or one byte repeated 257 minus it times (129-255); 128 ends the data."""
    out = bytearray()
    at = 0
    while at < len(raw) and len(out) < limit:
        length = raw[at]
        if length == 128:
            break
        if length < 128:
            out += raw[at + 1:at + 2 + length]
            at += 2 + length
        else:
            out += raw[at + 1:at + 2] * (257 - length)
            at += 2
    return bytes(out[:max(limit, 0)])


_DECODERS: dict[bytes, Callable[[bytes, int], bytes]] = {
    b"FlateDecode": _inflate, b"Fl": _inflate, b"ASCIIHexDecode": _ascii_hex,
    b"AHx": _ascii_hex, b"ASCII85Decode": _ascii85, b"A85": _ascii85,
    b"RunLengthDecode": _run_length, b"RL": _run_length}


def _filespec_names(dictionary: bytes) -> tuple[str, ...]:
    """The names a file specification gives its file: /UF (which readers show and save
    it under) and /F, each once."""
    return tuple(dict.fromkeys(name for pattern in _FILESPEC_NAMES
                               if (name := _first_string(dictionary, pattern))))


def _first_string(dictionary: bytes, pattern: re.Pattern[bytes]) -> str:
    match = pattern.search(dictionary)
    return "" if match is None else _text(_string(dictionary, match.start(1)))


def _text(raw: bytes) -> str:
    """A PDF text string: UTF-16 after its byte order mark, else (near enough) Latin-1."""
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _string(data: bytes, start: int) -> bytes:
    """The PDF string starting at ``start``: a literal ``(...)`` (nested parentheses,
    backslash escapes) or a hex string ``<...>``; at most MAX_STRING bytes of it."""
    if data[start:start + 1] == b"<":
        end = data.find(b">", start)
        return _ascii_hex(data[start + 1:end if end >= 0 else None], MAX_STRING)
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
