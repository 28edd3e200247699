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
name) is a permerror without dkimpy seeing it.

Anyone can add signatures to a message, so which ones get the key lookups and RSA must
not be the sender's choice: only the first ``MAX_SIGNATURE_FIELDS`` DKIM-Signature fields
are read at all (each costs its parsing; more is a permerror that says so), every
signature's body hash (``bh=``) is checked first, which is cheap (one pass over the body
per hash and canonicalisation, whatever the number of signatures and ``l=`` values), and
one that does not match fails without RSA (the keys of the first few such are asked,
besides the bound below, only to see whether their signer is testing, t=y: RFC 6376
3.6.1 makes such a failure no failure).  Of the rest, those of a From domain's
organisation (the ones DMARC can use) come first.  Keys are looked up for as many as
there are free places among the ``MAX_SIGNATURES`` verified; a signature whose key
lookup fails (no key at its selector, an unusable one, a DNS error) gives its place to
the next one, up to ``MAX_KEY_LOOKUPS`` lookups in all (as OpenDKIM and rspamd bound
theirs).  So neither unusable signatures nor signatures with made-up selectors, placed
before a real one, can hide it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError
from dkim.util import parse_tag_value

from portcullis.mailauth.orgdomain import domain_name, relaxed_alignment
from portcullis.resolver import DnsAnswer, Resolver

MAX_SIGNATURES = 5           # signatures verified (each costs dkimpy's hashing and RSA)
MAX_KEY_LOOKUPS = 10         # key names looked up for them, failed lookups included
MAX_SIGNATURE_FIELDS = 20    # DKIM-Signature fields read; real mail has one to a few
MAX_UNUSABLE_REPORTED = 5    # unusable or failed signatures listed in the results
MAX_SIGNED_FIELDS = 64       # h= entries; real signers list fewer than 50
MAX_SELECTION_WORK = 100_000  # h= entries x header fields dkimpy may compare per signature
MIN_KEY_BITS = 1024
WITHDRAWN_ALGORITHMS = frozenset({b"rsa-sha1"})    # a= values no signature may use

