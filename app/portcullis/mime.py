"""Parsing messages from the Internet without trusting them.

Every function here accepts any bytes: malformed MIME, wrong charsets, binary garbage and
absurd nesting give a best-effort result, never an exception, and never unbounded work.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.errors
import email.feedparser
import email.parser
import email.policy
import quopri
import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

MAX_DEPTH = 30        # multipart nesting beyond this is not walked (and is suspicious)
MAX_PARTS = 1000      # parts beyond this are not walked
MAX_HEADER_BYTES = 256 * 1024  # a header block larger than this is cut for parsing
# The parser builds an object per part (about 10 us and 0.5 KB each): a message of
# 250,000 tiny parts took 2.7 s and 130+ MB on the event loop.  Past this many the walk
# would call the message a bomb anyway, so parsing stops there.
MAX_PARSED_PARTS = 4 * MAX_PARTS


class _HeaderIndex:
    """One header list's fields by lower-cased name, and what was parsed from them."""

    __slots__ = ("content_type", "edits", "fields", "headers", "length", "params")

    def __init__(self, headers: list[tuple[str, Any]], edits: int) -> None:
        self.headers = headers
        self.length = len(headers)
        self.edits = edits
        fields: dict[str, list[tuple[str, Any]]] = {}
        for field in headers:
            key = field[0].lower()
            if key in fields:
                fields[key].append(field)
            else:
                fields[key] = [field]
        self.fields = fields
        # What Message's readers parse from the fields, kept: get_content_type's answer
        # when there is a Content-Type field, _get_params_preserve's by header name
        # (None: no such header).
        self.content_type: str | None = None
        self.params: dict[str, list[tuple[str, Any]] | None] = {}


class IndexedMessage(Message):
    """A compat32 ``Message`` whose header look-ups read an index by lower-cased name.

    ``Message.get`` lowercases and compares every field's name on every call, and its
    parameter readers (content type, charset, file name) parse the field again each
    time; the checks and Bayes ask a parsed message for its headers about forty times,
    most of them for fields near the end of (or not in) a block of dozens of Received
    lines.  The index is built on the first look-up and rebuilt when the header list is
    no longer the one indexed: every mutator replaces the list (``__delitem__``,
    ``set_boundary``) or changes its length (``__setitem__``, ``add_header``,
    ``set_raw``), except ``replace_header``, which changes a field in place and counts
    its edits.  The count is kept in a list that a shallow ``copy.copy`` shares with the
    header list itself, so a field one copy replaces is what the other reads too.
    """

    _index: _HeaderIndex | None = None

    def __init__(self, policy: email.policy.Policy = email.policy.compat32) -> None:
        super().__init__(policy)
        self._edits = [0]       # replace_header's count, shared as _headers is

    def __getstate__(self) -> dict[str, Any]:
        # The index is a cache: a pickled or copied message builds its own when asked
        # (pickle's protocols 0 and 1 cannot store the index's slots at all).
        state = self.__dict__.copy()
        state.pop("_index", None)
        return state

    def _current_index(self) -> _HeaderIndex:
        headers = self._headers
        index = self._index
        edits = self._edits[0]
        if index is None or index.headers is not headers or index.length != len(headers) \
                or index.edits != edits:
            index = self._index = _HeaderIndex(headers, edits)
        return index

    def indexed_fields(self) -> dict[str, list[tuple[str, Any]]]:
        """Every field as (name, raw value), by lower-cased name, in order: the index
        itself, to read and not to change.  ``read_field`` gives a raw value as ``get``
        does."""
        return self._current_index().fields

    def read_field(self, name: str, value: Any) -> Any:
        """A field's value as ``get`` returns it, from its name and raw value."""
        # compat32 gives a str without 8-bit bytes (surrogates) back as it is: its call
        # chain, which encodes the value to find out, is skipped.  Other values and
        # policies are the policy's to make, as Message makes them.
        if value.__class__ is str and value.isascii() and self.policy is email.policy.compat32:
            return value
        return self.policy.header_fetch_parse(name, value)

    def get(self, name: str, failobj: Any = None) -> Any:
        fields = self._current_index().fields.get(name.lower())
        if fields is None:
            return failobj
        return self.read_field(*fields[0])

    def get_all(self, name: str, failobj: Any = None) -> Any:
        fields = self._current_index().fields.get(name.lower())
        if fields is None:
            return failobj
        return [self.read_field(k, v) for k, v in fields]

    def __contains__(self, name: object) -> bool:
        return name.lower() in self._current_index().fields  # type: ignore[attr-defined]

    def get_content_type(self) -> str:
        index = self._current_index()
        if index.content_type is None:
            if "content-type" not in index.fields:
                return self.get_default_type()     # settable apart from the headers
            index.content_type = super().get_content_type()
        return index.content_type

    def replace_header(self, _name: str, _value: Any) -> None:
        self._edits[0] += 1     # changes a field in place: the list stays the same length
        super().replace_header(_name, _value)

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        params = self._current_index().params
        key = header.lower()
        if key not in params:
            params[key] = super()._get_params_preserve(None, header)
        found = params[key]
        # A new list each time, as Message returns (get_params may hand it to the caller).
        return failobj if found is None else list(found)


