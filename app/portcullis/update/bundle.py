"""The update bundle: one uncompressed tar file, shared by the vendor and the appliance.

    manifest.json     what this is: target, version, created, expires, health check, the
                      appliance it is for (audience; every appliance if absent), and
                      every payload file with its size, mode and SHA-256
    signatures.json   detached Ed25519 signatures over the manifest bytes (keys.py)
    files/<path>      the payload

The signature covers only the manifest; the manifest pins every file by hash, so one
signature check plus one hash per file proves the whole bundle, and who it is for: the
audience is one appliance's SSH host key fingerprint (hostkeys.py), required for the
targets whose payload belongs to one appliance (``BOUND_TARGETS``: its configuration, with
its domains, relays and secrets), so a bundle made for one appliance installs on no other.

The reader never calls ``extractall``: it accepts regular files under exactly these
names, streams each payload file to disk while hashing it, and refuses anything else
(links, devices, sparse files, ``..``, dot files, duplicates, files the manifest does not
list); before tarfile reads a header it refuses Solaris 'X' headers and PAX headers that
set ``size`` or ``GNU.sparse.*`` (check_tar_headers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portcullis.update import hostkeys, keys
from portcullis.update.state import atomic_file
from portcullis.update.versions import VersionError, is_newer, parse_version

FORMAT = "portcullis-bundle/1"
MANIFEST_NAME = "manifest.json"
SIGNATURES_NAME = "signatures.json"
PAYLOAD_PREFIX = "files/"
TARGETS = ("app", "clamav", "config", "trust-root")
# Targets whose bundles are made for one appliance and must say which (audience); the
# others are for every appliance unless they name one.
BOUND_TARGETS = ("config",)
MAX_MANIFEST_BYTES = 1024 * 1024
# The longest a bundle may be valid (created to expires).  Expiry is what stops a bundle
# held back by whoever sits on the path from being replayed much later (a freeze attack),
# so a span without bound would void it.  The vendor's default is 30 days; 400 leaves room
# for an appliance that is off for a year while bounding how long a leaked or superseded
# bundle stays installable (the CA/Browser Forum caps TLS certificates at 398 days for
# the same reason).
MAX_VALIDITY = timedelta(days=400)
# How far in the future a bundle's ``created`` may lie by this appliance's clock.  Without
# a bound, a vendor key holder could sign a bundle created years ahead and keep it
# installable that long, voiding MAX_VALIDITY (a stolen key's bundles would outlive the
# rotation that retires it).  30 days still takes bundles on an appliance whose clock runs
# a month behind (a dead RTC battery before NTP catches up is usually far worse and is
# then refused with a reason that names the clock).
MAX_CREATED_AHEAD = timedelta(days=30)
MAX_FILES = 4096
MAX_HEALTH_TIMEOUT = 3600  # seconds a bundle's health check may ask for
MAX_PATH_DEPTH = 12
CHUNK = 1024 * 1024
# A written bundle's mode: signed and pushed to appliances, as readable as a file made
# with the usual umask.
BUNDLE_MODE = 0o644
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleRejected(Exception):
    """The bundle must not be installed; the message is the reason shown everywhere."""

    manifest: Manifest | None = None


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: Any, field: str) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a UTC timestamp like 2025-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} {text!r} is not a timestamp like 2025-01-31T12:00:00Z") \
            from None
    if moment.tzinfo is None:
        raise ValueError(f"{field} {text!r} has no time zone")
    return moment.astimezone(UTC)


def safe_payload_path(path: Any) -> str:
    """A relative path of plain components (no ``..``, no dot files, no absolute paths)."""
    if not isinstance(path, str) or not path:
        raise ValueError("payload path must be non-empty text")
    parts = path.split("/")
    if len(parts) > MAX_PATH_DEPTH or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise ValueError(f"payload path {path!r} is not a plain relative path")
    return path


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    mode: int = 0o644

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o100)


@dataclass(frozen=True)
class HealthCheck:
    """A command run after the update is live; it must exit 0 within ``timeout`` seconds
    (it is retried until then, services take a moment to come up)."""

    command: tuple[str, ...]
    timeout: float = 60.0


@dataclass(frozen=True)
class Manifest:
    target: str
    version: str
    created: datetime
    expires: datetime
    files: tuple[FileEntry, ...]
    health_check: HealthCheck | None = None
    description: str = ""
    # The one appliance this bundle is for (its SSH host key fingerprint); None: any.
    audience: str | None = None

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def to_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "target": self.target,
            "version": self.version,
            "created": utc_text(self.created),
            "expires": utc_text(self.expires),
            "description": self.description,
            "health_check": None if self.health_check is None else {
                "command": list(self.health_check.command),
                "timeout": self.health_check.timeout},
            "files": [dataclasses.asdict(f) for f in self.files],
        }
        if self.audience is not None:
            # Only when there is one: an unbound bundle stays byte for byte what agents
            # from before audiences existed accept (they refuse fields they do not know).
            document["audience"] = self.audience
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and validate a manifest; ValueError names the problem."""
        try:
            doc = keys.strict_json(data)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r} is not {FORMAT}")
        unknown = set(doc) - {"format", "target", "version", "created", "expires",
                              "description", "health_check", "files", "audience"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        target = doc.get("target")
        if target not in TARGETS:
            raise ValueError(f"target {target!r} is not one of {', '.join(TARGETS)}")
        version = doc.get("version")
        try:
            parse_version(version)
        except VersionError as exc:
            raise ValueError(str(exc)) from None
        created = parse_utc(doc.get("created"), "created")
        expires = parse_utc(doc.get("expires"), "expires")
        if expires <= created:
            raise ValueError("expires is not after created")
        if expires - created > MAX_VALIDITY:
            raise ValueError(f"valid for {(expires - created).days} days (created "
                             f"{utc_text(created)}, expires {utc_text(expires)}): at most "
                             f"{MAX_VALIDITY.days} days are accepted")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise ValueError("description must be text")
        audience = doc.get("audience")
        if "audience" in doc and (not isinstance(audience, str)
                                  or not hostkeys.FINGERPRINT.fullmatch(audience)):
            raise ValueError(f"audience {audience!r} is not an SSH host key fingerprint "
                             "like SHA256:<43 base64 characters>")
        return cls(target, version, created, expires, _parse_files(doc.get("files")),
                   _parse_health_check(doc.get("health_check")), description, audience)


def _parse_files(raw: Any) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise ValueError(f"files must be a list of at most {MAX_FILES} entries")
    entries: list[FileEntry] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"path", "sha256", "size", "mode"}:
            raise ValueError(f"files[{i}] must have exactly path, sha256, size and mode")
        path = safe_payload_path(item["path"])
        if not isinstance(item["sha256"], str) or not _SHA256.fullmatch(item["sha256"]):
            raise ValueError(f"files[{i}] sha256 is not 64 lowercase hex digits")
        size, mode = item["size"], item["mode"]
        if not _is_integer(size) or size < 0:
            raise ValueError(f"files[{i}] size must be a non-negative integer")
        # 420.0 == 0o644 in Python: only a JSON integer is a mode os.open takes.
        if not _is_integer(mode) or mode not in (0o644, 0o755):
            raise ValueError(f"files[{i}] mode must be 0644 or 0755")
        entries.append(FileEntry(path, item["sha256"], size, mode))
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        raise ValueError("files lists a path twice")
    prefixes = {"/".join(p.split("/")[:n]) for p in paths for n in range(1, p.count("/") + 1)}
    if prefixes & set(paths):
        raise ValueError("a payload path is both a file and a directory")
    return tuple(entries)


