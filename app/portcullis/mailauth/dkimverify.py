"""DKIM (RFC 6376): verify a message's signatures with dkimpy.

dkimpy asks a synchronous function for each signing key; that would block the event loop
and bypass the configured resolver.  So the keys of every signature (at most
``MAX_SIGNATURES``) are fetched first, concurrently, through our ``Resolver``, and dkimpy
is then run in a worker thread (body hashing and RSA are CPU work) with a lookup function
that only answers from what was fetched.

A worker thread cannot be stopped when the check's time runs out, so everything handed
to dkimpy is bounded first: the header section is split in linear time (dkimpy's own
parser copies a folded field once per continuation line), and a signature whose ``h=``
list would make dkimpy compare too many field names (it scans every field for each absent
name) is a permerror without dkimpy seeing it.  Such unusable signatures do not count
towards ``MAX_SIGNATURES``, so junk placed before a real signature cannot hide it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import parse_tag_value

from portcullis.resolver import DnsAnswer, DnsStatus, Resolver

MAX_SIGNATURES = 5           # signatures verified (each costs a key lookup and RSA)
MAX_UNUSABLE_REPORTED = 5    # unusable signatures listed in the results; more are ignored
MAX_SIGNED_FIELDS = 64       # h= entries; real signers list fewer than 50
MAX_SELECTION_WORK = 100_000  # h= entries x header fields dkimpy may compare per signature
MIN_KEY_BITS = 1024

# dkimpy logs every broken signature of every stranger's message as an error.
_QUIET = logging.getLogger("portcullis.mailauth.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_LINE_END = re.compile(b"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")


@dataclass(frozen=True)
class DkimResult:
    domain: str           # d=
    selector: str         # s=
    result: str           # pass, fail, policy, permerror, temperror
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True)
class _Signature:
    index: int            # among the message's DKIM-Signature fields, as dkimpy counts
    domain: str
    selector: str
    length: int | None    # l=, the signed body length


def split_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse`` (same fields, same body) in linear time."""
    lines = _LINE_END.split(message)
    fields: list[list[bytes]] = []
    body_start = len(lines)
    for number, line in enumerate(lines):
        if not line:
            body_start = number + 1
            break
        if line[0] in (0x09, 0x20):
            if not fields:
                raise dkim.MessageFormatError("continuation line before any header field")
            fields[-1].append(line + b"\r\n")
            continue
        match = _FIELD_NAME.match(line)
        if match is not None:
            fields.append([match.group(1), line[match.end(0):] + b"\r\n"])
        elif not line.startswith(b"From "):
            raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: "
                                          f"{line[:100]!r}")
    return [[field[0], b"".join(field[1:])] for field in fields], \
        b"\r\n".join(lines[body_start:])


class _Verifier(dkim.DKIM):
    """dkimpy's verifier on a message split by ``split_message``."""

    def set_message(self, message: bytes | None) -> None:
        super().set_message(None)
        if message:
            self.headers, self.body = split_message(message)


def _signatures(content: bytes) -> list[_Signature | DkimResult]:
    """The signatures worth verifying (at most ``MAX_SIGNATURES``), and results for the
    unusable ones met on the way (at most ``MAX_UNUSABLE_REPORTED``)."""
    try:
        headers = _Verifier(content, logger=_QUIET).headers
    except Exception as exc:  # noqa: BLE001 - a parser on hostile input
        return [DkimResult("", "", "permerror", f"message unreadable for DKIM: {exc}"[:200])]
    found: list[_Signature | DkimResult] = []
    usable = unusable = 0
    index = -1
    for name, value in headers:
        if name.lower() != b"dkim-signature":
            continue
        index += 1
        signature = _usable(index, value, len(headers))
        if isinstance(signature, DkimResult):
            unusable += 1
            if unusable <= MAX_UNUSABLE_REPORTED:
                found.append(signature)
            continue
        found.append(signature)
        usable += 1
        if usable == MAX_SIGNATURES:
            break
    return found


