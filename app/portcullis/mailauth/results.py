"""The Authentication-Results header field (RFC 8601).

The gateway is the border MTA: it writes down what SPF, DKIM and DMARC found, under its
own host name as the authserv-id, so the internal mail host and its users' mail rules can
act on it without checking again.  Since such a header is only worth something when no
outsider can write one, copies arriving from outside that claim our authserv-id are
removed (RFC 8601 section 5); other hosts' results are left alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:     # types only: rewrite.py imports this module without the verifiers
    from portcullis.mailauth.dkimverify import DkimResult
    from portcullis.mailauth.dmarc import DmarcOutcome
    from portcullis.mailauth.spf import SpfOutcome

HEADER_NAME = "Authentication-Results"
# A value that needs no quoting: a domain name or an address of plain ASCII.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._+-]+(@[A-Za-z0-9._-]+)?")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_QUOTED_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_TOKEN = re.compile(r"[^\s;()\"]+")
REASON_LENGTH = 100


def header_field(authserv_id: str, *, mail_from: str, helo: str, spf: SpfOutcome,
                 dkim: list[DkimResult], dmarc: DmarcOutcome | None) -> str:
    """The whole field, unfolded: ``Authentication-Results: gw.example; spf=...``."""
    results = [_spf(spf, mail_from, helo), *_dkim(dkim)]
    if dmarc is not None:
        results.append(_result("dmarc", dmarc.result.value,
                               f"p={dmarc.policy}" if dmarc.policy else "",
                               dmarc.detail if dmarc.result.value != "pass" else "",
                               [("header.from", dmarc.domain)]))
    return f"{HEADER_NAME}: {authserv_id}; " + "; ".join(results)


def claims_to_be_from(field: bytes, authserv_id: str) -> bool:
    """Whether a raw ``Authentication-Results`` field (name included) names
    ``authserv_id`` as its author."""
    _, _, value = field.partition(b":")
    author = _authserv_id(value.decode("latin-1"))
    return author.rstrip(".").lower() == authserv_id.rstrip(".").lower()


def _authserv_id(value: str) -> str:
    """The field's first value, after any comments and blanks (CFWS): a token, or a
    quoted-string's content ('"gw.example"' names gw.example, RFC 8601 2.2).  Comments
    nest (RFC 5322 3.2.2); one pass, however deep a sender nests them."""
    depth, position = 0, 0
    while position < len(value):
        char = value[position]
        if depth:
            if char == "\\":
                position += 1
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == "(":
            depth = 1
        elif not char.isspace():
            break
        position += 1
    quoted = _QUOTED_STRING.match(value, position)
    if quoted is not None:
        return _QUOTED_PAIR.sub(r"\1", quoted[1])
    token = _TOKEN.match(value, position)
    return token[0] if token is not None else ""


def _spf(outcome: SpfOutcome, mail_from: str, helo: str) -> str:
    identity = [("smtp.mailfrom", mail_from)] if mail_from else [("smtp.helo", helo)]
    detail = outcome.detail if outcome.result.value not in ("pass", "none") else ""
    return _result("spf", outcome.result.value, "", detail, identity)


def _dkim(results: list[DkimResult]) -> list[str]:
    if not results:
        return ["dkim=none"]
    return [_result("dkim", r.result, "", "" if r.passed else r.detail,
                    [("header.d", r.domain), ("header.s", r.selector)]) for r in results]


def _result(method: str, result: str, comment: str, reason: str,
            properties: list[tuple[str, str]]) -> str:
    parts = [f"{method}={result}"]
    if comment:
        parts.append(f"({_NOT_PRINTABLE.sub('?', comment).replace('(', '[').replace(')', ']')})")
    if reason:
        parts.append(f"reason={_quoted(reason[:REASON_LENGTH])}")
    parts += [f"{name}={_value(value)}" for name, value in properties if value]
    return " ".join(parts)


def _value(text: str) -> str:
    """A property value as it may appear: plain, else a quoted string (hostile names
    from a message must not add a result of their own or break the field)."""
    return text if _PLAIN_VALUE.fullmatch(text) else _quoted(text)


def _quoted(text: str) -> str:
    text = _NOT_PRINTABLE.sub("?", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
