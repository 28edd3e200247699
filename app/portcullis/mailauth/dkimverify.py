"""DKIM (RFC 6376): verify a message's signatures with dkimpy.

dkimpy asks a synchronous function for each signing key; that would block the event loop
and bypass the configured resolver.  So the keys of every signature (at most
``MAX_SIGNATURES``) are fetched first, concurrently, through our ``Resolver``, and dkimpy
is then run in a worker thread (body hashing and RSA are CPU work) with a lookup function
that only answers from what was fetched.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from portcullis.resolver import DnsAnswer, DnsStatus, Resolver

MAX_SIGNATURES = 5
MIN_KEY_BITS = 1024

# dkimpy logs every broken signature of every stranger's message as an error.
_QUIET = logging.getLogger("portcullis.mailauth.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class DkimResult:
    domain: str           # d=
    selector: str         # s=
    result: str           # pass, fail, permerror, temperror
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "pass"


def _signatures(content: bytes) -> list[tuple[str, str] | str]:
    """(domain, selector) of each DKIM-Signature header, or the reason it is unreadable."""
    try:
        headers = dkim.DKIM(content, logger=_QUIET).headers
    except Exception as exc:  # noqa: BLE001 - dkimpy's parser on hostile input
        return [f"message unreadable for DKIM: {exc}"]
    found: list[tuple[str, str] | str] = []
    for name, value in headers:
        if name.lower() != b"dkim-signature":
            continue
        if len(found) == MAX_SIGNATURES:
            break
        try:
            tags = parse_tag_value(value)
        except InvalidTagValueList as exc:
            found.append(f"unreadable signature: {exc}")
            continue
        domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
        selector = tags.get(b"s", b"").decode("ascii", "replace").strip().lower()
        if not domain or not selector:
            found.append("signature without d= or s=")
            continue
        found.append((domain, selector))
    return found


async def verify(resolver: Resolver, content: bytes) -> list[DkimResult]:
    """Verify every DKIM signature (up to ``MAX_SIGNATURES``); [] when there is none."""
    header_block = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if b"dkim-signature" not in header_block.lower():
        return []       # most mail: no thread, no parsing
    signatures = await asyncio.to_thread(_signatures, content)
    names = sorted({f"{s[1]}._domainkey.{s[0]}" for s in signatures if isinstance(s, tuple)})
    answers = dict(zip(names, await asyncio.gather(*(resolver.txt(n) for n in names)),
                       strict=True))
    return await asyncio.to_thread(_verify_all, content, signatures, answers)


def _verify_all(content: bytes, signatures: list[tuple[str, str] | str],
                answers: dict[str, DnsAnswer]) -> list[DkimResult]:
    def key_record(name: bytes, timeout: float = 5) -> bytes | None:
        answer = answers.get(name.decode("ascii", "replace").rstrip(".").lower())
        if answer is None or not answer.records:
            return None
        # Several TXT records at a key name: take the one holding a key.
        chosen = next((r for r in answer.records if "p=" in r), answer.records[0])
        return chosen.encode()

    results = []
    for index, signature in enumerate(signatures):
        if isinstance(signature, str):
            results.append(DkimResult("", "", "permerror", signature))
            continue
        domain, selector = signature
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
            verifier = dkim.DKIM(content, logger=_QUIET, minkey=MIN_KEY_BITS)
            ok = verifier.verify(idx=index, dnsfunc=key_record)
        except dkim.DKIMException as exc:
            results.append(DkimResult(domain, selector, "permerror", str(exc)[:200]))
            continue
        except Exception as exc:  # noqa: BLE001 - dkimpy on hostile input
            results.append(DkimResult(domain, selector, "permerror",
                                      f"unverifiable: {type(exc).__name__}"))
            continue
        results.append(DkimResult(domain, selector, "pass" if ok else "fail",
                                  "" if ok else "signature does not verify"))
    return results