def _usable(index: int, value: bytes, fields: int) -> _Signature | DkimResult:
    """The signature in one DKIM-Signature field, or why dkimpy is not given it."""
    try:
        tags = parse_tag_value(value)
    except Exception as exc:  # noqa: BLE001 - dkimpy's parser on hostile input
        return DkimResult("", "", "permerror", f"unreadable signature: {exc}"[:200])
    domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
    selector = tags.get(b"s", b"").decode("ascii", "replace").strip().lower()
    if not domain or not selector:
        return DkimResult(domain, selector, "permerror", "signature without d= or s=")
    try:
        dkim.validate_signature_fields(tags)
    except Exception as exc:  # noqa: BLE001 - ValidationError, or worse on hostile input
        return DkimResult(domain, selector, "permerror", f"unusable signature: {exc}"[:200])
    # dkimpy adds one "from" of its own when h= names it.
    entries = tags[b"h"].count(b":") + 2
    if entries > MAX_SIGNED_FIELDS + 1:
        return DkimResult(domain, selector, "permerror",
                          f"signature lists {entries - 1} header fields in h= "
                          f"(at most {MAX_SIGNED_FIELDS} are verified)")
    if entries * fields > MAX_SELECTION_WORK:
        return DkimResult(domain, selector, "permerror",
                          f"too many header fields ({fields}) to verify this signature")
    length = tags.get(b"l")
    return _Signature(index, domain, selector, int(length) if length else None)


async def verify(resolver: Resolver, content: bytes) -> list[DkimResult]:
    """Verify the DKIM signatures (up to ``MAX_SIGNATURES`` usable ones); [] when there
    is none."""
    header_block = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if b"dkim-signature" not in header_block.lower():
        return []       # most mail: no thread, no parsing
    signatures = await asyncio.to_thread(_signatures, content)
    names = sorted({f"{s.selector}._domainkey.{s.domain}" for s in signatures
                    if isinstance(s, _Signature)})
    answers = dict(zip(names, await asyncio.gather(*(resolver.txt(n) for n in names)),
                       strict=True))
    return await asyncio.to_thread(_verify_all, content, signatures, answers)


def _verify_all(content: bytes, signatures: list[_Signature | DkimResult],
                answers: dict[str, DnsAnswer]) -> list[DkimResult]:
    def key_record(name: bytes, timeout: float = 5) -> bytes | None:
        answer = answers.get(name.decode("ascii", "replace").rstrip(".").lower())
        if answer is None or not answer.records:
            return None
        # Several TXT records at a key name: take the one holding a key.
        chosen = next((r for r in answer.records if "p=" in r), answer.records[0])
        return chosen.encode()

    results = []
    for signature in signatures:
        if isinstance(signature, DkimResult):
            results.append(signature)
            continue
        domain, selector = signature.domain, signature.selector
        answer = answers[f"{selector}._domainkey.{domain}"]
        if answer.status.failed:
            results.append(DkimResult(domain, selector, "temperror",
                                      f"key lookup failed: {answer.detail or answer.status}"))
            continue
        if answer.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA):
            results.append(DkimResult(domain, selector, "permerror",
                                      f"no key published at {selector}._domainkey.{domain}"))
            continue
        try:
            verifier = _Verifier(content, logger=_QUIET, minkey=MIN_KEY_BITS)
            ok = verifier.verify(idx=signature.index, dnsfunc=key_record)
            unsigned = _unsigned_body(verifier, signature) if ok else 0
        except dkim.DKIMException as exc:
            results.append(DkimResult(domain, selector, "permerror", str(exc)[:200]))
            continue
        except Exception as exc:  # noqa: BLE001 - dkimpy on hostile input
            results.append(DkimResult(domain, selector, "permerror",
                                      f"unverifiable: {type(exc).__name__}"))
            continue
        if unsigned:
            # RFC 6376 8.2: what follows l= is anyone's; such a signature vouches for
            # nothing the reader can tell apart (RFC 8601's "policy" result).
            results.append(DkimResult(domain, selector, "policy",
                                      f"{unsigned} bytes of the body are not covered by "
                                      f"the signature (l={signature.length})"))
            continue
        results.append(DkimResult(domain, selector, "pass" if ok else "fail",
                                  "" if ok else "signature does not verify"))
    return results


def _unsigned_body(verifier: _Verifier, signature: _Signature) -> int:
    """Bytes of the canonicalised body after the signed length (0 without ``l=``)."""
    if signature.length is None:
        return 0
    policy = CanonicalizationPolicy.from_c_value(
        verifier.signature_fields.get(b"c", b"simple/simple"))
    return max(0, len(policy.canonicalize_body(verifier.body)) - signature.length)
