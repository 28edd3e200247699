"""An inventory of every file a message carries, archives opened, within hard bounds.

Both the attachment check (names and real types, also inside archives) and the virus check
(the contents of password-protected archives opened with a password from the message) work
from one ``Inventory``, built once per message.

Hostile input is the normal case here: zip bombs (42.zip: five levels of nesting, 4.5 PB
when unpacked; overlapping-member bombs; members that lie about their size), archives
nested hundreds deep, millions of members, names with control characters.  So nothing is
trusted and everything is bounded: nesting depth, member count, the compression ratio a
member claims, the total size members claim, and the bytes actually decompressed (which
is what bounds memory and time, whatever the headers say).  Crossing a bound stops the
inspection and is itself the finding: a message that needs more than this to be looked at
is not mail a person sent.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import enum
import functools
import io
import logging
import lzma
import re
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import rarfile

from portcullis.antivirus import (
    arj,
    binhex,
    cabinet,
    cpio,
    filetypes,
    inflate64,
    iso9660,
    lzh,
    markup,
    office,
    officecrypt,
    onenote,
    passwords,
    pdf,
    qrcodes,
    rar3,
    rar5,
    rarcrypt,
    rtf,
    sevenzip,
    szdd,
    tnef,
    udf,
    uuencode,
)
from portcullis.antivirus.readers import (
    Allowance,
    OverBudget,
    Stored,
    TooLarge,
    Unreadable,
    Unsupported,
)
from portcullis.mime import decode_words, parse_message, payload, walk

if TYPE_CHECKING:
    from portcullis.checks.base import Context

log = logging.getLogger(__name__)
T = TypeVar("T")

HEAD = 64 * 1024              # bytes read of each member to tell its type
AES_COMPRESSION = 99          # WinZip AES marks members with this compression method
DEFLATE64 = 9                 # PKWARE's enhanced deflate, not in the standard library
XZ_MEMORY = 80 * 1024 * 1024  # an xz stream needing more (xz -9 needs 65 MiB) is not opened
MAX_DOCUMENT_PASSWORDS = 12   # candidates tried on an encrypted Office document
MAX_GZIP_HEADER = 64 * 1024     # a gzip header's extra field and name, at most
STREAM_CHUNK = 64 * 1024           # compressed bytes fed to a decompressor at a time
MAX_COMPRESSED_STREAMS = 10_000   # gzip/bzip2/xz streams one behind another: more is a bomb
MAX_CONCATENATED_ZIPS = 8     # zips one behind another in one file: more is a bomb
RAR3_PROBE = 4096             # bytes a RAR 3 member must decode to with a password tried


@dataclass(frozen=True)
class Limits:
    max_depth: int = 4                      # archives inside archives inside ... the message
    max_files: int = 5000                   # files looked at in one message, all levels
    max_ratio: int = 100                    # claimed uncompressed/compressed size of a member
    ratio_floor: int = 8 * 1024 * 1024      # ... counted only for members at least this big
    max_claimed: int = 1024 * 1024 * 1024   # total uncompressed size members claim
    max_unpacked: int = 64 * 1024 * 1024    # bytes actually decompressed, all levels
    max_member: int = 32 * 1024 * 1024      # a nested archive or decrypted file read whole
    max_decrypted: int = 4 * 1024 * 1024    # bytes decrypted (pure-Python ZipCrypto is slow)
    # Bytes expanded by the decoders written in Python (SZDD, ARJ, LHA, RAR 5, RAR 3): 2-5 MB/s.
    max_slow_unpacked: int = 8 * 1024 * 1024
    # ... of which PPMd's (RAR 3's text blocks, 7z -m0=PPMd), at 0.07-0.12 MB/s: 4-7 s.
    max_ppmd_unpacked: int = 512 * 1024
    max_encrypted_tries: int = 32           # encrypted members a password search is run for
    # Passwords tried through a costly key derivation (Office, PDF, RAR 5, 7z: 0.01-0.15 s
    # each): a message of many encrypted archives cannot cost more than a few seconds.
    max_key_derivations: int = 48
    max_qr_images: int = 8                  # pictures looked at for QR codes (a few ms each)
    max_qr_seconds: float = 4.0             # time spent on them (past it, none more)
    # Bytes of files opened here handed to clamd, in one stream: under its StreamMaxLength
    # (64M on the appliance), or the scan would fail and the message be deferred for ever.
    max_for_clamd: int = 32 * 1024 * 1024


DEFAULT_LIMITS = Limits()
# Content-Disposition / Content-Type headers of a part read: this many first and last
# (mail clients take the first of repeated fields, or the last).
MAX_NAME_HEADERS = 4
MAX_NAME_PARAMS = 64      # (file)name parameters of one such header read
# What a file compressed whole is called unpacked, by its name's last extension: gzip -d
# drops .gz (and the others theirs), and a browser reads x.svgz as the SVG image x.svg.
_UNPACKED_SUFFIXES = {"gz": "", "bz2": "", "xz": "", "lzma": "", "svgz": ".svg"}


class Problem(enum.StrEnum):
    BOMB = "bomb"                 # an archive built to exhaust whoever unpacks it
    LOCKED = "locked"             # encrypted, and no password from the message opens it
    MACROS = "macros"             # an Office document carrying macros (VBA, Excel 4.0)
    ACTIVE = "active"             # content that acts when opened: a login page, HTML
                                  # smuggling, a scripted SVG, a PDF that launches or
                                  # runs JavaScript, an Equation Editor object
    UNREADABLE = "unreadable"     # damaged, or a format/method we cannot open
    # Seen by no virus scanner: clamd cannot read it (RAR: no unrar here) and it was not
    # unpacked here either (beyond the budgets, a method not read here).  As blind as
    # an encrypted file, and judged as one.
    UNSCANNED = "unscanned"


@dataclass(frozen=True)
class File:
    """One file found in the message: an attachment, or a member of an archive in one."""

    path: tuple[str, ...]         # names from the attachment down to this member
    names: tuple[str, ...]        # every name this file is known by (MIME parts may have two)
    detected: str | None          # canonical type from its bytes (filetypes.detect)
    size: int
    encrypted: bool = False       # was encrypted in its archive
    # Its bytes were seen (False: encrypted with no password, packed by a
    # 7z/cabinet/ARJ/LZH/RAR method not decoded here, damaged, or beyond the
    # unpacking budget in a solid archive: the name is all there is).
    opened: bool = True

    @property
    def shown(self) -> str:
        return " > ".join(filetypes.shown(p) for p in self.path)


@dataclass(frozen=True)
class Finding:
    problem: Problem
    path: tuple[str, ...]
    detail: str

    @property
    def shown(self) -> str:
        return " > ".join(filetypes.shown(p) for p in self.path)


@dataclass
class Inventory:
    files: list[File] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Contents of encrypted members opened with a password from the message: the virus
    # scanner cannot open them itself, so they are handed to it one by one.
    decrypted: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    # Files opened here from formats whose reader in clamd (1.4) is easily missed, handed
    # to it the same way: SZDD written by compress -r (refused, see szdd.clamav_expands),
    # BinHex (recognised only when its header line starts the file), objects in RTF (lost
    # when a line break ends \objdata, or in obfuscated hex), files uuencoded into text
    # (missed in a base64 body, and as ``begin-base64``), 7z members packed by Deflate or
    # BZip2 (its 7z reader has the LZMA SDK's coders only), zip members packed by LZMA,
    # RAR members stored or packed by RAR 5 or RAR 3 (no unrar), stored LHA members, files on
    # UDF-only images.
    expanded: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    encrypted_zips: int = 0       # zip archives holding at least one encrypted member
    # Files decrypted here that could not be handed to clamd (max_for_clamd): clamd's
    # "encrypted" alert for the message then stands.
    unscanned_decrypted: int = 0
    unpacked: int = 0             # bytes decompressed while looking
    # Web addresses inside attachments: a PDF's links, what QR codes in pictures say.
    links: list[str] = field(default_factory=list)

    def problems(self, kind: Problem) -> list[Finding]:
        return [f for f in self.findings if f.problem is kind]


class _Stop(Exception):
    """A bound was crossed: the finding is recorded, the inspection ends."""


def inventory(message: Message, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Every file in ``message`` and inside its archives, bounded by ``limits``; never
    raises for anything the message contains."""
    return _Inspector(message, limits).run()


@dataclass
class _PasswordSearch:
    """The password that opened one archive's members (RAR 5, 7z), and whether the
    message was searched for it (the members of one archive share a password as a
    rule: it is searched for once)."""

    password: str | None = None
    searched: bool = False
    candidates: list[str] | None = None     # what the search tried (None: none was left)