def _is_integer(value: Any) -> bool:
    """A JSON integer (not a fraction, not true/false)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_health_check(raw: Any) -> HealthCheck | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not set(raw) <= {"command", "timeout"}:
        raise ValueError("health_check must be an object with command and timeout")
    command = raw.get("command")
    if not isinstance(command, list) or not command or \
            not all(isinstance(a, str) and a and "\0" not in a for a in command):
        raise ValueError("health_check command must be a non-empty list of arguments")
    timeout = raw.get("timeout", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not 1 <= timeout <= MAX_HEALTH_TIMEOUT:
        raise ValueError(f"health_check timeout must be 1 to {MAX_HEALTH_TIMEOUT} seconds")
    return HealthCheck(tuple(command), float(timeout))


# -- writing (the vendor) -----------------------------------------------------------------

def file_entry(path: str, source: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    mode = 0o755 if os.stat(source).st_mode & 0o100 else 0o644
    return FileEntry(safe_payload_path(path), digest.hexdigest(), size, mode)


def make_manifest(target: str, version: str, sources: Mapping[str, Path], *,
                  created: datetime, expires: datetime,
                  health_check: HealthCheck | None = None, description: str = "",
                  audience: str | None = None) -> Manifest:
    """Describe ``sources`` (payload path -> local file) for ``audience`` (an appliance's
    SSH host key fingerprint; None: every appliance); ValueError if it is not valid."""
    if target in BOUND_TARGETS and audience is None:
        raise ValueError(f"a {target} bundle is for one appliance: it needs its audience "
                         "(the appliance's SSH host key fingerprint)")
    entries = tuple(file_entry(path, source) for path, source in sorted(sources.items()))
    manifest = Manifest(target, version, created.astimezone(UTC).replace(microsecond=0),
                        expires.astimezone(UTC).replace(microsecond=0), entries,
                        health_check, description, audience)
    Manifest.from_bytes(manifest.to_bytes())  # the same rules the appliance applies
    return manifest


def write_bundle(out: Path, manifest: Manifest, sources: Mapping[str, Path | IO[bytes]],
                 signatures: Sequence[Mapping[str, str]] = ()) -> None:
    """Write the bundle atomically (a temporary file renamed into place)."""
    manifest_bytes = manifest.to_bytes()
    mtime = int(manifest.created.timestamp())
    with atomic_file(out, BUNDLE_MODE) as file, \
            tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST_NAME, manifest_bytes, mtime)
        if signatures:
            _add_bytes(tar, SIGNATURES_NAME, _signatures_bytes(signatures), mtime)
        for entry in manifest.files:
            info = _tarinfo(PAYLOAD_PREFIX + entry.path, entry.size, mtime, entry.mode)
            source = sources[entry.path]
            with contextlib.ExitStack() as stack:
                payload = source if not isinstance(source, Path) else \
                    stack.enter_context(source.open("rb"))
                tar.addfile(info, payload)


def sign_bundle(path: Path, signing_keys: Sequence[Ed25519PrivateKey]) -> list[str]:
    """Add signatures by ``signing_keys`` (replacing earlier ones by the same keys)."""
    with BundleReader(path) as reader:
        manifest_bytes = reader.manifest_bytes
        manifest = Manifest.from_bytes(manifest_bytes)
        signatures = {s["key_id"]: s for s in reader.signatures}
        for key in signing_keys:
            entry = keys.sign(key, manifest_bytes)
            signatures[entry["key_id"]] = entry
        sources = {e.path: reader.open_payload(e.path) for e in manifest.files}
        write_bundle(path, manifest, sources, list(signatures.values()))
    return list(signatures)


def _signatures_bytes(signatures: Sequence[Mapping[str, str]]) -> bytes:
    return (json.dumps({"signatures": [dict(s) for s in signatures]}, indent=2,
                       sort_keys=True) + "\n").encode()


def _tarinfo(name: str, size: int, mtime: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    tar.addfile(_tarinfo(name, len(data), mtime), io.BytesIO(data))


# -- reading (both sides) -----------------------------------------------------------------

# What tarfile may raise on a damaged or hostile archive (ValueError: a bad number in a
# PAX or sparse header; RecursionError: deeply nested JSON).
DAMAGED = (tarfile.TarError, OSError, EOFError, ValueError, RecursionError)
# tarfile reads an extended header (PAX, GNU long name) whole into memory and parses it
# before anything is verified, and keeps what it parsed with each member; a bundle's
# names need a few hundred bytes each.
MAX_EXTENDED_HEADER = 64 * 1024
MAX_EXTENDED_HEADERS_TOTAL = 1024 * 1024
_EXTENDED_TYPES = frozenset(b"xgXLK")
# PAX headers ('x' for one member, 'g' for all that follow) and Solaris' older 'X', which
# tarfile reads as PAX.
_PAX_TYPES = frozenset(b"xgX")
_BLOCK = 512
_PAX_LENGTH = re.compile(rb"[0-9]{1,7}")


class StorageError(Exception):
    """The appliance could not write what it received (a full disk): the bundle itself may
    be sound, so this is a failure of the appliance, not a rejection."""


def check_tar_headers(path: Path) -> None:
    """Walk the tar headers before tarfile does: no extended header over
    ``MAX_EXTENDED_HEADER`` (nor all of them over ``MAX_EXTENDED_HEADERS_TOTAL``), no
    Solaris 'X' header and no PAX header that sets ``size`` or a ``GNU.sparse.*`` key, and
    no more headers than a bundle can hold."""
    extended = 0
    with path.open("rb") as tar:
        for _ in range(2 * (MAX_FILES + 2) + 1):
            header = tar.read(_BLOCK)
            if len(header) < _BLOCK or not any(header):
                return  # the end (or cut short: tarfile says so)
            size_field = header[124:136]
            try:
                if size_field[0] & 0x80:  # GNU base-256
                    size = int.from_bytes(size_field[1:], "big")
                else:
                    size = int(size_field.rstrip(b"\0 ").lstrip(b" ") or b"0", 8)
            except ValueError:
                raise BundleRejected("bundle is damaged (a tar header's size is not a number)"
                                     ) from None
            if header[156] in _EXTENDED_TYPES:
                extended += size
                if size > MAX_EXTENDED_HEADER or extended > MAX_EXTENDED_HEADERS_TOTAL:
                    raise BundleRejected(f"bundle has extended tar headers of {size} bytes"
                                         f" (at most {MAX_EXTENDED_HEADER} each and"
                                         f" {MAX_EXTENDED_HEADERS_TOTAL} in all)")
            if header[156] in _PAX_TYPES:
                data = tar.read(size)
                tar.seek(-size % _BLOCK, os.SEEK_CUR)
                _check_pax_header(header[156], data, tar)
            else:
                tar.seek(-(-size // _BLOCK) * _BLOCK, os.SEEK_CUR)
    raise BundleRejected("bundle holds too many files")


def _check_pax_header(kind: int, data: bytes, tar: IO[bytes]) -> None:
    """Refuse what would let tarfile see a member differently from this walk and from the
    manifest: a PAX ``size`` overrides the header's (the member's bytes would no longer be
    the ones this walk skips and the manifest sizes), ``GNU.sparse.*`` makes a member
    sparse (holes written out in full), and 'X' is Solaris' pre-POSIX form that bundles
    never use.  ``tar`` stands at the header the PAX header describes and stays there."""
    records = _pax_records(data)
    values = dict(records)
    name = values.get(b"GNU.sparse.name") or values.get(b"path")
    if name is None and kind != ord("g"):
        here = tar.tell()
        name = _ustar_name(tar.read(_BLOCK))
        tar.seek(here)
    member = "every following member" if kind == ord("g") else \
        f"bundle member {name.decode('utf-8', 'replace')!r}"
    if kind == ord("X"):
        raise BundleRejected(f"{member} has a Solaris extended header ('X'): not a bundle")
    for key, _ in records:
        if key.startswith(b"GNU.sparse."):
            raise BundleRejected(f"{member} is a sparse file (PAX header "
                                 f"{key.decode('utf-8', 'replace')})")
        if key == b"size":
            raise BundleRejected(f"{member} has a PAX header that sets its size")


def _ustar_name(header: bytes) -> bytes:
    name = header[:100].rstrip(b"\0")
    # Only POSIX ustar has a name prefix there (GNU keeps times in those bytes).
    prefix = header[345:500].rstrip(b"\0") if header[257:263] == b"ustar\0" else b""
    return prefix + b"/" + name if prefix else name


def _pax_records(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of a PAX header, parsed strictly: anything tarfile might
    read differently (a bad length, a record without '=' or newline) is a rejection."""
    records: list[tuple[bytes, bytes]] = []
    pos = 0
    while data[pos:].strip(b"\0"):  # tarfile stops at the padding, so does this
        space = data.find(b" ", pos)
        length = data[pos:space] if space > pos else b""
        if not _PAX_LENGTH.fullmatch(length):
            raise BundleRejected("bundle is damaged (a PAX header record has no length)")
        end = pos + int(length)
        record = data[space + 1:end]
        if end > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise BundleRejected("bundle is damaged (a PAX header record is malformed)")
        key, _, value = record[:-1].partition(b"=")
        records.append((key, value))
        pos = end
    return records


