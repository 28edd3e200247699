"""Finding the original message in a forward sent to spam@ / ham@.

Preferred: the ``message/rfc822`` attachments ("forward as attachment"; a user may
select several spams and forward them together), each taken as it is, also when the
client sent it base64 encoded, as some do.  Otherwise the inline forward: the text after
a forward marker ("-----Original Message-----", "---------- Forwarded message ---------",
"Begin forwarded message:"), whose leading "From:/Subject:/Sent:" lines become the
original's headers.  Without a marker the whole text of the forward is used, with
"Fwd:"/"FW:" taken off its subject.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from email.message import Message
from typing import TYPE_CHECKING

from portcullis.bayes.engine import NotLearnable
from portcullis.bayes.tokenizer import html_text
from portcullis.mime import decoded_header, part_text, walk
from portcullis.smtp.rewrite import untag_subject

if TYPE_CHECKING:
    from portcullis.services import Services

# "Forwarded by ...--" ends in "--", not "-{2,}": after ".*" a run of dashes was tried at
# every split, quadratic in a line the forwarded spam's author writes (80 KB: 40 s).
_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:Original Message|Forwarded message|Weitergeleitete Nachricht|"
    r"Message d'origine|Message transf[ée]r[ée])\s*-{2,}|Begin forwarded message:|"
    r"-{2,}\s*Forwarded by .*--)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_PSEUDO_HEADER = re.compile(r"^[ \t>]*(From|To|Cc|Subject|Sent|Date|Reply-To)\s*:\s*(.*)$",
                            re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:(?:fwd?|fw|tr|wg)\s*:\s*)+", re.IGNORECASE)


MAX_ORIGINALS = 20   # messages learnt from one forward


def extract_originals(message: Message) -> list[bytes]:
    """The original messages' bytes: the attached ones, else the inline forward's; none
    if the forward holds no text at all.  NotLearnable if no attached one can be read."""
    attached = _attached(message)
    if attached:
        found = [raw for raw in map(_serialise, attached) if raw is not None]
        if not found:
            # Permanent: a 4xx would have the user's mail server offer it for days.
            raise NotLearnable("the attached message is nested too deeply to be read")
        return found
    inline = _inline(message)
    return [] if inline is None else [inline]


def as_it_arrived(original: bytes, hostname: str, tag_phrase: str) -> bytes:
    """The original as the gateway ``hostname`` received it, when it came through it: the
    fields above the gateway's topmost trace (its Received field, or the
    X-Portcullis-Released field a release puts in its place), which the delivery added
    (the internal host's Received, Return-Path, Delivered-To), taken off with it, and the
    gateway's ``tag_phrase`` taken off the Subject.  Auto-learning learnt the message as
    it arrived; a report of the copy in a user's mailbox must find it by the same tokens
    (the same digest) to move it rather than learn it a second time (nor is the tag a
    word of the message to learn).
    """
    ends = [end for end in (original.find(b"\n\n"), original.find(b"\n\r\n")) if end >= 0]
    header = original[:min(ends) + 1] if ends else original
    ours = b" by " + hostname.lower().encode("ascii", "replace") + b" (portcullis) "
    fields: list[list[bytes]] = []          # each field's lines (a fold continues one)
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    for index, lines in enumerate(fields):
        # Whitespace made one space: the gateway folds a long Received field.
        text = b" ".join(b"".join(lines).split()).lower() + b" "
        name = text.partition(b":")[0].strip()
        if (name == b"received" and ours in text) or name == b"x-portcullis-released":
            below = [untag_subject(b"".join(f), tag_phrase) for f in fields[index + 1:]]
            return b"".join(below) + original[len(header):]
    return original


def arrival(services: Services) -> Callable[[bytes], bytes]:
    """``as_it_arrived`` with this gateway's host name and tag phrase: what training
    (spam@/ham@, ``portcullis train``, auto-learning) learns of a message."""
    return functools.partial(as_it_arrived, hostname=services.config.smtp.hostname,
                             tag_phrase=services.snapshots.get().settings["tag_phrase"])


def extract_original(message: Message) -> bytes | None:
    """The (first) original message's bytes, or None if the forward holds none."""
    originals = extract_originals(message)
    return originals[0] if originals else None


def _attached(message: Message) -> list[Message]:
    """The messages of the outermost message/rfc822 parts (those deeper were attached to
    an original, e.g. a decoy inside the spam, and are no user's choice)."""
    found: list[tuple[int, Message]] = []
    holder: int | None = None      # depth of the message/rfc822 part just walked
    for depth, part in walk(message):
        if holder is not None and depth == holder + 1:
            # Depth-first, a message/* part's message comes next (walk decodes one sent
            # base64 or quoted-printable; its raw payload would be the encoded text).
            found.append((holder, part))
        holder = depth if part.get_content_type() == "message/rfc822" else None
    if not found:
        return []
    outermost = min(depth for depth, _ in found)
    return [inner for depth, inner in found if depth == outermost][:MAX_ORIGINALS]


def _inline(message: Message) -> bytes | None:
    """The inline forward's original, or None if the forward holds no text at all."""
    text = _forward_text(message).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return None
    match = _MARKER.search(text)
    if match is None:
        subject = _FORWARD_PREFIX.sub("", decoded_header(message, "Subject"))
        return _build({"Subject": subject}, text)
    headers: dict[str, str] = {}
    lines = text[match.end():].lstrip("\r\n").splitlines()
    index = 0
    while index < len(lines) and (match := _PSEUDO_HEADER.match(lines[index])):
        name = match.group(1).capitalize()
        headers["Date" if name == "Sent" else name] = match.group(2).strip()
        index += 1
    body = "\n".join(line[1:].lstrip() if line.startswith(">") else line
                     for line in lines[index:])
    return _build(headers, body)


def _forward_text(message: Message) -> str:
    """The forward's own text (plain preferred; HTML stripped otherwise)."""
    html = ""
    for _depth, part in walk(message):
        ctype = part.get_content_type()
        if ctype == "text/plain":
            return part_text(part)
        if ctype == "text/html" and not html:
            html = html_text(part_text(part))
    return html


def _build(headers: dict[str, str], body: str) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers.items() if value
             and "\n" not in value]
    return ("\r\n".join([*lines, "Content-Type: text/plain; charset=utf-8", "", body])
            ).encode("utf-8", "replace")


def _serialise(message: Message) -> bytes | None:
    """The message's bytes; None when the email package cannot write it back (hundreds
    of nested multiparts exhaust its recursion)."""
    try:
        return message.as_bytes()
    except RecursionError:
        return None
    except Exception:  # noqa: BLE001, S110 - odd content the generator cannot write back
        pass
    try:
        return message.as_string().encode("utf-8", "surrogateescape")
    except RecursionError:
        return None