class UnparseableStructure(email.errors.MessageDefect):
    """The MIME structure could not be parsed (e.g. nested deeper than Python's parser
    can recurse); the headers were kept, the body is one opaque part."""


class TooManyParts(UnparseableStructure):
    """Parsing stopped at ``MAX_PARSED_PARTS`` parts."""


class _PartLimitReached(Exception):
    pass


class _BoundedParser(email.feedparser.FeedParser):
    """The standard parser, stopped once it has made ``MAX_PARSED_PARTS`` parts.
    ``_new_message`` is where FeedParser makes each one (root, parts, attached messages)."""

    def __init__(self) -> None:
        super().__init__(_factory=IndexedMessage, policy=email.policy.compat32)
        self.parts = 0

    def _new_message(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARSED_PARTS:
            raise _PartLimitReached
        super()._new_message()


def _feed(parser: _BoundedParser, text: str) -> None:
    # In chunks, so the parser holds a few lines at a time, not all of them.
    for start in range(0, len(text), 8192):
        parser.feed(text[start:start + 8192])


# Marks the line ends of folded fields while the header block is split at the others; a
# block holding it is left to the parser (NUL: not printable, so never part of a name).
_FOLD = "\x00"


def _single_part(text: str, body: int) -> Message | None:
    """The message FeedParser makes of ``text`` when it is one plain part under a header
    block of well-formed fields (most mail); None for any other message, which the parser
    reads.  ``body``: where the body starts, after the first blank line.  FeedParser
    reads the body of a part that is neither multipart nor message/* as the rest of the
    text, as is."""
    message = _plain_fields(text[:body])
    if message is None or message.get_content_maintype() in ("multipart", "message"):
        return None
    message.set_payload(text[body:])
    return message


def _plain_fields(block: str) -> IndexedMessage | None:
    """The fields FeedParser reads from ``block`` (a header block and its blank line)
    when every line is a well-formed field; None for any other block.

    FeedParser reads a message a line at a time through a generator (a dozen calls a
    line) only to split the fields apart.  Here the same result comes from splitting the
    header block at the line ends that do not fold a field: when every line is a field (a
    name of printable ASCII but ':' and blanks, then ':') or a continuation (starts with
    a blank) under one, its header loop reads exactly these lines and stops at the blank
    line without a defect, and its ``_parse_headers`` stores each field as compat32's
    ``header_source_parse`` makes it.
    """
    # Lines end as FeedParser splits them (CRLF, CR or LF): one kind only is read here.
    sep = "\r\n" if "\r" in block else "\n"
    if sep == "\r\n" and not (block.count("\r") == block.count("\n") == block.count("\r\n")):
        return None
    if not block.endswith(sep + sep) or block.startswith((sep, " ", "\t")) or _FOLD in block:
        return None     # a blank line or a continuation first: the parser has its rules
    folded = block[:-2 * len(sep)].replace(sep + " ", _FOLD + " ").replace(sep + "\t", _FOLD + "\t")
    message = IndexedMessage()
    names = []
    for field in folded.split(sep):
        name, colon, value = field.partition(":")
        if not colon:
            return None     # not a field (or a blank line): FeedParser's header loop stops
        names.append(name)
        # As header_source_parse: blanks before the value go, folded lines stay folded.
        value = value.lstrip(" \t")
        message.set_raw(name, value.replace(_FOLD, sep) if _FOLD in value else value)
    # A name of other characters (a blank: "From " lines too; _FOLD: a first line
    # without ':') is no field to the parser; nor is an empty one.
    joined = "".join(names)
    if not (joined.isascii() and joined.isprintable()) or " " in joined or "" in names:
        return None
    return message


def parse_message(content: bytes) -> Message:
    """Parse leniently (compat32 keeps headers as the sender wrote them)."""
    # As email.message_from_bytes does: bytes that are not ASCII are kept as surrogates.
    text = content.decode("ascii", "surrogateescape")
    body = _body_start(content)
    # A header block of absurd size is left to the parser, which holds a few lines of it
    # at a time (here all its lines would be held at once).
    if body is not None and body <= MAX_HEADER_BYTES:
        message = _single_part(text, body)
        if message is not None:
            return message
    parser = _BoundedParser()
    try:
        _feed(parser, text)
        return parser.close()
    except _PartLimitReached:
        defect: UnparseableStructure = TooManyParts(f"more than {MAX_PARSED_PARTS} MIME parts")
    except Exception:  # noqa: BLE001 - the parser must not take the gateway down
        # Thousands of nested multiparts exhaust the parser's recursion.
        defect = UnparseableStructure("MIME structure could not be parsed")
    # Keep what checks need most (the headers), the body as one opaque part, and mark the
    # structure, so the message cannot look cleaner than a mildly nested one.
    message = parse_headers(content)
    start = _body_start(content)
    message.set_payload(text[start:] if start is not None else "")
    message.defects.append(defect)
    return message


def unparseable(message: Message) -> bool:
    """Whether ``parse_message`` had to give up on the message's MIME structure."""
    return any(isinstance(d, UnparseableStructure) for d in message.defects)


def too_many_parts(message: Message) -> bool:
    """Whether ``parse_message`` stopped at ``MAX_PARSED_PARTS``."""
    return any(isinstance(d, TooManyParts) for d in message.defects)


def _body_start(content: bytes) -> int | None:
    """Where the body starts: after the first empty line (CRLF or bare LF ends)."""
    crlf = content.find(b"\r\n\r\n")
    # A bare-LF blank line can only come first if it lies before the CRLF one: SMTP mail
    # is CRLF, and its whole body need not be scanned for one.
    lf = content.find(b"\n\n", 0, crlf if crlf >= 0 else len(content))
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else None


def parse_headers(content: bytes) -> Message:
    """Only the header block (the body is not read): for the subject of unfiltered mail."""
    start = _body_start(content)
    head = content[:min(start if start is not None else len(content), MAX_HEADER_BYTES)]
    if start is not None and start <= MAX_HEADER_BYTES:
        # Unfiltered mail's subject, read for the log and the archive: most header
        # blocks are split without the parser (see _plain_fields).
        message = _plain_fields(head.decode("ascii", "surrogateescape"))
        if message is not None:
            message.set_payload("")          # as the parser leaves it: no body was read
            return message
    try:
        return BytesHeaderParser(IndexedMessage, policy=email.policy.compat32).parsebytes(head)
    except Exception:  # noqa: BLE001 - as parse_message
        return IndexedMessage()


# The email package decodes encoded words in time that grows with the square of their
# number (a 1 MB Subject of them took seconds); what any reader of a subject or a file
# name needs is far shorter.
MAX_DECODED_TEXT = 16 * 1024


def decode_words(text: str, *, keep_end: bool = False) -> str:
    """``text`` with RFC 2047 encoded words decoded (its first ``MAX_DECODED_TEXT``
    characters, or its last ones with ``keep_end``: a file name's extension is what
    counts); as it is when they cannot be (unknown charsets, broken words)."""
    if len(text) > MAX_DECODED_TEXT:  # cut between words, not inside an encoded one
        if keep_end:
            text = text[-MAX_DECODED_TEXT:]
            blank = min((at for at in (text.find(" "), text.find("\t")) if at >= 0),
                        default=-1)
            text = text[blank + 1:] if 0 <= blank < len(text) - 1 else text
        else:
            text = text[:MAX_DECODED_TEXT]
            blank = max(text.rfind(" "), text.rfind("\t"))
            text = text[:blank] if blank > 0 else text
    if "=?" not in text:
        return text                 # no encoded word: decoding would give it back as is
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # noqa: BLE001 - unknown charsets, broken encoded words
        # One such word left the whole text encoded, the words beside it too, which mail
        # clients show decoded: each word is decoded on its own instead.
        return _ENCODED_WORD.sub(_one_word, _BETWEEN_ENCODED_WORDS.sub("", text))


# An RFC 2047 encoded word, and the blanks between two of them (which are no text).
_ENCODED_WORD = re.compile(r"=\?[^?\s]{1,75}\?[bBqQ]\?[^?\s]*\?=")
_BETWEEN_ENCODED_WORDS = re.compile(r"(?<=\?=)[ \t\r\n]+(?==\?)")


def _one_word(match: re.Match[str]) -> str:
    """An encoded word decoded (bytes invalid in its charset read as ``decode_text`` reads
    them); one that cannot be (an unknown charset) as it is, apart from the words beside
    it, so that it does not glue itself to them."""
    word = match.group(0)
    try:
        (data, charset), = decode_header(word)
        codecs.lookup(charset or "ascii")       # LookupError: a charset Python lacks
    except Exception:  # noqa: BLE001 - unknown charsets, broken encoded words
        text, start, end = match.string, match.start(), match.end()
        before = " " if start > 0 and not text[start - 1].isspace() else ""
        after = " " if end < len(text) and not text[end].isspace() else ""
        return before + word + after
    return decode_text(data, charset)


def decoded_header(message: Message, name: str) -> str:
    """A header's value with RFC 2047 encoded words decoded; '' when absent."""
    value = message.get(name)
    return "" if value is None else decode_words(str(value))


def walk(message: Message, cut: list[str] | None = None) -> Iterator[tuple[int, Message]]:
    """Yield (depth, part) for every part, depth-first, bounded in depth and count; what
    the bounds left out is said in ``cut``, when given."""
    if cut is not None and too_many_parts(message):
        cut.append(f"more than {MAX_PARTS} MIME parts")   # the parser stopped counting
    stack: list[tuple[int, Message]] = [(0, message)]
    seen = 0
    while stack and seen < MAX_PARTS:
        depth, part = stack.pop()
        seen += 1
        yield depth, part
        if part.is_multipart():
            payload = part.get_payload()
            if not isinstance(payload, list):
                continue
            inner = _encoded_message(part)
            if inner is not None:
                payload = [inner]
            if depth < MAX_DEPTH:
                stack.extend((depth + 1, p) for p in reversed(payload)
                             if isinstance(p, Message))
            elif cut is not None and payload:
                cut.append(f"MIME parts nested deeper than {MAX_DEPTH}")
    if stack and cut is not None:
        cut.append(f"more than {MAX_PARTS} MIME parts")


_TRANSFER_COMMENT = re.compile(r"\([^()]*\)")
_TRANSFER_TOKEN = re.compile(r"[A-Za-z0-9-]+")


def _transfer_encoding(part: Message) -> str:
    """The first word of the Content-Transfer-Encoding, lower-cased ('' when none)."""
    value = part.get("Content-Transfer-Encoding")
    if value is None:
        return ""
    token = _TRANSFER_TOKEN.search(_TRANSFER_COMMENT.sub(" ", str(value)))
    return token.group(0).lower() if token else ""


def _encoded_message(part: Message) -> Message | None:
    """The message a message/* part holds when it was sent base64 or quoted-printable
    encoded (RFC 2046 forbids it; mail clients and clamd decode it all the same): the
    email package parses the encoded text as a message of its own.  Kept on the part."""
    encoding = _transfer_encoding(part) if part.get_content_maintype() == "message" else ""
    if encoding not in ("base64", "quoted-printable"):
        return None
    cached = part.__dict__.get("_portcullis_inner")
    if cached is None:
        try:
            text = "".join(p.as_string() for p in part.get_payload()
                           if isinstance(p, Message))
            raw = text.encode("ascii", "ignore")
            decoded = _base64(raw) if encoding == "base64" else quopri.decodestring(raw)
        except Exception:  # noqa: BLE001 - damaged encoding: walked as the parser read it
            return None
        cached = part.__dict__["_portcullis_inner"] = parse_message(decoded)
    return cached


def payload(part: Message) -> bytes | None:
    """A non-multipart part's bytes, its transfer encoding undone; None when unreadable.

    The email package decodes only a Content-Transfer-Encoding that is exactly "base64"
    or "quoted-printable"; mail clients and clamd also read "base64 (binary)", a trailing
    blank or a folded value, so the first word of the value is what counts here.
    """
    value = part.get("Content-Transfer-Encoding")
    if value is not None:
        word = _transfer_encoding(part)
        if word in ("base64", "quoted-printable") and word != str(value).lower():
            part.replace_header("Content-Transfer-Encoding", word)
    defects = len(part.defects)
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken transfer encoding is the sender's problem
        return None
    if any(isinstance(d, email.errors.InvalidBase64LengthDefect)
           for d in part.defects[defects:]):
        # The email package gave the base64 text back as it is: one character too many
        # (a group of one, which holds no byte).  Mail clients decode the whole groups.
        try:
            raw = part.get_payload()    # decoded with the part's charset: it may be broken
        except Exception:  # noqa: BLE001 - as above
            return None
        # Nothing beyond ASCII is in base64's alphabet: such characters are skipped too.
        data = base64_leniently(raw.encode("ascii", "ignore")) if isinstance(raw, str) \
            else None
    return data if isinstance(data, bytes) else None


def _base64(text: bytes) -> bytes:
    try:
        return binascii.a2b_base64(text, strict_mode=False)
    except binascii.Error:          # a group of one character too many, as in payload()
        return base64_leniently(text)


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def base64_leniently(text: bytes) -> bytes:
    """Base64 as mail clients decode it: characters outside the alphabet (padding too)
    skipped, and a last group of one character (which holds no byte) left out instead
    of refused; never raises."""
    text = _NOT_BASE64.sub(b"", text)
    text = text[:len(text) - 1] if len(text) % 4 == 1 else text
    return binascii.a2b_base64(text + b"=" * (-len(text) % 4))


def part_text(part: Message, limit: int = 1_000_000) -> str:
    """The decoded text of a non-multipart part (transfer encoding and charset undone).

    Several checks read the same parts of one message (Bayes, URI blocklists, archive
    passwords); the decoded text is kept on the part so it is decoded once.
    """
    cache: dict[int, str] = part.__dict__.setdefault("_portcullis_text", {})
    if limit in cache:
        return cache[limit]
    # Read whole once (shorter than that reader's limit), the text is the same for any
    # limit at least as long: readers with other limits (Bayes's, the URI blocklists')
    # need not decode it again.
    whole: tuple[int, str] | None = part.__dict__.get("_portcullis_whole_text")
    if whole is not None and whole[0] <= limit:
        return whole[1]
    data = payload(part)
    text = decode_text(data[:limit], part.get_content_charset()) if data is not None else ""
    cache[limit] = text
    size = len(data) if data is not None else 0
    if size <= limit:
        part.__dict__["_portcullis_whole_text"] = (size, text)
    return text


def decode_text(payload: bytes, charset: str | None) -> str:
    """Decode bytes in the declared charset; when the declaration is missing, unknown or
    wrong (bytes that are invalid in it), try UTF-8, then Windows-1252, which maps almost
    every byte: mislabelled text still gives words instead of replacement characters."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)
        except UnicodeDecodeError as exc:
            if exc.start >= len(payload) - 3:   # a character cut by a size limit
                return payload[:exc.start].decode(candidate, errors="replace")
        except (LookupError, ValueError):
            continue
    return payload.decode("cp1252", errors="replace")


def filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        return ""
    return decode_words(name, keep_end=True)