class _Inspector:
    def __init__(self, message: Message, limits: Limits) -> None:
        self.message = message
        self.limits = limits
        self.result = Inventory()
        self.claimed = 0
        self.decrypted_bytes = 0
        self.slow_unpacked = 0
        self.ppmd_allowance = Allowance(limits.max_ppmd_unpacked)
        self.for_clamd_bytes = 0
        self.encrypted_tries = 0
        self.key_derivations = 0
        self.qr_images = 0
        self.qr_seconds = 0.0
        self._passwords: list[str] | None = None

    @property
    def passwords(self) -> list[str]:
        if self._passwords is None:    # only messages with encrypted archives pay for this
            self._passwords = passwords.candidates(self.message)
        return self._passwords

    def run(self) -> Inventory:
        with contextlib.suppress(_Stop):           # a bound was crossed: noted, done
            self._parts(self.message, (), 0)
        return self.result

    # -- MIME parts -------------------------------------------------------------------------

    def _parts(self, message: Message, path: tuple[str, ...], depth: int) -> None:
        """The files of a message: the one being checked, or one attached to it."""
        cut: list[str] = []
        for _, part in walk(message, cut):
            if not part.is_multipart():
                self._part(part, path, depth)
            elif _named_message(part):
                # A message attached under a file name: walked into as a message above,
                # and judged by that name too, which mail clients save it under.
                names = tuple(_part_names(part))
                self._count((*path, names[0]))
                self.result.files.append(File((*path, names[0]), names, None, 0,
                                              opened=False))
                self._web_archive((*path, names[0]), names, part)
        if cut:   # parts no reader was shown: no mail client's message looks like this
            self._stop(Problem.BOMB, path or ("the message",), cut[0])

    def _part(self, part: Message, path: tuple[str, ...], depth: int) -> None:
        names = _part_names(part)
        text = _uuencoded_text(part)         # files pasted into text, named or not
        if text is not None:
            self._stored(path, "uuencoded", lambda left: uuencode.files(
                text, max_files=left, limit=self.limits.max_member), depth,
                for_clamd=True)
        if not _is_file(part, names):        # the body people read, not an attachment
            return
        data = payload(part)
        if data is None:
            return
        # No "/" in the label: shown as a path's last part, "octet-stream)" was left.
        label = names[0] if names else \
            f"(unnamed {part.get_content_type().replace('/', ' ')} part)"
        self._file((*path, label), tuple(names), data, depth)

    def _eml(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """A message attached as a file (an .eml, sent as application/octet-stream so
        that nothing treats it as a message): its attachments count as this one's."""
        self._parts(parse_message(data), path, depth)

    # -- files and archives ---------------------------------------------------------------

    def _file(self, path: tuple[str, ...], names: tuple[str, ...], data: bytes, depth: int,
              encrypted: bool = False, member_names: list[str] | None = None) -> None:
        self._count(path)
        detected = filetypes.detect(data[:HEAD], member_names)
        if detected in ("zip", "jar") and member_names is None:
            member_names = _zip_names(data)
            detected = filetypes.detect(data[:HEAD], member_names)
        if detected is None and any(filetypes.extensions(n)[-1:] == ["eml"] for n in names):
            detected = "eml"    # mail programs open it as a message, whatever its first lines
        self.result.files.append(File(path, names, detected, len(data), encrypted))
        if detected == "ole":
            self._ole(path, data, depth)
        if detected in filetypes.IMAGE_TYPES:
            self._qr_codes(data)
        page = data[:markup.MAX_PAGE]
        # Whatever its first bytes look like (a few header lines, "%PDF-"): a browser
        # opens a file named as a page, shows them as text and the form after them.
        active = markup.active_content(names, page) if markup.is_markup(names, page) else None
        if active:
            self._note(Problem.ACTIVE, path, active)
        self._web_archive(path, names, data)
        # 7-Zip and WinRAR find a zip behind other bytes (a picture, a self-extractor's
        # stub) and open it: so is it here.
        behind = detected not in filetypes.ARCHIVE_TYPES and _zip_behind(data)
        if (detected in filetypes.ARCHIVE_TYPES or behind) and depth >= self.limits.max_depth:
            self._stop(Problem.BOMB, path, f"archives nested more than "
                                           f"{self.limits.max_depth} deep")
        if behind:
            self._zip(path, data, depth + 1)
        elif detected in filetypes.ARCHIVE_TYPES:
            opener: dict[str, Callable[[tuple[str, ...], bytes, int], None]] = {
                "zip": self._zip, "jar": self._zip, "gz": self._compressed,
                "bz2": self._compressed, "xz": self._compressed, "lzma": self._compressed,
                "tar": self._tar,
                "rar": self._rar, "7z": self._7z, "iso": self._iso, "cab": self._cab,
                "pdf": self._pdf, "tnef": self._tnef, "rtf": self._rtf, "eml": self._eml,
                "arj": self._arj, "lzh": self._lzh, "cpio": self._cpio, "szdd": self._szdd,
                "binhex": self._binhex, "one": self._onenote}
            opener[detected](path, data, depth + 1)

    def _web_archive(self, path: tuple[str, ...], names: tuple[str, ...],
                     archive: bytes | Message) -> None:
        """A file named as a web archive (MHTML; ``archive``: its bytes, or the message
        part it was sent as) is judged by the pages it holds, which a browser shows."""
        if not markup.is_web_archive(names):
            return
        message = parse_message(archive) if isinstance(archive, bytes) else archive
        active = markup.archived_active_content(message)
        if active:
            self._note(Problem.ACTIVE, path, active)

    def _zip(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """A zip, and the zips before it in the same file: zipfile (as WinRAR) reads the
        last of zips put one behind another, 7-Zip the first."""
        for _ in range(MAX_CONCATENATED_ZIPS):
            start = self._one_zip(path, data, depth)
            if not 0 < start < len(data) or not _zip_behind(data[:start]):
                return
            data = data[:start]
        self._stop(Problem.BOMB, path, f"more than {MAX_CONCATENATED_ZIPS} zips one behind "
                                       "another")

    def _one_zip(self, path: tuple[str, ...], data: bytes, depth: int) -> int:
        """The members of the zip ``data`` ends with; where it starts (0: damaged)."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
            if any(m.compress_type == AES_COMPRESSION for m in members):
                archive = _aes_archive(data)
                members = archive.infolist()
        except Exception as exc:  # noqa: BLE001 - any damage: unreadable, not a crash
            self._note(Problem.UNREADABLE, path, f"damaged zip ({type(exc).__name__})")
            return 0
        if len(members) + len(self.result.files) > self.limits.max_files:
            self._stop(Problem.BOMB, path, f"{len(members)} members")
        self._claim(path, sum(m.file_size for m in members))
        if any(m.flag_bits & 0x1 for m in members):
            self.result.encrypted_zips += 1
        if any(office.vba_part(m.filename) for m in members):
            self._note(Problem.MACROS, path, "a VBA project (vbaProject.bin)")
        password: str | None = None
        searched: bool | None = None      # whether a search was run (None: not yet asked)
        for member in members:
            if member.filename.endswith("/"):     # a directory (is_dir() fails on "")
                continue
            member_path = (*path, member.filename or "(unnamed)")
            if member.compress_size and member.file_size >= self.limits.ratio_floor and \
                    member.file_size / member.compress_size > self.limits.max_ratio:
                self._stop(Problem.BOMB, member_path,
                           f"compression ratio {member.file_size // member.compress_size}:1")
            encrypted = bool(member.flag_bits & 0x1)
            if encrypted and (password is None or not _opens(archive, member, password)):
                # Members of one archive share a password as a rule: search once.
                password = None
                if searched is None:
                    searched = self._may_search() and \
                        self.decrypted_bytes < self.limits.max_decrypted
                    if searched:
                        password = self._search_password(archive, member)
            names = _zip_member_names(member, data)
            if encrypted and password is None:
                self._locked(member_path, member.filename, member.file_size,
                             f"encrypted, {_shut(bool(searched))}", names)
                continue
            if member.compress_type == DEFLATE64 and not encrypted:
                self._deflate64_member(data, member, member_path, names, depth)
                continue
            # clamd's zip reader has no LZMA (method 14): such members go to it whole.
            for_clamd = member.compress_type == zipfile.ZIP_LZMA
            content_types = office.content_types_part(member.filename)
            try:
                content = self._read(archive, member, password if encrypted else None,
                                     member_path, names, whole=for_clamd or content_types)
            except _Stop:
                raise
            except _TooBig:
                self._locked(member_path, member.filename, member.file_size,
                             "encrypted, too large to decrypt here", names)
                continue
            except Exception as exc:  # noqa: BLE001 - damaged member, unknown method
                # (PKWARE's older methods are not in the standard library; a local
                # header naming it otherwise than the directory.)  Its names are still
                # judged.
                self._note(Problem.UNREADABLE, member_path,
                           f"cannot unpack ({type(exc).__name__})")
                self._unopened(member_path, member.filename, member.file_size, names=names)
                continue
            if encrypted:
                self._for_clamd(self.result.decrypted, member_path, content)
            elif for_clamd:
                self._for_clamd(self.result.expanded, member_path, content)
            if content_types and office.declares_macro_sheet(content):
                self._note(Problem.MACROS, path, "an Excel 4.0 macro sheet")
            self._file(member_path, names, content, depth, encrypted)
        return min((m.header_offset for m in members), default=0)

    def _for_clamd(self, files: list[tuple[tuple[str, ...], bytes]], path: tuple[str, ...],
                   data: bytes) -> bool:
        """Hand ``data`` to clamd (``files``: the decrypted or the expanded list), while the
        message's max_for_clamd allows (whether it did); past it, the inventory's own
        judgement stands.

        Expanded files may use half of it, so a filler compressed next to an encrypted
        archive cannot take the room its decrypted content needs; decrypted content that
        still does not fit is reported as locked, expanded content as unscanned (clamd
        cannot open either where it is: that is why it is handed to it).
        """
        decrypted = files is self.result.decrypted
        limit = self.limits.max_for_clamd if decrypted else self.limits.max_for_clamd // 2
        if self.for_clamd_bytes + len(data) > limit:
            log.info("%s not handed to clamd: more than %d bytes opened for it already",
                     " > ".join(path)[:200], limit)
            if decrypted:
                self.result.unscanned_decrypted += 1
                self._note(Problem.LOCKED, path,
                           "decrypted, but too large to hand to the virus scanner")
            else:
                self._note(Problem.UNSCANNED, path, "too large to hand to the virus scanner, "
                                                    "which cannot open it where it is")
            return False
        self.for_clamd_bytes += len(data)
        files.append((path, data))
        return True

    def _locked(self, path: tuple[str, ...], name: str, size: int, why: str,
                names: tuple[str, ...] = ()) -> None:
        self._unopened(path, name, size, encrypted=True, names=names)
        self._note(Problem.LOCKED, path, why)

    def _unopened(self, path: tuple[str, ...], name: str, size: int,
                  encrypted: bool = False, names: tuple[str, ...] = ()) -> None:
        """A member known by its name (or ``names``) alone: its bytes are not looked at."""
        self._count(path)
        self.result.files.append(File(path, names or (name,), None, size,
                                      encrypted=encrypted, opened=False))

    def _qr_codes(self, picture: bytes) -> None:
        """What QR codes in ``picture`` say joins the links (max_qr_images and
        max_qr_seconds a message)."""
        if self.qr_images >= self.limits.max_qr_images or \
                self.qr_seconds >= self.limits.max_qr_seconds:
            return
        self.qr_images += 1
        started = time.monotonic()
        codes = qrcodes.scanner().codes(picture)
        self.qr_seconds += time.monotonic() - started
        self.result.links.extend(codes[:max(pdf.MAX_LINKS - len(self.result.links), 0)])

    def _deflate64_member(self, data: bytes, member: zipfile.ZipInfo,
                          path: tuple[str, ...], names: tuple[str, ...], depth: int) -> None:
        """A member packed by Deflate64 (method 9, what Windows writes for big files),
        which the standard library does not read: decoded by ``inflate64`` (clamd reads
        it itself)."""
        at = member.header_offset
        local = data[at:at + 30]
        if len(local) < 30 or not local.startswith(b"PK\x03\x04"):
            self._note(Problem.UNREADABLE, path, "damaged zip member (no local header)")
            self._unopened(path, member.filename, member.file_size, names=names)
            return
        start = at + 30 + int.from_bytes(local[26:28], "little") + \
            int.from_bytes(local[28:30], "little")
        packed = data[start:start + member.compress_size]
        content = self._slowly_expanded(path, inflate64.unpacker(packed, member.file_size,
                                                                 member.CRC), names=names)
        if content is None:
            self._unopened(path, member.filename, member.file_size, names=names)
            return
        self._file(path, names, content, depth)

    def _read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, password: str | None,
              path: tuple[str, ...], names: tuple[str, ...], *, whole: bool = False) -> bytes:
        """The member's bytes: what ``_first_looked_at`` says, unless it is an archive, was
        decrypted or ``whole`` is asked for (then whole, within bounds)."""
        pwd = password.encode("utf-8") if password is not None else None
        with archive.open(member, pwd=pwd) as stream:
            head = stream.read(HEAD)
            first = _first_looked_at(names, head)
            head += stream.read(first - len(head)) if len(head) == HEAD else b""
            self._unpacked(len(head), path)
            container = filetypes.detect(head[:HEAD]) in filetypes.CONTAINER_TYPES
            if not (whole or container or password is not None) or len(head) < first:
                if password is not None:
                    self.decrypted_bytes += len(head)
                return head
            limit = self.limits.max_member - len(head)
            if password is not None:
                limit = min(limit, self.limits.max_decrypted - self.decrypted_bytes - len(head))
            # Never read past what the budget allows, whatever the member claims.
            budget = self.limits.max_unpacked - self.result.unpacked
            rest = stream.read(max(min(limit, budget), 0) + 1)
            self._unpacked(len(rest), path)
            if len(rest) > limit:
                if password is not None:
                    raise _TooBig   # left to the encrypted-archive setting
                if container:
                    self._stop(Problem.BOMB, path, "nested archive larger than "
                                                   f"{self.limits.max_member // 2**20} MiB "
                                                   "unpacked")
                rest = rest[:limit]           # a big file: its first max_member bytes
            if password is not None:
                self.decrypted_bytes += len(head) + len(rest)
            return head + rest

    def _document_passwords(self) -> list[str] | None:
        """The passwords to try where each try costs a key derivation (an Office
        document's spin count, 0.1 s as Office writes it; a PDF's, a RAR 5 or 7z
        archive's): one search of the message's max_encrypted_tries, the passwords most
        likely first (those next to "password"), at most MAX_DOCUMENT_PASSWORDS of them and
        what is left of max_key_derivations; None when either is used up."""
        left = self.limits.max_key_derivations - self.key_derivations
        if not self._may_search() or left <= 0:
            return None
        self.encrypted_tries += 1
        candidates = self.passwords[:min(MAX_DOCUMENT_PASSWORDS, left)]
        self.key_derivations += len(candidates)
        return candidates

    def _derivation(self) -> bool:
        """Whether one more key derivation is left in the message's max_key_derivations
        (then spent): a password found once, tried on members with keys of their own."""
        if self.key_derivations >= self.limits.max_key_derivations:
            return False
        self.key_derivations += 1
        return True

    def _may_search(self) -> bool:
        """Whether the message has a password search left (max_encrypted_tries)."""
        return self.encrypted_tries < self.limits.max_encrypted_tries

    def _search_password(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> str | None:
        """A password from the message that opens this member, or None."""
        self.encrypted_tries += 1
        for candidate in self.passwords:
            if _opens(archive, member, candidate):
                return candidate
        return None

    def _compressed(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """One file compressed whole: gzip, bzip2, xz or the old .lzma (which clamd does
        not unpack: what it holds goes to clamd)."""
        kind = filetypes.detect(data[:HEAD])
        limit = self.limits.max_member
        try:
            content = _streams(kind, data, limit)
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
            self._note(Problem.UNREADABLE, path, f"damaged {kind} ({exc})")
            return
        except _TooManyStreams:
            self._stop(Problem.BOMB, path, f"more than {MAX_COMPRESSED_STREAMS} compressed "
                                           "streams")
        self._unpacked(len(content), path)
        if len(content) > limit:
            self._stop(Problem.BOMB, path, f"unpacks to more than {limit // 2**20} MiB")
        stem, dot, suffix = path[-1].rpartition(".")
        unpacked = _UNPACKED_SUFFIXES.get(suffix.lower()) if dot else None
        inner = stem + unpacked if unpacked is not None else f"{path[-1]} (unpacked)"
        if kind == "lzma":
            self._for_clamd(self.result.expanded, (*path, inner), content)
        # gzip -N, 7-Zip and bsdtar give the content the name its header keeps.
        kept = _gzip_name(data[:MAX_GZIP_HEADER]) if kind == "gz" else None
        self._file((*path, inner), (inner, kept) if kept and kept != inner else (inner,),
                   content, depth)

    def _tar(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        try:
            # Past a damaged header, as GNU tar and bsdtar go on to the next one (tarfile
            # would take it for the end, and what follows would pass unseen).
            archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:",  # noqa: SIM115 - in memory
                                   ignore_zeros=True)
            for member in archive:
                member_path = (*path, member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    # A link: extracted under its name, with another member's bytes.
                    self._unopened(member_path, member.name, 0)
                    continue
                self._claim(member_path, member.size)
                stream = archive.extractfile(member)
                head = self._looked_at(member_path, functools.partial(_start, stream)) \
                    if stream is not None else b""
                self._unpacked(len(head), member_path)
                self._file(member_path, (member.name,), head, depth)
        except _Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged tar
            self._note(Problem.UNREADABLE, path, f"damaged tar ({type(exc).__name__})")

    def _rar(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        # rarfile reads the headers itself, and a stored member's bytes; a member packed by
        # RAR 5's or RAR 3's compression is decoded here (rar5, rar3: pure Python; RAR 3's
        # PPMd blocks by ppmd7).  RAR 5's encryption is opened with a password from the
        # message (rarcrypt).
        try:
            archive = rarfile.RarFile(io.BytesIO(data), errors="strict")
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members and archive.needs_password():
                unlocked = self._rar_names_unlocked(path, data)
                if unlocked is None:
                    return
                archive, members = unlocked
        except Exception as exc:  # noqa: BLE001 - damaged, a later volume, not RAR at all
            self._note(Problem.UNREADABLE, path, f"damaged rar ({type(exc).__name__})")
            return
        # The decoder state a solid archive carries on, one per format.
        streams = {"rar5": rar5.Stream(), "rar3": rar3.Stream(self.ppmd_allowance)}
        search, keyring = _PasswordSearch(), rarcrypt.Keyring()
        for member in members:
            name = member.filename or "(unnamed)"
            member_path = (*path, name)
            names = _rar_member_names(member, name)
            self._claim(member_path, member.file_size or 0)
            decoder = _rar_decoder(member)
            key = None
            if member.needs_password() and not member.file_size:
                self._file(member_path, names, b"", depth, True)   # nothing to hide
                continue
            if member.needs_password():
                key = self._rar_key(data, member, member_path, names, search, keyring)
                if key is None:
                    continue
            if member.file_redir is not None:
                # Links and file copies are not followed: rarfile would open their target,
                # through an external tool when it is packed.
                self._unopened(member_path, name, member.file_size or 0, names=names)
            elif member.compress_type == rarfile.RAR_M0 and key is None:
                self._rar_stored(archive, member, member_path, names, depth)
            elif member.compress_type == rarfile.RAR_M0 or decoder is not None:
                self._rar_packed(streams[decoder] if decoder else None, data, member,
                                 member_path, names, depth, key)
            else:
                self._unopened(member_path, name, member.file_size or 0, key is not None,
                               names)
                self._unscanned(member_path, "reads no RAR")

    def _rar_names_unlocked(self, path: tuple[str, ...], data: bytes,
                            ) -> tuple[rarfile.RarFile, list[rarfile.RarInfo]] | None:
        """A RAR whose names are encrypted too (rar -hp), opened with a password from the
        message (RAR 5's check value, or RAR 3's header CRCs, tell the one); None, noted
        as locked, when none opens it."""
        try:
            lock = rarcrypt.names_lock(data)
        except (Unsupported, Unreadable) as exc:
            self._note(Problem.LOCKED, path, f"file names encrypted, not opened: {exc}")
            return None

        def opened(candidate: str) -> tuple[rarfile.RarFile, list[rarfile.RarInfo]] | None:
            if lock.checked and rarcrypt.key(lock, candidate) is None:
                return None
            try:
                archive = rarfile.RarFile(io.BytesIO(data), errors="strict")
                archive.setpassword(candidate)
                members = [m for m in archive.infolist() if not m.is_dir()]
            except rarfile.Error:       # RAR 3: a wrong password leaves the headers garbage
                return None
            return (archive, members) if members else None

        return self._names_unlocked(path, opened)

    def _names_unlocked(self, path: tuple[str, ...], opened: Callable[[str], T | None],
                        ) -> T | None:
        """An archive whose names are encrypted, as ``opened(password)`` gives it for the
        first password from the message that opens it; None, noted as locked, when none
        does."""
        candidates = self._document_passwords()
        for candidate in candidates or ():
            found = opened(candidate)
            if found is not None:
                return found
        self._note(Problem.LOCKED, path, f"file names encrypted, {_shut(candidates is not None)}")
        return None

    def _rar_key(self, data: bytes, member: rarfile.RarInfo, path: tuple[str, ...],
                 names: tuple[str, ...], search: _PasswordSearch,
                 keyring: rarcrypt.Keyring) -> rarcrypt.Key | None:
        """The key that opens an encrypted member (known by ``names``), from a password
        of the message; None, noted as locked, when there is none."""
        name, size = path[-1], member.file_size or 0
        try:
            lock = rarcrypt.member_lock(member)
        except Unsupported as exc:
            self._locked(path, name, size, f"encrypted, not opened: {exc}", names)
            return None
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged rar member ({exc})")
            self._locked(path, name, size, "encrypted, not opened", names)
            return None
        def opens(password: str) -> rarcrypt.Key | None:
            key = keyring.key(lock, password)
            # RAR 3 has no check value: a password is tried on the member itself, but for
            # the one that opened the archive's others (the CRC is checked in the end).
            if key is None or lock.checked or password == search.password or \
                    self._rar3_opens(data, member, key):
                return key
            return None

        return self._unlocked(path, size, search, opens,
                              lambda password: not keyring.has(lock, password), names)

    def _rar3_opens(self, data: bytes, member: rarfile.RarInfo, key: rarcrypt.Key) -> bool:
        """Whether ``key`` (from a password with no check value) opens a RAR 3 member: a
        stored one matches its CRC, a packed one's first 4 KiB decode without a fault (no
        wrong key in 1,000 did), a shorter one decodes whole to its CRC (not a solid one:
        its start needs the members before it)."""
        size = member.file_size or 0
        try:
            plain = rarcrypt.decrypt(data[member.data_offset:member.data_offset
                                          + member.compress_size], key)
            if member.compress_type == rarfile.RAR_M0:
                return len(plain) >= size and zlib.crc32(plain[:size]) == member.CRC
            if _rar_solid(member):
                return False
            # A member no longer than the probe is decoded whole and its CRC checked: a
            # few bytes of garbage may decode without a fault (one key in 500 for 15).
            whole = size <= RAR3_PROBE
            rar3.Stream(self.ppmd_allowance).unpacker(plain, size, member.CRC if whole else None)(
                min(size, RAR3_PROBE))
        except (Unreadable, Unsupported, OverBudget):
            return False
        return True

    def _unlocked(self, path: tuple[str, ...], size: int, search: _PasswordSearch,
                  opens: Callable[[str], T | None], derives: Callable[[str], bool],
                  names: tuple[str, ...] = ()) -> T | None:
        """What ``opens(password)`` gives for an encrypted member: with the password that
        opened its archive's other members, else with the first one of the message's
        that opens it (searched for once an archive: members share a password as a
        rule).  ``derives(password)``: whether trying it costs a key derivation not made
        yet (counted in max_key_derivations).  None, noted as locked (under ``names``, else
        the last name of its ``path``), when none opens it."""
        if search.password is not None:
            if derives(search.password) and not self._derivation():
                self._locked(path, path[-1], size, f"encrypted, {_shut(False)}", names)
                return None
            found = opens(search.password)
            if found is not None:
                return found
        if not search.searched:
            search.searched = True
            search.candidates = self._document_passwords()
            for candidate in search.candidates or ():
                found = opens(candidate)
                if found is not None:
                    search.password = candidate
                    return found
        self._locked(path, path[-1], size, f"encrypted, {_shut(search.candidates is not None)}",
                     names)
        return None

    def _rar_stored(self, archive: rarfile.RarFile, member: rarfile.RarInfo,
                    path: tuple[str, ...], names: tuple[str, ...], depth: int) -> None:
        """A stored member, read whole: clamd has no RAR reader here (unrar is not free),
        so its bytes go to it."""
        try:
            with archive.open(member) as stream:
                content = stream.read(self.limits.max_member)
        except Exception as exc:  # noqa: BLE001 - damaged member
            self._note(Problem.UNREADABLE, path, f"damaged rar member ({type(exc).__name__})")
            # Its names still count.
            self._unopened(path, path[-1], member.file_size or 0, names=names)
            return
        self._unpacked(len(content), path)
        self._for_clamd(self.result.expanded, path, content)   # noted when it does not fit
        if len(content) < (member.file_size or 0):            # past max_member
            self._unscanned(path, "reads no RAR")
        self._file(path, names, content, depth)

    def _rar_packed(self, stream: rar5.Stream | rar3.Stream | None, data: bytes,
                    member: rarfile.RarInfo, path: tuple[str, ...], names: tuple[str, ...],
                    depth: int, key: rarcrypt.Key | None = None) -> None:
        """A member packed by RAR 5's or RAR 3's compression (``stream``: that format's
        decoder, carrying a solid archive's state on), or encrypted (``key``) and stored,
        expanded whole within what the message may still have decoded in Python
        (max_slow_unpacked): clamd has no RAR reader here, so its bytes go to it.  A member
        of a solid archive needs the members before it decoded to their end; when they
        were not (or it carries on a PPMd block from the one before), it is known by its
        name."""
        start, size = member.data_offset, member.file_size or 0
        packed = data[start:start + member.compress_size]
        if key is not None:
            if stream is None and size > self.limits.max_member:
                self._locked(path, path[-1], size, "encrypted, too large to decrypt here",
                             names)
                return
            try:
                packed = rarcrypt.decrypt(packed, key)
            except Unreadable as exc:
                self._note(Problem.UNREADABLE, path, f"damaged rar member ({exc})")
                self._unopened(path, path[-1], size, encrypted=True, names=names)
                return
        if stream is None:                  # stored, and decrypted
            content: bytes | None = packed[:size] if len(packed) >= size else None
            if content is not None:
                self._unpacked(len(content), path)
        else:
            first = stream.unpacker(packed, size, None if key else member.CRC,
                                    solid=_rar_solid(member))
            content = self._slowly_expanded(path, first, whole=True, label="rar member")
        if content is not None and key is not None and \
                not rarcrypt.checksum_matches(member, content, key):
            self._note(Problem.UNREADABLE, path, "damaged rar member (checksum)")
            content = None
        if content is None:
            # Its names still count.
            self._unopened(path, path[-1], size, encrypted=key is not None, names=names)
            self._unscanned(path, "reads no RAR")
            return
        # (One not handed is noted as locked, or unscanned, there.)
        self._for_clamd(self.result.decrypted if key else self.result.expanded, path, content)
        if len(content) < size:
            self._unscanned(path, "reads no RAR")
        self._file(path, names, content, depth, key is not None)

    def _unscanned(self, path: tuple[str, ...], scanner: str) -> None:
        """A file whose bytes did not all reach clamd (beyond the budgets, packed in a way
        not read here, damaged) in a format clamd does not read (``scanner``: why), so
        nothing scanned them."""
        findings = self.result.findings
        if not findings or findings[-1].path != path:   # not just noted as damaged
            self._note(Problem.UNSCANNED, path,
                       f"not all handed to the virus scanner, which {scanner}")

    def _listing(self, path: tuple[str, ...], label: str,
                 reader: Callable[[int], T], *, trial: bool = False) -> T | None:
        """``reader(files left to count)``: a format's listing, or None when it cannot
        be read (noted, unless it is a ``trial``: a password tried); one listing more
        than the bounds allow is a bomb."""
        try:
            return reader(self.limits.max_files - len(self.result.files))
        except TooLarge as exc:
            self._stop(Problem.BOMB, path, f"{label} listing {exc}")
        except Unreadable as exc:
            if not trial:
                self._note(Problem.UNREADABLE, path, f"damaged {label} ({exc})")
        return None

    def _7z(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        # Encrypted ones (7-Zip's AES-256) are opened with a password from the message.
        search = _PasswordSearch()
        try:
            archive = self._listing(path, "7z", lambda left: sevenzip.Archive(
                data, max_members=left, ppmd_allowance=self.ppmd_allowance))
        except sevenzip.NamesEncrypted:
            archive = self._7z_names_unlocked(path, data, search)
        if archive is None:
            return
        for member in archive.members:
            if member.is_dir:
                continue
            name = member.name or "(unnamed)"
            member_path = (*path, name)
            self._claim(member_path, member.size)
            if member.encrypted and not self._7z_unlocked(archive, member, member_path,
                                                          search):
                continue
            if archive.readable(member):
                # clamd cannot open what is encrypted, nor decode some coders.
                self._solid_member(archive, member, member_path, depth,
                                   for_clamd=member.encrypted or not archive.clamav_decodes(
                                       member),
                                   slow=archive.slowly_decoded(member),
                                   encrypted=member.encrypted)
            else:
                self._unopened(member_path, name, member.size, member.encrypted)
                if not member.encrypted:    # (clamd reports an encrypted one itself)
                    # What is not decoded here (ARM64, RISC-V, Swap) clamd's reader, with
                    # the LZMA SDK's older coders, does not decode either: nobody did.
                    self._unscanned(member_path, "cannot decode how it is packed")

    def _7z_names_unlocked(self, path: tuple[str, ...], data: bytes,
                           search: _PasswordSearch) -> sevenzip.Archive | None:
        """A 7z whose header is encrypted too (7z -mhe), opened with a password from the
        message (the one whose header decodes and matches its CRC); None, noted as
        locked, when none opens it."""
        search.searched, search.candidates = True, []     # the members are not searched

        def opened(candidate: str) -> sevenzip.Archive | None:
            archive = self._listing(path, "7z", lambda left: sevenzip.Archive(
                data, max_members=left, ppmd_allowance=self.ppmd_allowance,
                password=candidate), trial=True)
            if archive is not None:
                search.password = candidate
            return archive

        try:
            return self._names_unlocked(path, opened)
        except Unsupported as exc:
            self._note(Problem.LOCKED, path, f"file names encrypted, not opened: {exc}")
            return None

    def _7z_unlocked(self, archive: sevenzip.Archive, member: sevenzip.Member,
                     path: tuple[str, ...], search: _PasswordSearch) -> bool:
        """Whether a password from the message opens an encrypted member's folder (noted
        as locked when none does)."""
        try:
            return self._unlocked(path, member.size, search,
                                  lambda password: archive.unlock(member, password) or None,
                                  lambda password: archive.derives(member, password)) is not None
        except Unsupported as exc:
            self._locked(path, path[-1], member.size, f"encrypted, not opened: {exc}")
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged member ({exc})")
            self._locked(path, path[-1], member.size, "encrypted, not opened")
        return False

    def _iso(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        # An image may hold an ISO 9660 tree, a UDF one, or both; Windows shows the UDF
        # one when both are there, so a file either tree lists is judged, under every
        # name the trees give it.
        readers = [r for r in (udf, iso9660) if r.present(data)]
        if not readers:
            self._note(Problem.UNREADABLE, path, "disc image with no ISO 9660 or UDF tree")
            return
        names: dict[tuple[tuple[int, int], ...], list[str]] = {}
        entries: dict[tuple[tuple[int, int], ...], iso9660.Entry | udf.Entry] = {}
        in_iso9660: set[tuple[tuple[int, int], ...]] = set()
        for reader in readers:
            listed = self._listing(path, "disc image", lambda left, files=reader.files:
                                   files(data, max_entries=left)) or []
            for entry in listed:
                entries.setdefault(entry.extents, entry)
                names.setdefault(entry.extents, []).append(entry.path.rpartition("/")[2])
                if reader is iso9660:
                    in_iso9660.add(entry.extents)
        for extents, entry in entries.items():
            member_path = (*path, entry.path)
            self._claim(member_path, entry.size)
            # clamd reads the ISO 9660 tree only: a file only the UDF tree lists goes to it.
            for_clamd = extents not in in_iso9660
            # Files are stored as they are; many entries may share one extent, so only
            # what is looked at counts, as for tar members.
            head = self._looked_at(member_path, lambda n, entry=entry: entry.read(data, n),
                                   for_clamd, tuple(names[extents]))
            self._unpacked(len(head), member_path)
            if for_clamd:
                self._for_clamd(self.result.expanded, member_path, head)
            self._file(member_path, tuple(dict.fromkeys(names[extents])), head, depth)

    def _cab(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        cab = self._listing(path, "cab", lambda left: cabinet.Cabinet(data, max_members=left))
        if cab is None:
            return
        for folder in cab.folders:
            if folder.packed and folder.unpacked >= self.limits.ratio_floor and \
                    folder.unpacked / folder.packed > self.limits.max_ratio:
                self._stop(Problem.BOMB, path,
                           f"compression ratio {folder.unpacked // folder.packed}:1")
        for member in cab.members:
            name = member.name or "(unnamed)"
            member_path = (*path, name)
            self._claim(member_path, member.size)
            if cab.readable(member):
                self._solid_member(cab, member, member_path, depth,
                                   slow=cab.slowly_decoded(member))
            else:
                # Quantum, which clamd decodes (its type is not looked at), a method no
                # one knows, or a file continued in another cabinet of a set.
                self._unopened(member_path, name, member.size)
                self._note(Problem.UNREADABLE, member_path,
                           f"not looked into here ({cab.method(member)})")

    def _ole(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """An Office 97-2003 document (or any compound file): its macros, and the files
        packaged into it, judged like archive members."""
        found = office.contents(data, limit=self.limits.max_member,
                                passwords=lambda: self.passwords)
        if found.macros:
            self._note(Problem.MACROS, path, found.macros)
        if found.locked:
            self._note(Problem.LOCKED, path, "encrypted workbook, no password found in the "
                                             "message")
        if found.encrypted is not None:
            self._encrypted_document(path, found.encrypted, depth)
        for names, content in found.packaged:
            if depth >= self.limits.max_depth:
                self._stop(Problem.BOMB, path, f"documents nested more than "
                                               f"{self.limits.max_depth} deep")
            self._unpacked(len(content), path)
            self._file((*path, names[0]), names, content, depth + 1)

    def _encrypted_document(self, path: tuple[str, ...], document: office.Encrypted,
                            depth: int) -> None:
        """A password-protected Office document: opened, like an encrypted zip, with a
        password from the message (then judged, and scanned, as the document it is), or
        locked."""
        try:
            scheme = officecrypt.encryption(document.info)
        except officecrypt.UnsupportedScheme as exc:
            self._note(Problem.LOCKED, path, f"encrypted document ({exc}), cannot be opened "
                                             "here")
            return
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged encrypted document ({exc})")
            return
        candidates = self._document_passwords()
        key = next((key for candidate in candidates or []
                    if (key := scheme.key(candidate)) is not None), None)
        if key is None:
            self._note(Problem.LOCKED, path,
                       f"encrypted document, {_shut(candidates is not None)}")
            return
        try:
            content = scheme.document_bytes(key, document.read_package(),
                                            self.limits.max_member)
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged encrypted document ({exc})")
            return
        self._unpacked(len(content), path)
        self._for_clamd(self.result.decrypted, path, content)
        self._file((*path, f"{path[-1]} (decrypted)"), (path[-1],), content, depth + 1,
                   encrypted=True)

    def _tnef(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        self._stored(path, "TNEF", lambda left: tnef.attachments(data, max_files=left), depth)

    def _arj(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        self._stored(path, "ARJ", lambda left: arj.members(data, max_members=left), depth)

    def _lzh(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        # clamd decodes packed LHA members itself, but does not extract stored ones.
        self._stored(path, "LZH", lambda left: lzh.members(data, max_members=left), depth,
                     for_clamd=True)

    def _cpio(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        self._stored(path, "cpio", lambda left: cpio.members(data, max_members=left), depth)

    def _binhex(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        self._stored(path, "BinHex", lambda _: [binhex.data_fork(
            data, limit=self.limits.max_member)], depth, for_clamd=True)

    def _szdd(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """A file compressed by compress.exe (``setup.ex_``): judged under its real name."""
        name = szdd.expanded_name(path[-1], data)
        self._claim(path, szdd.size(data))
        # What clamd will not expand itself is expanded whole here, for it to scan.
        for_clamd = not szdd.clamav_expands(data)
        content = self._slowly_expanded(path, szdd.Expansion(data).first, whole=for_clamd,
                                        label="SZDD", names=(name,))
        if for_clamd and content is not None:    # noted when it does not fit
            self._for_clamd(self.result.expanded, (*path, name), content)
        if for_clamd and (content is None or len(content) < szdd.size(data)):
            self._unscanned(path, "does not expand this SZDD file")
        if content is None:
            self._unopened((*path, name), name, szdd.size(data))   # its name still counts
            return
        self._file((*path, name), (name,), content, depth)

    def _looked_at(self, path: tuple[str, ...], first: Callable[[int], bytes],
                   whole: bool = False, names: tuple[str, ...] = ()) -> bytes:
        """What of a file (known by ``names``, else by the last name of its ``path``) is
        looked at (``first(n)``: its first n bytes): what ``_first_looked_at`` says, or its
        whole (up to max_member) when it is a container or ``whole`` is asked for.
        A container larger than that is a bomb, as in a zip: cut, it would only look
        damaged, and what its end holds would pass unseen."""
        limit = self.limits.max_member
        content = first(HEAD)
        if filetypes.detect(content) in filetypes.CONTAINER_TYPES:
            content = first(limit + 1)
            if len(content) > limit:
                self._stop(Problem.BOMB, path, "nested archive larger than "
                                               f"{limit // 2**20} MiB unpacked")
        elif whole and len(content) == HEAD:
            content = first(limit)                # a big file: its first max_member bytes
        elif len(content) == HEAD and (page := _first_looked_at(names or path[-1:],
                                                                 content)) > HEAD:
            content = first(page)
        return content

    def _slowly_expanded(self, path: tuple[str, ...], first: Callable[[int], bytes], *,
                         whole: bool = False, label: str = "member",
                         names: tuple[str, ...] = ()) -> bytes | None:
        """A file packed by a method decoded in Python (``first(n)``: its first n bytes):
        its head, or its whole when it is a container or ``whole`` is asked for, within
        what the message may still have decoded so (max_slow_unpacked).  None, for the
        caller to judge it by name, once that is spent or when it is a container the
        allowance cuts (see ``_past_budget``), when it is damaged (noted as a damaged
        ``label``), or packed in a way not read here (a PPMd model larger than ppmd7's
        bound, a solid member whose run was not decoded)."""
        allowance = self.limits.max_slow_unpacked - self.slow_unpacked
        if allowance <= 0:
            return self._past_budget(path, whole)
        cut = False

        def within(size: int) -> bytes:
            nonlocal cut
            cut = cut or size > allowance
            return first(min(size, allowance))

        try:
            content = self._looked_at(path, within, whole, names)
        except OverBudget:
            return self._past_budget(path, whole)
        except Unsupported as exc:
            log.info("%s known by name: %s", " > ".join(path)[:200], exc)
            return None
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged {label} ({exc})")
            return None
        self.slow_unpacked += len(content)
        self._unpacked(len(content), path)
        if cut and len(content) == allowance and \
                filetypes.detect(content[:HEAD]) in filetypes.CONTAINER_TYPES:
            # Opened cut, it would look damaged, or what its end holds pass unseen.
            return self._past_budget(path, whole)
        return content

    def _past_budget(self, path: tuple[str, ...], whole: bool) -> None:
        """A file the message's budget for decoding in Python (max_slow_unpacked) did not
        reach, or an archive it reached in part: known by its name; noted, as what it
        holds was not looked into, unless its bytes were ``whole`` for clamd (then the
        caller says that nothing scanned them)."""
        if not whole:
            self._note(Problem.UNREADABLE, path,
                       "beyond the message's budget for decoding here, not looked into")

    def _stored(self, path: tuple[str, ...], label: str,
                reader: Callable[[int], list[Stored]], depth: int, *,
                for_clamd: bool = False) -> None:
        """The files of a format that keeps them as they are (or that is read only that
        far): like tar members, what is looked at counts; the rest is known by name.
        ``for_clamd``: clamd does not extract this format's stored files itself; their
        bytes go to it."""
        for member in self._listing(path, label, reader) or []:
            name = member.name or "(unnamed)"
            member_path = (*path, name)
            names = (name, *member.aliases)
            self._claim(member_path, member.size)
            if member.data is None and member.encrypted:
                self._locked(member_path, name, member.size, "encrypted, cannot be opened here",
                             names)
                continue
            head = None
            if member.data is not None:
                if for_clamd:
                    self._for_clamd(self.result.expanded, member_path, member.data)
                    if len(member.data) < member.size:      # read only as far as max_member
                        self._unscanned(member_path, "cannot open it where it is")
                head = self._looked_at(member_path, lambda n, data=member.data: data[:n])
                self._unpacked(len(head), member_path)
            elif member.unpack is not None:
                head = self._slowly_expanded(member_path, member.unpack)
            if head is None:                      # packed in a way not read here, ...
                self._unopened(member_path, name, member.size, names=names)
            else:
                self._file(member_path, names, head, depth)

    def _rtf(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        budget = min(self.limits.max_member, self.limits.max_unpacked - self.result.unpacked)
        for embedded in rtf.objects(data, limit=max(budget, 0)):
            self._unpacked(len(embedded.native), path)
            package = office.native_package(b"\0" * 4 + embedded.native) \
                if embedded.class_name == "Package" else None
            if package is not None:              # a file behind an icon
                names, content = package
            else:                                # an object of its own: a document, ...
                names = (f"(embedded {filetypes.shown(embedded.class_name)} object)",)
                content = embedded.native
            name = names[0]
            self._for_clamd(self.result.expanded, (*path, name), content)
            if embedded.class_name.lower().startswith("equation"):
                self._note(Problem.ACTIVE, path, "an Equation Editor object (the way "
                                                 "CVE-2017-11882 exploits arrive)")
                continue
            self._file((*path, name), names, content, depth)

    def _onenote(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        """A OneNote section: its embedded files judged by their bytes, and the names it
        gives them as names (clamd extracts the files itself)."""
        found = self._listing(path, "OneNote", lambda left: onenote.contents(
            data, max_files=left, limit=self.limits.max_member))
        if found is None:
            return
        if found.password_protected:
            self._note(Problem.LOCKED, path, "password-protected OneNote section, its "
                                             "embedded files cannot be read here")
        for number, content in enumerate(found.files, 1):
            name = f"(embedded file {number})"
            self._unpacked(len(content), path)
            self._file((*path, name), (name,), content, depth)
        for name in found.names:
            self._unopened((*path, name), name, 0)

    def _pdf(self, path: tuple[str, ...], data: bytes, depth: int) -> None:
        searched: list[list[str] | None] = []      # asked only when "" does not open it

        def candidates() -> list[str]:
            searched.append(self._document_passwords())
            return searched[0] or []

        found = pdf.contents(data, budget=self.limits.max_unpacked - self.result.unpacked,
                             read=self.limits.max_member, passwords=candidates)
        self._unpacked(found.unpacked, path)
        if found.locked:
            self._note(Problem.LOCKED, path, f"encrypted PDF ({found.encryption}), " + (
                "cannot be opened here" if found.unsupported
                else _shut(bool(searched) and searched[0] is not None)))
        for embedded in found.embedded:
            # clamd opens a PDF whose user password is empty, not one with a password.
            if found.opened_with_password:
                self._for_clamd(self.result.decrypted, (*path, embedded.name), embedded.data)
            self._file((*path, embedded.name), embedded.names or (embedded.name,),
                       embedded.data, depth, encrypted=found.opened_with_password)
        for name in found.named_only:
            self._unopened((*path, name), name, 0)
        if found.launches:
            self._note(Problem.ACTIVE, path, "a PDF that launches a program")
        elif found.javascript_on_open:
            self._note(Problem.ACTIVE, path, "a PDF that runs JavaScript when opened")
        if found.password_field:
            hosts = sorted({_host(target) for target in found.form_targets})
            self._note(Problem.ACTIVE, path, "a PDF form asking for a password"
                       + (f" (sent to {', '.join(hosts[:3])})" if hosts else ""))
        self.result.links.extend([*found.links, *found.form_targets][:pdf.MAX_LINKS])
        for picture in found.pictures:
            self._qr_codes(picture)

    def _solid_member(self, archive: cabinet.Cabinet | sevenzip.Archive,
                      member: cabinet.Member | sevenzip.Member, path: tuple[str, ...],
                      depth: int, *, for_clamd: bool = False, slow: bool = False,
                      encrypted: bool = False) -> None:
        """A member of an archive that packs many files as one stream (a cabinet folder, a
        7z folder), decoded up to the member's head, or its whole when it is a container
        or ``for_clamd`` (packed in a way clamd does not decode: its bytes go to it),
        within the budget (``slow``: decoded in Python, within max_slow_unpacked too): a
        file far into a big stream is known by its name.  An ``encrypted`` one (opened
        with a password from the message) goes to clamd with the decrypted files."""
        before = archive.unpacked
        budget = self.limits.max_unpacked - self.result.unpacked
        if slow:
            budget = min(budget, self.limits.max_slow_unpacked - self.slow_unpacked)
        try:
            head = self._looked_at(path, lambda n: archive.read(  # type: ignore[arg-type]
                member, n, budget=budget - (archive.unpacked - before)), for_clamd)
        except (OverBudget, Unsupported) as exc:  # Unsupported: a PPMd model too large here
            log.info("%s known by name: %s", " > ".join(path)[:200], exc)
            self._unopened(path, path[-1], member.size, encrypted)
            if for_clamd and not encrypted:   # clamd does not decode it either: nobody did
                self._unscanned(path, "cannot decode how it is packed")
            elif isinstance(exc, OverBudget) and not encrypted:
                # clamd decodes it, but its type was not looked at: an executable named
                # invoice.pdf behind filler passed the attachment rules unseen.  (An
                # encrypted one clamd reports itself.)
                self._past_budget(path, whole=False)
            return
        except Unreadable as exc:
            self._note(Problem.UNREADABLE, path, f"damaged member ({exc})")
            self._unopened(path, path[-1], member.size, encrypted)
            return
        finally:
            self._unpacked(archive.unpacked - before, path)
            if slow:
                self.slow_unpacked += archive.unpacked - before
        # What is looked at counts as well: members may share their bytes.
        self._unpacked(len(head), path)
        if for_clamd:
            self._for_clamd(self.result.decrypted if encrypted else self.result.expanded,
                            path, head)
        self._file(path, (path[-1],), head, depth, encrypted)

    # -- bounds ---------------------------------------------------------------------------

    def _count(self, path: tuple[str, ...]) -> None:
        if len(self.result.files) >= self.limits.max_files:
            self._stop(Problem.BOMB, path, f"more than {self.limits.max_files} files")

    def _claim(self, path: tuple[str, ...], size: int) -> None:
        self.claimed += size
        if self.claimed > self.limits.max_claimed:
            self._stop(Problem.BOMB, path, "unpacks to more than "
                                           f"{self.limits.max_claimed // 2**20} MiB")

    def _unpacked(self, size: int, path: tuple[str, ...]) -> None:
        self.result.unpacked += size
        if self.result.unpacked > self.limits.max_unpacked:
            self._stop(Problem.BOMB, path, "more than "
                                           f"{self.limits.max_unpacked // 2**20} MiB unpacked")

    def _note(self, problem: Problem, path: tuple[str, ...], detail: str) -> None:
        self.result.findings.append(Finding(problem, path, detail))

    def _stop(self, problem: Problem, path: tuple[str, ...], detail: str) -> None:
        self._note(problem, path, detail)
        raise _Stop


def _first_looked_at(names: tuple[str, ...], head: bytes) -> int:
    """How much of a file that is neither a container nor read whole is looked at, from
    its names and its first HEAD bytes: a web page, SVG image or web archive as far as
    its marks are looked for (markup.MAX_PAGE; blanks a browser does not show may come
    first), any other file its HEAD (enough to tell its type).  One rule for every
    archive format."""
    return markup.MAX_PAGE if markup.is_markup(names, head) or markup.is_web_archive(names) \
        else HEAD


def _start(stream: IO[bytes], size: int) -> bytes:
    """The first ``size`` bytes of a seekable ``stream``, however much was read before."""
    stream.seek(0)
    return stream.read(size)


class _TooBig(Exception):
    """A decrypted member beyond the decryption budget."""


def has_files(message: Message) -> bool:
    """Whether any part of the message is a file (an attachment, not readable text) or
    has files uuencoded into its text.  A message the walk could not finish counts: what
    it left out may be a file, and the inventory calls such a message a bomb."""
    cut: list[str] = []
    return any(_named_message(part) if part.is_multipart() else
               _is_file(part, _part_names(part)) or _uuencoded_text(part) is not None
               for _, part in walk(message, cut)) or bool(cut)


def _named_message(part: Message) -> bool:
    """Whether ``part`` is a message/* part given a file name other than a message's
    (mail clients name a forwarded message after its subject, plus .eml or .msg: such a
    name, "scan.pdf.eml", says no more than the message walked into)."""
    if part.get_content_maintype() != "message":
        return False
    return any(filetypes.extensions(name)[-1:] not in (["eml"], ["msg"])
               for name in _part_names(part))


def _is_file(part: Message, names: list[str]) -> bool:
    """Whether a part is a file rather than text the mail program shows: it has a name,
    is not text, or is sent as an attachment (which mail programs list, nameless text
    too: Outlook calls it ATT00001.htm)."""
    return bool(names) or part.get_content_maintype() not in ("text", "message") or \
        _disposition(part) == "attachment"


def _disposition(part: Message) -> str:
    """The first word of the part's Content-Disposition, lower-cased ('' when none)."""
    value = part.get("Content-Disposition")
    return str(value).split(";", 1)[0].strip().lower() if value is not None else ""


def _uuencoded_text(part: Message) -> bytes | None:
    """A plain-text part's bytes when files are uuencoded into it (mail programs show
    them as attachments).  Asked of every message's text: only a base64 body is decoded
    before the word "begin" is looked for (quoted-printable leaves it as it is)."""
    if part.get_content_type() != "text/plain":
        return None
    try:
        raw = part.get_payload()
    except (ValueError, LookupError):   # 8-bit text under a charset the codecs refuse
        raw = None
    if isinstance(raw, list):
        return None
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if raw is not None and "begin" not in raw and encoding != "base64":
        return None
    # A text part sent as x-uuencode: the block itself, whose begin line has the name.
    data = raw.encode("ascii", "replace") if raw is not None and "uu" in encoding \
        else payload(part)
    return data if data is not None and uuencode.has_blocks(data) else None


def _part_names(part: Message) -> list[str]:
    """Every file name a MIME part gives: each (file)name parameter, RFC 2231 encoded or
    not, repeated or not, of every Content-Disposition and Content-Type header (mail
    clients disagree about which one wins, so every one is judged)."""
    names: list[str] = []
    for header in ("Content-Disposition", "Content-Type"):
        for raw in _first_and_last(part.get_all(header) or [], MAX_NAME_HEADERS):
            if "name" not in str(raw).lower():
                continue          # no (file)name parameter to parse: most parts, quickly
            holder = Message()
            holder[header] = str(raw)
            try:
                params = holder.get_params(header=header) or []
            except Exception:  # noqa: BLE001, S112 - malformed parameters: no names
                continue
            # Every parameter is looked at (a name may follow any number of others);
            # only the names are bounded, each costing a decoding.
            values = [value for key, value in params if key.lower() in ("filename", "name")]
            for value in values[:MAX_NAME_PARAMS]:
                try:
                    text = str(collapse_rfc2231_value(value))  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001, S112 - an unknown charset: no name
                    continue
                name = decode_words(text, keep_end=True)
                if name and name not in names:
                    names.append(name)
    return names


def _first_and_last(items: list[T], count: int) -> list[T]:
    """The first ``count`` of ``items`` and the last ``count`` (all when that is all)."""
    return items if len(items) <= 2 * count else [*items[:count], *items[-count:]]


_UNICODE_PATH = 0x7075


def _zip_member_names(member: zipfile.ZipInfo, data: bytes) -> tuple[str, ...]:
    """A zip member's name, the one in its Info-ZIP Unicode Path field when that
    differs (unzip, 7-Zip and libarchive, Windows' own tar, show the latter, which
    Python's zipfile does not read), and the one in its local header when that differs
    (libarchive extracts under that one)."""
    names = [member.filename]
    local = data[member.header_offset:member.header_offset + 30]
    if len(local) == 30 and local.startswith(b"PK\x03\x04"):
        size = int.from_bytes(local[26:28], "little")
        raw = data[member.header_offset + 30:member.header_offset + 30 + size]
        # Decoded as zipfile decodes the directory's: UTF-8 when flagged, else cp437.
        name = raw.decode("utf-8" if member.flag_bits & 0x800 else "cp437", "replace")
        if name and name not in names:
            names.append(name)
    extra, at = member.extra, 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        field_data = extra[at + 4:at + 4 + size]
        at += 4 + size
        if kind == _UNICODE_PATH and len(field_data) > 5 and field_data[0] == 1:
            name = field_data[5:].decode("utf-8", "replace").replace("\\", "/")
            if name and name not in names:
                names.append(name)
    return tuple(names)


def _gzip_name(head: bytes) -> str | None:
    """The file name a gzip header keeps (RFC 1952's FNAME, Latin-1), or None."""
    if len(head) < 10 or not head[3] & 0x08:        # FNAME
        return None
    at = 10
    if head[3] & 0x04:                                # FEXTRA comes first
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    return head[at:end].decode("latin-1") if end > at else None


class _TooManyStreams(Exception):
    """More than MAX_COMPRESSED_STREAMS streams one behind another."""


_NOT_NULL = re.compile(rb"[^\0]")


def _streams(kind: str | None, data: bytes, limit: int) -> bytes:
    """What ``data`` unpacks to, stream after stream as gunzip, bunzip2, xz and 7-Zip
    unpack them into one file, up to ``limit`` + 1 bytes (more: cut there, for the caller
    to call a bomb).  Fed a chunk at a time, so what a stream leaves over is never the
    whole rest of the file copied (per stream: quadratic in empty streams)."""
    out: list[bytes] = []
    size = at = streams = 0
    while size <= limit:
        if streams:
            if kind == "xz":             # null stream padding, which xz and 7-Zip skip
                found = _NOT_NULL.search(data, at)
                at = found.start() if found else len(data)
            # What follows the last stream (zeros padding it to a block, ...) is not one.
            if filetypes.detect(data[at:at + 64]) != kind:
                break
            if streams >= MAX_COMPRESSED_STREAMS:
                raise _TooManyStreams
        streams += 1
        decompressor = _decompressor(kind)
        while not decompressor.eof and at < len(data) and size <= limit:
            chunk = data[at:at + STREAM_CHUNK]
            at += len(chunk)
            # Under limit + 1 bytes out, the chunk is consumed whole (or the stream ends).
            out.append(decompressor.decompress(chunk, limit + 1 - size))
            size += len(out[-1])
        if not decompressor.eof:
            break                        # cut short, or the limit is reached
        at -= len(decompressor.unused_data)
    return b"".join(out)


def _decompressor(kind: str | None) -> Any:
    """A decompressor for one stream of a file compressed whole."""
    if kind == "gz":
        return zlib.decompressobj(wbits=47)   # gzip or zlib header
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    # liblzma's own memory limit keeps a claimed dictionary small.
    return lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE,
                                 memlimit=XZ_MEMORY)


def _zip_behind(data: bytes) -> bool:
    """Whether a zip with members ends ``data`` (whatever comes before it)."""
    if data.rfind(b"PK\x05\x06", -(2**16 + 22)) < 0:     # its end record, comment and all
        return False
    try:
        return bool(zipfile.ZipFile(io.BytesIO(data)).infolist())
    except Exception:  # noqa: BLE001 - no zip after all
        return False


def _zip_names(data: bytes) -> list[str]:
    try:
        return zipfile.ZipFile(io.BytesIO(data)).namelist()[:100]
    except Exception:  # noqa: BLE001
        return []


def _rar_member_names(member: rarfile.RarInfo, name: str) -> tuple[str, ...]:
    """A RAR member's name (``name``, rarfile's), and the DOS name a RAR 3 header keeps
    before its Unicode one when that differs: extractors that do not read the Unicode
    name (or fail to) save the file under the DOS one.  Read as DOS wrote it: UTF-8 when
    it is that, else code page 437."""
    names = [name]
    raw = member.orig_filename
    if not isinstance(member, rarfile.Rar5FileInfo) and raw:
        try:
            dos = raw.decode("utf-8")
        except UnicodeDecodeError:
            dos = raw.decode("cp437")
        dos = dos.replace("\\", "/").rstrip("/")
        if dos and dos not in names:
            names.append(dos)
    return tuple(names)


def _rar_decoder(member: rarfile.RarInfo) -> str | None:
    """Which decoder reads ``member``'s packed bytes: "rar5" for RAR 5's compression
    (algorithm version 0: RAR 7's version 1, with dictionaries past 4 GiB, is not read),
    "rar3" for RAR 2.9's (unpack version 29: RAR 2.0's older method is not read); None
    for anything else, or a member not whole in this volume."""
    if member.data_offset is None or member.compress_type == rarfile.RAR_M0:
        return None
    if isinstance(member, rarfile.Rar5FileInfo):
        whole = not member.block_flags & (rarfile.RAR5_BLOCK_FLAG_SPLIT_BEFORE
                                          | rarfile.RAR5_BLOCK_FLAG_SPLIT_AFTER)
        return "rar5" if whole and member.file_compress_flags & 0x3F == 0 else None
    whole = not member.flags & (rarfile.RAR_FILE_SPLIT_BEFORE | rarfile.RAR_FILE_SPLIT_AFTER)
    return "rar3" if whole and member.extract_version == 29 else None


def _rar_solid(member: rarfile.RarInfo) -> bool:
    """Whether ``member`` carries on from the one before it (a solid archive's members
    after the first)."""
    if isinstance(member, rarfile.Rar5FileInfo):
        return bool(member.file_compress_flags & rarfile.RAR5_COMPR_SOLID)
    return bool(member.flags & rarfile.RAR_FILE_SOLID)


def _host(url: str) -> str:
    """Where ``url`` points, to name it in a finding: its host, else itself (shortened)."""
    try:
        return urlsplit(url).hostname or url[:80]
    except ValueError:                           # "http://[x": not a URL after all
        return url[:80]


def _shut(searched: bool) -> str:
    """Why an encrypted file stayed shut: no password from the message opened it, or the
    message's password searches (max_encrypted_tries, max_decrypted) were used up first."""
    return "no password found in the message" if searched else \
        "not tried: the message's limit on password searches is reached"


def _opens(archive: zipfile.ZipFile, member: zipfile.ZipInfo, password: str) -> bool:
    try:
        with archive.open(member, pwd=password.encode("utf-8")) as stream:
            # ZipCrypto's one check byte lets 1 in 256 wrong passwords through; a wrong
            # one then fails to decompress, or (small stored members) fails the CRC.
            stream.read(min(member.file_size, 1024) or 1)
        return True
    except Exception:  # noqa: BLE001 - wrong password (RuntimeError, zlib.error, ...)
        return False


def _aes_archive(data: bytes) -> zipfile.ZipFile:
    """The archive opened with pyzipper, which knows WinZip AES (the standard library
    reads only ZipCrypto)."""
    import pyzipper

    return pyzipper.AESZipFile(io.BytesIO(data))


async def shared_inventory(ctx: Context) -> Inventory:
    """The inventory of the message being checked, built once however many checks ask for
    it, in a worker thread (unpacking is CPU work); most mail has no files at all, and
    its empty inventory is not worth a thread hop."""
    task = ctx.shared.get(__name__)
    if task is None:
        if has_files(ctx.message):
            task = asyncio.ensure_future(asyncio.to_thread(inventory, ctx.message))
        else:
            task = asyncio.get_running_loop().create_future()
            task.set_result(Inventory())
        ctx.shared[__name__] = task
    # Shielded: one check timing out must not cancel the work another check awaits.
    return await asyncio.shield(task)
