"""Changes the gateway makes to a message on its way through, done on the raw bytes.

Re-serialising a parsed message would alter signed headers and bodies (breaking DKIM);
instead headers are prepended and the Subject gets the tag phrase in place.
"""

from __future__ import annotations

import re
from email.header import Header
from email.utils import format_datetime, localtime

from portcullis.addresses import ascii_address
from portcullis.mailauth.results import claims_to_be_from
from portcullis.policy import Decision, Verdict

# Headers only we may set: copies arriving from outside are removed so a sender cannot
# pre-label its own spam as clean (or its ham as spam) for mail-client rules.  Every
# X-Spam-* field, as SpamAssassin removes them: rules also match X-Spam-Level,
# X-Spam-Report and the like, which we do not write.
OWN_HEADER_PREFIXES = (b"x-spam-", b"x-portcullis-")
# A line of the header section: a field name and its colon, a folded continuation, or an
# mbox "From " line (the email package's test; field names are printable ASCII but ':').
_FIELD_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]|From ")
# The lines of the header section (each such a line, up to its CRLF; a CR alone is part
# of the line) in one match instead of a match and a find a line.  Possessive: no
# backtracking, so hostile lines cost a pass, not a search from every position.
_HEADER_SECTION = re.compile(rb"(?:(?:[\x21-\x39\x3b-\x7e]++[ \t]*+:|[ \t]|From )"
                             rb"[^\r]*+(?:\r(?!\n)[^\r]*+)*+\r\n)*+")


def split_message(content: bytes) -> tuple[bytes, bytes]:
    """Split into (header block including its final CRLF, rest).

    The header section ends at the blank line, or, as mail readers see it, at the first
    line that is neither a field nor a continuation; the rest starts with the blank line
    in the first case and with that line in the second.  A last field line without a
    CRLF leaves no rest.
    """
    position = _HEADER_SECTION.match(content).end()    # type: ignore[union-attr]
    if position < len(content) and _FIELD_LINE.match(content, position):
        return content, b""
    return content[:position], content[position:]


def header_lines(block: bytes) -> list[bytes]:
    """Physical header fields, each with its folded continuation lines.  A continuation
    with no field before it is dropped, as mail readers ignore it: it would otherwise
    become part of the last header the gateway puts in front."""
    fields: list[bytes] = []
    for line in block.split(b"\r\n")[:-1] if block else []:
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


# The first letters (either case) of our own fields' names: any other field, most of
# them, is passed without its name being cut out.
_OWN_INITIALS = frozenset(initial for name in (*OWN_HEADER_PREFIXES, b"authentication-results")
                          for initial in name[:1] + name[:1].upper())


def _forged(field: bytes, authserv_id: str) -> bool:
    """A header only we may write, in the copy that came from outside."""
    if field[:1].lstrip() and field[0] not in _OWN_INITIALS:
        return False
    name = _name(field)
    return name.startswith(OWN_HEADER_PREFIXES) or (name == b"authentication-results"
                                   and claims_to_be_from(field, authserv_id))


def tag_subject(fields: list[bytes], phrase: str) -> list[bytes]:
    """Every Subject field tagged (readers differ on which of two they show), or one
    added.  A phrase beyond ASCII goes in as an RFC 2047 encoded-word: raw UTF-8 in a
    header is for SMTPUTF8 mail only, and readers take it in a charset of their choosing
    otherwise.  Before an encoded-word its space goes inside it, as the blank between
    two encoded-words is dropped when they are decoded."""
    forms = _tag_forms(phrase)
    tagged = False
    for index, field in enumerate(fields):
        name, colon, value = field.partition(b":")
        # A "Subject" line without a colon is no Subject field (hostile or broken mail).
        if colon and name.strip().lower() == b"subject":
            value = value.lstrip(b" \t\r\n")     # a fold right after the colon too
            if not value.startswith(forms):
                tag = forms[-1] if value.startswith(b"=?") else forms[1]
                fields[index] = b"Subject: " + tag + b" " + value
            tagged = True
    return fields if tagged else [*fields, b"Subject: " + forms[1]]