# dkimpy logs every broken signature of every stranger's message as an error.
_QUIET = logging.getLogger("portcullis.mailauth.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_LINE_END = re.compile(b"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")
_SPACE = re.compile(rb"\s+")
_KEY_TAG = re.compile(r"(?:^|;)\s*p\s*=")

# What a bh= is the digest of: (hash function, body canonicalisation, l=).
_BodyPart = tuple[Callable[[], Any], type, int | None]


@dataclass(frozen=True)
class DkimResult:
    domain: str           # d=
    selector: str         # s=
    result: str           # pass, fail, policy, neutral, permerror, temperror
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
    body: _BodyPart       # what bh= is the hash of
    body_hash: bytes      # bh=, decoded
    hash_name: str        # the hash of a= (rsa-sha256: sha256), as a key's h= names it
    unsigned: int = 0     # bytes of the canonicalised body after l=


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
    """dkimpy's verifier on a message split by ``split_message``, for signatures whose
    body hash ``_signatures`` has checked (``_body_hashes``, as dkimpy computes it):
    dkimpy would canonicalise and hash the whole body again for each one, five times the
    work of a big message, enough to run DKIM out of time (a temperror, which DMARC must
    take for a signature that may pass).  So its check of bh= is left out."""

    def set_message(self, message: bytes | None) -> None:
        super().set_message(None)
        if message:
            self.headers, self.body = split_message(message)

    def verify_headerprep(self, idx: int = 0) -> Any:
        prep = super().verify_headerprep(idx)
        if not prep:
            return prep
        signature, signed, fields = prep
        # The b= check still covers the field with its bh= (it hashes the field as written).
        return {t: v for t, v in signature.items() if t != b"bh"}, signed, fields


# A result about the message, not one signature: listed before the signatures'.
_MESSAGE_INDEX = -1
Rejected = list[tuple[int, DkimResult]]    # (signature index, why it did not verify)


def _key_name(signature: _Signature | DkimResult) -> str:
    return f"{signature.selector}._domainkey.{signature.domain}"


def _signatures(content: bytes, from_domains: Sequence[str]
                ) -> tuple[list[_Signature], Rejected, list[str]]:
    """The signatures worth a key lookup (those whose body hash matches, those aligned
    with a From domain first), results for the unusable and failed ones, and the key
    names of the first ``MAX_UNUSABLE_REPORTED`` whose body hash failed (their keys are
    asked only to see whether the signer is testing)."""
    try:
        message = _Verifier(content, logger=_QUIET)
    except Exception as exc:  # noqa: BLE001 - a parser on hostile input
        return [], [(_MESSAGE_INDEX, DkimResult(
            "", "", "permerror", f"message unreadable for DKIM: {exc}"[:200]))], []
    fields = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
    usable: list[_Signature] = []
    rejected: Rejected = []
    if len(fields) > MAX_SIGNATURE_FIELDS:
        rejected.append((_MESSAGE_INDEX, DkimResult(
            "", "", "permerror", f"{len(fields)} DKIM-Signature fields: only the first "
                                 f"{MAX_SIGNATURE_FIELDS} are read")))
        del fields[MAX_SIGNATURE_FIELDS:]
    for index, value in enumerate(fields):
        signature = _usable(index, value, len(message.headers))
        if isinstance(signature, DkimResult):
            rejected.append((index, signature))
        else:
            usable.append(signature)
    hashes = _body_hashes(message.body, {s.body for s in usable})
    matching: list[_Signature] = []
    mismatched: dict[str, None] = {}
    for signature in usable:
        digest, size = hashes[signature.body]
        if digest != signature.body_hash:
            # RFC 6376 6.3's words; no RSA for a signature of another body.
            rejected.append((signature.index, DkimResult(
                signature.domain, signature.selector, "fail", "body hash did not verify")))
            if len(mismatched) < MAX_UNUSABLE_REPORTED:
                mismatched[_key_name(signature)] = None
            continue
        unsigned = 0 if signature.length is None else max(0, size - signature.length)
        matching.append(replace(signature, unsigned=unsigned))
    # DMARC can only use a signature of a From domain's organisation: such signatures
    # must not be crowded out by others (sort() is stable: the message's order else).
    organisations = {relaxed_alignment(domain) for domain in from_domains}
    matching.sort(key=lambda s: relaxed_alignment(s.domain) not in organisations)
    return matching, rejected, list(mismatched)


async def _with_keys(resolver: Resolver, candidates: list[_Signature]
                     ) -> tuple[list[_Signature], dict[str, DnsAnswer], Rejected]:
    """The candidates (in their order) to verify, at most ``MAX_SIGNATURES`` with a usable
    key found; their keys; and the ones whose lookup failed.  A failed lookup frees its
    place for the next candidate, within ``MAX_KEY_LOOKUPS`` names asked in all; names
    are asked concurrently, a round for the places still free."""
    answers: dict[str, DnsAnswer] = {}
    chosen: list[_Signature] = []
    failed: Rejected = []
    waiting = list(candidates)
    while waiting and len(chosen) < MAX_SIGNATURES:
        round_: list[_Signature] = []
        names: list[str] = []
        for signature in waiting[:MAX_SIGNATURES - len(chosen)]:
            name = _key_name(signature)
            if name not in answers and name not in names:
                if len(answers) + len(names) >= MAX_KEY_LOOKUPS:
                    break
                names.append(name)
            round_.append(signature)
        if not round_:
            break
        del waiting[:len(round_)]
        answers.update(await _keys(resolver, names))
        for signature in round_:
            failure = _lookup_failure(signature, answers[_key_name(signature)])
            if failure is None:
                chosen.append(signature)
            else:
                failed.append((signature.index, failure))
    return chosen, answers, failed


async def _keys(resolver: Resolver, names: list[str]) -> dict[str, DnsAnswer]:
    """The TXT answers at key names, asked concurrently."""
    return dict(zip(names, await asyncio.gather(*(resolver.txt(n) for n in names)),
                    strict=True))


def _lookup_failure(signature: _Signature, answer: DnsAnswer) -> DkimResult | None:
    """Why the signature's key could not be had, None when a usable key was found."""
    domain, selector = signature.domain, signature.selector
    if answer.status.failed:
        return DkimResult(domain, selector, "temperror",
                          f"key lookup failed: {answer.detail or answer.status}")
    record = _key_record(answer)
    if record is None:
        return DkimResult(domain, selector, "permerror",
                          f"no key published at {_key_name(signature)}")
    problem = _key_problem(record) or _hash_refused(signature, record)
    if problem is not None:
        return DkimResult(domain, selector, "permerror", problem)
    return None


def _hash_refused(signature: _Signature, record: str) -> str | None:
    """RFC 6376 6.1.2: a signature made with a hash its key's h= does not list is to be
    ignored (PERMFAIL, inappropriate hash algorithm); dkimpy does not read h=."""
    allowed = _key_list(record, b"h")
    if allowed is None or signature.hash_name in allowed:
        return None
    return f"inappropriate hash algorithm: the key allows h={':'.join(allowed)}, " \
           f"not {signature.hash_name}"[:200]


def _key_problem(record: str) -> str | None:
    """Why a key record cannot verify mail (RFC 6376 6.1.2: a revoked key, a key for
    other services, one that does not parse), None for a usable one.  dkimpy reads such
    a record as a signature that does not verify, as if the message had been altered."""
    try:
        if not parse_tag_value(record.encode("ascii", "replace")).get(b"p", b"").strip():
            return "key revoked (empty p=)"
        key, _, _, for_reports = dkim.evaluate_pk(b"", _record_for_dkimpy(record).encode(
            "ascii", "replace"))
    except Exception as exc:  # noqa: BLE001 - KeyFormatError, or worse on hostile input
        return f"unusable key: {exc}"[:200]
    # dkimpy gives no key (and no error) for a service list without mail.
    return "key for other services than mail (s=)" if key is None or for_reports else None


def _body_hashes(body: bytes, parts: set[_BodyPart]) -> dict[_BodyPart, tuple[bytes, int]]:
    """For each part of the body a signature covers: its digest, and the length of the
    canonicalised body it is taken from.  Each hash function and canonicalisation costs
    one pass over the body however many ``l=`` values there are: the digest of every
    shorter length is taken on the way, from a copy of the running hash."""
    found: dict[_BodyPart, tuple[bytes, int]] = {}
    for canonicalization in {c for _, c, _ in parts}:
        canonical = memoryview(canonicalization.canonicalize_body(body))
        size = len(canonical)
        for hasher in {h for h, c, _ in parts if c is canonicalization}:
            mine = [p for p in parts if p[0] is hasher and p[1] is canonicalization]
            # dkimpy hashes body[:l]: an l= beyond the body covers all of it.
            ends = {p: size if p[2] is None else min(p[2], size) for p in mine}
            running, done = hasher(), 0
            digests: dict[int, bytes] = {}
            for end in sorted(set(ends.values())):
                running.update(canonical[done:end])
                done = end
                digests[end] = running.copy().digest()
            found.update({p: (digests[ends[p]], size) for p in mine})
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
    if domain_name(f"{selector}._domainkey.{domain}") is None:
        # No key can be published there: not a lookup that failed for now (a temperror
        # of a From domain's signature would stay DMARC's failure).
        return DkimResult(domain, selector, "permerror", "unusable signature: s= and d= "
                                                         "make no domain name")
    try:
        dkim.validate_signature_fields(tags)
    except Exception as exc:  # noqa: BLE001 - ValidationError, or worse on hostile input
        return DkimResult(domain, selector, "permerror", f"unusable signature: {exc}"[:200])
    if tags[b"a"] in WITHDRAWN_ALGORITHMS:
        # RFC 8301 3.1: verifiers MUST NOT consider rsa-sha1 signatures valid (SHA-1
        # collisions can be made); dkimpy still verifies them.
        return DkimResult(domain, selector, "permerror",
                          f"{tags[b'a'].decode()} signatures are not valid (RFC 8301)")
    # dkimpy adds one "from" of its own when h= names it.
    entries = tags[b"h"].count(b":") + 2
    if entries > MAX_SIGNED_FIELDS + 1:
        return DkimResult(domain, selector, "permerror",
                          f"signature lists {entries - 1} header fields in h= "
                          f"(at most {MAX_SIGNED_FIELDS} are verified)")
    if entries * fields > MAX_SELECTION_WORK:
        return DkimResult(domain, selector, "permerror",
                          f"too many header fields ({fields}) to verify this signature")
    # What dkimpy would refuse only after hashing the body: a c= it does not know, an
    # empty l= (it takes any run of digits) and a bh= that does not decode.
    if tags.get(b"l") == b"":
        return DkimResult(domain, selector, "permerror", "unusable signature: empty l=")
    try:
        canonicalization = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError:
        return DkimResult(domain, selector, "permerror", "unusable signature: invalid c=")
    try:
        body_hash = base64.b64decode(_SPACE.sub(b"", tags[b"bh"]))
    except binascii.Error:
        return DkimResult(domain, selector, "permerror", "unusable signature: bh= is not "
                                                         "base64")
    length = int(tags[b"l"]) if b"l" in tags else None
    body = (dkim.HASH_ALGORITHMS[tags[b"a"]], canonicalization.body_algorithm, length)
    return _Signature(index, domain, selector, length, body, body_hash,
                      tags[b"a"].decode("ascii").rpartition("-")[2].lower())


async def verify(resolver: Resolver, content: bytes,
                 from_domains: Sequence[str] = ()) -> list[DkimResult]:
    """Verify the DKIM signatures (up to ``MAX_SIGNATURES`` whose body hash matches and
    whose key is found, those of ``from_domains``' organisations first); [] when there
    is none."""
    header_block = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if b"dkim-signature" not in header_block.lower():
        return []       # most mail: no thread, no parsing
    candidates, rejected, mismatched = await asyncio.to_thread(_signatures, content,
                                                               from_domains)
    # The keys of signatures whose body hash failed are asked alongside (so no later),
    # besides MAX_KEY_LOOKUPS (so they cannot crowd out the candidates' lookups).
    (chosen, answers, failed), testing = await asyncio.gather(
        _with_keys(resolver, candidates), _keys(resolver, mismatched))
    verified = await asyncio.to_thread(_verify_all, content, chosen, answers)
    keys = {**testing, **answers}
    # Reported in the message's order: the verified ones, and the first unusable or
    # failed ones (a note about the message itself first), a key lookup's temperror
    # among them whatever its place: DMARC and the score must know the failure may pass.
    found = [(s.index, r) for s, r in zip(chosen, verified, strict=True)]
    found += sorted(rejected + failed, key=lambda pair: (pair[1].result != "temperror",
                                                         pair[0]))[:MAX_UNUSABLE_REPORTED]
    return [_judged_in_testing(result, keys.get(_key_name(result)))
            for _, result in sorted(found, key=lambda pair: pair[0])]


def _judged_in_testing(result: DkimResult, answer: DnsAnswer | None) -> DkimResult:
    """RFC 6376 3.6.1: a signature that fails under a key in testing mode (t=y) is to
    be taken as unsigned mail, not as a broken signature, whatever made it fail (a body
    hash, the RSA check, an unusable key)."""
    if result.result not in ("fail", "permerror") or not _testing(answer):
        return result
    return replace(result, result="neutral",
                   detail=f"{result.detail}, but the key is in testing mode (t=y)")


def _verify_all(content: bytes, signatures: list[_Signature],
                answers: dict[str, DnsAnswer]) -> list[DkimResult]:
    def key_record(name: bytes, timeout: float = 5) -> bytes | None:
        record = _key_record(answers.get(name.decode("ascii", "replace").rstrip(".").lower()))
        return None if record is None else _record_for_dkimpy(record).encode()

    results: list[DkimResult] = []
    if not signatures:
        return results
    # One split for them all (_signatures split the same content without error).
    verifier = _Verifier(content, logger=_QUIET, minkey=MIN_KEY_BITS)
    for signature in signatures:
        domain, selector = signature.domain, signature.selector
        try:
            ok = verifier.verify(idx=signature.index, dnsfunc=key_record)
        except dkim.DKIMException as exc:
            results.append(DkimResult(domain, selector, "permerror", str(exc)[:200]))
            continue
        except Exception as exc:  # noqa: BLE001 - dkimpy on hostile input
            results.append(DkimResult(domain, selector, "permerror",
                                      f"unverifiable: {type(exc).__name__}"))
            continue
        if ok and signature.unsigned:
            # RFC 6376 8.2: what follows l= is anyone's; such a signature vouches for
            # nothing the reader can tell apart (RFC 8601's "policy" result).
            results.append(DkimResult(domain, selector, "policy",
                                      f"{signature.unsigned} bytes of the body are not "
                                      f"covered by the signature (l={signature.length})"))
            continue
        results.append(DkimResult(domain, selector, "pass" if ok else "fail",
                                  "" if ok else "signature does not verify"))
    return results


def _key_record(answer: DnsAnswer | None) -> str | None:
    """The TXT record holding a key among those at a key name (there may be others)."""
    if answer is None:
        return None
    return next((record for record in answer.records if _holds_key(record)), None)


def _holds_key(record: str) -> bool:
    """Whether a TXT record has a p= tag (blanks allowed around '=', RFC 6376 3.2)."""
    return _KEY_TAG.search(record) is not None


def _record_for_dkimpy(record: str) -> str:
    """The key record as dkimpy can read it.  dkimpy compares whole tag values exactly:
    a service list naming mail (``s=email:tlsrpt``, RFC 6376 3.6.1: s= is a
    colon-separated list of ABNF strings, so ``s=Email`` too, as OpenDKIM reads it)
    would be no key at all, so it is written ``s=email``; and the key type is
    lower-cased (``k=RSA`` is published, and read as rsa by other verifiers), so it is
    not an unknown algorithm."""
    tags = record.split(";")
    for position, tag in enumerate(tags):
        name, equals, value = tag.partition("=")
        name = name.strip()
        if equals and name == "s" and \
                {"email", "*"} & {service.strip().lower() for service in value.split(":")}:
            tags[position] = " s=email"
        elif equals and name == "k":
            tags[position] = f" k={value.strip().lower()}"
    return ";".join(tags)


def _testing(answer: DnsAnswer | None) -> bool:
    """Whether the key record at a key name has t= flags including y (the signer is
    testing DKIM)."""
    return "y" in (_key_list(_key_record(answer), b"t") or ())


def _key_list(record: str | None, tag: bytes) -> list[str] | None:
    """The entries of a key record's colon-separated tag (t=, h=), lower-cased: RFC 6376
    3.6.1 writes their values as ABNF strings, which are case-insensitive (OpenDKIM
    compares them with strcasecmp); None when the record has no such tag or does not
    parse."""
    try:
        value = parse_tag_value((record or "").encode("ascii", "replace")).get(tag)
    except Exception:  # noqa: BLE001 - dkimpy's parser on hostile input
        return None
    if value is None:
        return None
    return [entry.strip().lower() for entry in value.decode("ascii", "replace").split(":")]

