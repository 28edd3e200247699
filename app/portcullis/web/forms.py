"""Reading an ``application/x-www-form-urlencoded`` body in chunks.

Bottle parses a form by decoding the whole body to one string and unquoting each value
in one call, which splits a value at every ``%``: a pasted list of 500,000 addresses
(each ``@`` and line end escaped) became two million small strings, about 340 MB for a
14 MB body.  Here the body is read 64 KiB at a time and each value is unquoted as it
arrives, so a form costs about twice its largest value: the unquoted bytes and, once
they are complete, the text decoded from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

CHUNK = 64 * 1024
MAX_NAME_BYTES = 1024       # no form of ours has a longer field name


class FormError(ValueError):
    """The body is not a form this server takes: ``too_large`` says whether it is its
    size (413) rather than its text (400)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def _unquoted(raw: bytes | bytearray) -> bytes:
    return unquote_to_bytes(bytes(raw).replace(b"+", b" "))


def _text(raw: bytes | bytearray) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("not UTF-8") from None


def read_urlencoded(stream: BinaryIO, length: int, max_fields: int
                    ) -> Iterator[tuple[str, str]]:
    """The (name, value) pairs of an urlencoded body of ``length`` bytes, as UTF-8 text;
    FormError when a name or value is not UTF-8, or when there are more than
    ``max_fields`` fields (each costs far more parsed than sent)."""
    fields = 0
    name: str | None = None      # None while the name of a field is read
    raw = bytearray()            # still quoted: a name, or the tail of a value's %XX
    value = bytearray()          # the value read so far, unquoted
    left = length

    def field_done() -> tuple[str, str]:
        nonlocal fields
        fields += 1
        if fields > max_fields:
            raise FormError(f"more than {max_fields} fields", too_large=True)
        if name is None:            # "a&b": a name without "="
            return _text(_unquoted(raw)), ""
        value.extend(_unquoted(raw))
        return name, _text(value)

    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        position = 0
        while position < len(chunk):
            end = chunk.find(b"&", position)
            stop = len(chunk) if end < 0 else end
            if name is None:
                equals = chunk.find(b"=", position, stop)
                raw += chunk[position:stop if equals < 0 else equals]
                if len(raw) > MAX_NAME_BYTES:
                    raise FormError("a field name is too long", too_large=True)
                if equals >= 0:
                    name = _text(_unquoted(raw))
                    raw.clear()
                    position = equals + 1
                    continue
            else:
                raw += chunk[position:stop]
                # Unquote all but an escape cut at the chunk's end ("%4" of "%40").
                keep = 2 if raw[-2:-1] == b"%" else 1 if raw[-1:] == b"%" else 0
                if end < 0 and keep < len(raw):
                    value += _unquoted(raw[:len(raw) - keep])
                    del raw[:len(raw) - keep]
            if end < 0:
                break
            if name is not None or raw:     # "&&" carries no field
                yield field_done()
            name, position = None, end + 1
            raw.clear()
            value = bytearray()
    if name is not None or raw:
        yield field_done()