def untag_subject(field: bytes, phrase: str) -> bytes:
    """A header field with the tag ``tag_subject`` put in front of a Subject's text (as
    written, or as an encoded-word before one) taken off again; b"" for the Subject it
    gave a message without one.  Training learns a reported message as it arrived."""
    name, colon, value = field.partition(b":")
    if not (colon and phrase and name.strip().lower() == b"subject"):
        return field
    value = value.lstrip(b" \t\r\n")
    for tag in _tag_forms(phrase)[1:]:     # the forms tag_subject writes
        if value.startswith(tag + b" "):
            return b"Subject: " + value[len(tag) + 1:]
        if value.rstrip(b" \t\r\n") == tag:
            return b""
    return field


def _tag_forms(phrase: str) -> tuple[bytes, ...]:
    """The phrase as it may start a tagged Subject: as written (UTF-8), as put in front
    of text, and as put in front of an encoded-word (the same for an ASCII phrase)."""
    written = phrase.encode("utf-8")
    if phrase.isascii():
        return written, written
    return (written, *(Header(text, "utf-8").encode(linesep="\r\n").encode("ascii")
                       for text in (phrase, phrase + " ")))


def status_headers(decision: Decision, thresholds_tag: float, hostname: str) -> list[bytes]:
    tests = ",".join(f"{s.name}={s.score:g}" for s in decision.symbols) or "none"
    spam = decision.verdict in (Verdict.TAG, Verdict.REJECT)
    lines = [
        f"X-Spam-Status: {'Yes' if spam else 'No'}, score={decision.score:.1f}"
        f" required={thresholds_tag:.1f} tests={tests}",
        f"X-Spam-Score: {decision.score:.1f}",
        f"X-Portcullis-Verdict: {decision.verdict.value} ({hostname})",
    ]
    if spam:
        lines.insert(0, "X-Spam-Flag: YES")
    return [fold(line.encode("utf-8", "replace")) for line in lines]


def received_header(*, helo: str, client_ip: str, hostname: str, queue_id: str,
                    recipient: str | None, tls: bool = False, smtputf8: bool = False) -> bytes:
    helo = re.sub(r"[^\x21-\x7e]", "?", helo)[:255] or "unknown"
    # RFC 3848; RFC 6531 3.7.3 for a transaction with SMTPUTF8.
    protocol = ("UTF8SMTP" if smtputf8 else "ESMTP") + ("S" if tls else "")
    # An address literal (RFC 5321 4.1.3): an IPv6 one is tagged, as Postfix writes it.
    literal = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
    # The recipient as the next hop is sent it: a U-label domain would be the one
    # non-ASCII byte of an ASCII message, for a host that may take no UTF-8 header.
    recipient = recipient and ascii_address(recipient)
    line = (f"Received: from {helo} ([{literal}]) by {hostname} (Portcullis) with {protocol}"
            f" id {queue_id}{f' for <{recipient}>' if recipient else ''};"
            f" {format_datetime(localtime())}")
    return fold(line.encode("utf-8", "replace"))


def fold(line: bytes, width: int = 78) -> bytes:
    """Fold a long header line at spaces or commas so no line exceeds ``width``."""
    if len(line) <= width:
        return line
    out, current = [], b""
    for token in re.split(rb"(?<=[ ,])", line):
        if current and len(current) + len(token) > width:
            out.append(current.rstrip(b" "))
            current = b"\t" + token
        else:
            current += token
    out.append(current)
    return b"\r\n".join(out)


def rewrite(content: bytes, *, prepend: list[bytes], tag_phrase: str | None,
            authserv_id: str) -> bytes:
    """Strip our own headers from the sender's copy (and Authentication-Results claiming
    to be ours), prepend ours, tag the subject."""
    block, rest = split_message(content)
    fields = [f for f in header_lines(block) if not _forged(f, authserv_id)]
    if tag_phrase:
        fields = tag_subject(fields, tag_phrase)
    header = b"".join(f + b"\r\n" for f in [*prepend, *fields])
    if not rest.startswith(b"\r\n"):
        rest = b"\r\n" + rest   # the missing header/body separator, as Postfix's cleanup
    return header + rest