class BundleReader:
    """Index a bundle's members without trusting it; read manifest, signatures, payload."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            check_tar_headers(path)
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
        except DAMAGED as exc:
            raise BundleRejected(f"not a Portcullis bundle (not a tar file: {exc})") from None
        try:
            self._members = self._index()
            self.manifest_bytes = self._read_small(MANIFEST_NAME, required=True)
            raw_signatures = self._read_small(SIGNATURES_NAME, required=False)
            self.signatures = _parse_signatures(raw_signatures)
        except BaseException:
            self._tar.close()
            raise

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tar.close()

    def _index(self) -> dict[str, tarfile.TarInfo]:
        members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in self._tar:
                if len(members) > MAX_FILES + 2:
                    raise BundleRejected("bundle holds too many files")
                name = member.name
                if not member.isreg():
                    raise BundleRejected(f"bundle member {name!r} is not a regular file")
                if member.issparse():
                    # Its holes would be written out in full: a few KiB on the wire could
                    # fill /var.  A bundle's members hold all their bytes (write_bundle).
                    raise BundleRejected(f"bundle member {name!r} is a sparse file")
                if name in members:
                    raise BundleRejected(f"bundle holds {name!r} twice")
                if name not in (MANIFEST_NAME, SIGNATURES_NAME):
                    if not name.startswith(PAYLOAD_PREFIX):
                        raise BundleRejected(f"unexpected bundle member {name!r}")
                    try:
                        safe_payload_path(name[len(PAYLOAD_PREFIX):])
                    except ValueError as exc:
                        raise BundleRejected(str(exc)) from None
                members[name] = member
        except DAMAGED as exc:
            raise BundleRejected(f"bundle is damaged or incomplete ({exc})") from None
        return members

    def _read_small(self, name: str, *, required: bool) -> bytes:
        member = self._members.get(name)
        if member is None:
            if required:
                raise BundleRejected(f"not a Portcullis bundle (no {name})")
            return b""
        if member.size > MAX_MANIFEST_BYTES:
            raise BundleRejected(f"{name} is larger than {MAX_MANIFEST_BYTES} bytes")
        handle = self._extract(member)
        try:
            data = handle.read(member.size + 1)
        except DAMAGED as exc:
            raise BundleRejected(f"bundle is damaged or incomplete ({exc})") from None
        if len(data) != member.size:
            raise BundleRejected(f"bundle is damaged or incomplete ({name} is cut short)")
        return data

    def _extract(self, member: tarfile.TarInfo) -> IO[bytes]:
        try:
            handle = self._tar.extractfile(member)
        except DAMAGED as exc:
            raise BundleRejected(f"bundle is damaged ({exc})") from None
        if handle is None:
            raise BundleRejected(f"bundle member {member.name!r} is not a regular file")
        return handle

    def payload_paths(self) -> set[str]:
        return {n[len(PAYLOAD_PREFIX):] for n in self._members if n.startswith(PAYLOAD_PREFIX)}

    def open_payload(self, path: str) -> IO[bytes]:
        member = self._members.get(PAYLOAD_PREFIX + path)
        if member is None:
            raise BundleRejected(f"file {path} is listed in the manifest but missing")
        return self._extract(member)

    def check_payload(self, manifest: Manifest, dest: Path | None) -> dict[str, Path]:
        """Hash every payload file against the manifest, writing it below ``dest`` if
        given; BundleRejected on any difference.  Returns path -> extracted file."""
        extra = self.payload_paths() - {e.path for e in manifest.files}
        if extra:
            raise BundleRejected(f"file {sorted(extra)[0]} is not listed in the manifest")
        extracted: dict[str, Path] = {}
        for entry in manifest.files:
            member = self._members.get(PAYLOAD_PREFIX + entry.path)
            if member is None:
                raise BundleRejected(f"file {entry.path} is listed in the manifest but missing")
            if member.size != entry.size:
                raise BundleRejected(f"file {entry.path}: size {member.size} differs from the "
                                     f"signed manifest ({entry.size}): tampered")
            target = None if dest is None else dest / entry.path
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
            digest = self._copy(member, target, entry)
            if digest != entry.sha256:
                raise BundleRejected(f"file {entry.path}: SHA-256 differs from the signed "
                                     "manifest: tampered")
            if target is not None:
                extracted[entry.path] = target
        return extracted

    def _copy(self, member: tarfile.TarInfo, target: Path | None, entry: FileEntry) -> str:
        digest = hashlib.sha256()
        source = self._extract(member)
        with contextlib.ExitStack() as stack:
            out = None
            try:
                if target is not None:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, entry.mode)
                    out = stack.enter_context(os.fdopen(fd, "wb"))
            except OSError as exc:
                raise StorageError(f"{entry.path}: {exc}") from None
            while True:
                try:
                    chunk = source.read(CHUNK)
                except DAMAGED as exc:
                    raise BundleRejected(f"bundle is damaged or incomplete ({exc})") from None
                if not chunk:
                    break
                digest.update(chunk)
                if out is not None:
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise StorageError(f"{entry.path}: {exc}") from None
            try:
                stack.close()  # the last write may only fail when the file is closed
            except OSError as exc:
                raise StorageError(f"{entry.path}: {exc}") from None
        return digest.hexdigest()


def _parse_signatures(raw: bytes) -> list[dict[str, str]]:
    if not raw:
        return []
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise BundleRejected(f"{SIGNATURES_NAME} is not JSON") from None
    entries = doc.get("signatures") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or len(entries) > keys.MAX_TRUSTED_KEYS * 2 or \
            not all(isinstance(e, dict) for e in entries):
        raise BundleRejected(f"{SIGNATURES_NAME} is malformed")
    return entries


# -- verification (the appliance) ---------------------------------------------------------

@dataclass
class VerifiedBundle:
    """A bundle that passed every check; ``payload`` maps paths to extracted files."""

    manifest: Manifest
    manifest_bytes: bytes
    signatures: list[dict[str, str]]
    signed_by: list[str]
    payload: dict[str, Path]


def verify_bundle(path: Path, trust_root: keys.TrustRoot,
                  installed: Callable[[str], str | None], *,
                  check: Callable[[Manifest], None] | None = None,
                  appliance: Callable[[], Collection[str] | None] | None = None,
                  now: datetime | None = None, extract_to: Path | None = None
                  ) -> VerifiedBundle:
    """Every check, in an order that never trusts unverified bytes: signatures over the raw
    manifest, then its content, that it is for this appliance (``appliance()``: this
    appliance's host key fingerprints, asked only of a bundle that names one, or None when
    this process may not read them and leaves that to root's installer; ``appliance``
    None: no identity, so only bundles for every appliance pass), the target's payload rules
    (``check``), expiry, version against ``installed(target)`` (anti-rollback), and each
    file's hash.

    Raises BundleRejected with the reason; once the manifest is known it rides along on
    the exception (``manifest``) so the rejection can name target and version.
    """
    now = now or datetime.now(UTC)
    with BundleReader(path) as reader:
        try:
            signed_by = trust_root.verify(reader.manifest_bytes, reader.signatures)
        except keys.SignatureRejected as exc:
            raise BundleRejected(str(exc)) from None
        try:
            manifest = Manifest.from_bytes(reader.manifest_bytes)
        except ValueError as exc:
            raise BundleRejected(f"manifest: {exc}") from None
        try:
            check_audience(manifest, appliance or _no_identity)
            if check is not None:
                check(manifest)
            check_freshness(manifest, installed(manifest.target), now)
            payload = reader.check_payload(manifest, extract_to)
        except BundleRejected as exc:
            exc.manifest = manifest
            raise
        return VerifiedBundle(manifest, reader.manifest_bytes, reader.signatures, signed_by,
                              payload)


def _no_identity() -> frozenset[str]:
    """An appliance that cannot name itself: only bundles for every appliance pass."""
    return frozenset()


def check_audience(manifest: Manifest,
                   appliance: Callable[[], Collection[str] | None]) -> None:
    """The bundle is for this appliance: it names none and its target is for every
    appliance, or it names one of this appliance's host keys (``appliance()``, which may
    raise hostkeys.HostKeyError when the appliance cannot tell, or return None when only
    root may read them: the unprivileged agent's pre-check, which root's installer
    repeats)."""
    if manifest.audience is None:
        if manifest.target in BOUND_TARGETS:
            raise BundleRejected(f"{manifest.target} bundle names no appliance (no audience):"
                                 f" a {manifest.target} bundle must be built for one appliance")
        return
    mine = appliance()
    if mine is None:
        return
    if manifest.audience not in mine:
        raise BundleRejected(
            f"bundle is for another appliance (SSH host key {manifest.audience}), not this "
            f"one ({', '.join(sorted(mine)) or 'no host key known'})")


def check_freshness(manifest: Manifest, installed_version: str | None, now: datetime) -> None:
    """Expiry (so an old bundle cannot be held back and replayed later: anti-freeze), a
    creation date not far ahead (which would stretch the validity cap), and version
    monotonicity (anti-rollback)."""
    if now >= manifest.expires:
        raise BundleRejected(f"bundle expired at {utc_text(manifest.expires)}")
    if manifest.created > now + MAX_CREATED_AHEAD:
        raise BundleRejected(
            f"bundle created {utc_text(manifest.created)}, more than {MAX_CREATED_AHEAD.days} "
            f"days after this appliance's clock ({utc_text(now)}): refused, as it would stay "
            f"valid past the {MAX_VALIDITY.days}-day limit (or this appliance's clock is "
            "behind: set it right)")
    if not is_newer(manifest.version, installed_version):
        raise BundleRejected(
            f"{manifest.target} version {manifest.version} is not newer than the installed "
            f"{installed_version} (replayed or older bundle)")
