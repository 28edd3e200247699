"""ClamAV's state for the administrator, and "update now" (FAQ: Server Admin → Update).

``status()`` says whether clamd answers, which engine and signature versions it has loaded
and of when, and which database files are installed: the official ones freshclam fetches
(``main``, ``daily``, ``bytecode``), the starter database the image ships so clamd runs from
the first boot (``portcullis-starter.*``), and any others (e.g. installed by the update
agent).  ``update_now()`` asks freshclam to check for new signatures at once and clamd to
reload what is installed.  The CLI and the web UI both call these two functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portcullis.antivirus.clamd import ClamdClient, ClamdError
from portcullis.config import ClamavConfig, Config

OFFICIAL = ("main", "daily", "bytecode")
STARTER_PREFIX = "portcullis-starter"
DATABASE_SUFFIXES = (".cvd", ".cld", ".cud", ".hdb", ".hsb", ".ndb", ".ldb", ".mdb", ".msb",
                     ".cdb", ".ign2", ".fp", ".sfp", ".pdb", ".wdb", ".ftm", ".cbc", ".yar",
                     ".yara", ".pwdb", ".idb", ".crb", ".ndu", ".ldu", ".hdu", ".mdu")
STALE_AFTER = 3 * 86400   # official signatures older than this deserve a warning
REQUEST_INTERVAL = 60.0   # seconds between "update now" requests that reach freshclam


@dataclass(frozen=True)
class DatabaseFile:
    name: str
    kind: str                       # "official", "starter" or "other"
    size: int
    modified: float                 # file time, seconds since the epoch
    version: int | None = None      # CVD/CLD header (official databases)
    signatures: int | None = None
    built: str | None = None        # build time as written in the header


@dataclass
class ClamavStatus:
    enabled: bool
    address: str
    reachable: bool = False
    error: str = ""
    engine: str = ""                # "1.4.3"
    signature_version: int | None = None   # the daily database clamd has loaded
    signature_date: str = ""        # its build date, as clamd reports it
    databases: list[DatabaseFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        """Which signatures protect mail: "official", "starter", "other" or "none"."""
        kinds = {d.kind for d in self.databases}
        for kind in ("official", "other", "starter"):
            if kind in kinds:
                return kind
        return "none"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source
        return data


def parse_version(reply: str) -> tuple[str, int | None, str]:
    """``ClamAV 1.4.3/27458/Thu Nov 14 08:26:36 2024`` → (engine, signature version, date).
    Without an official daily database clamd says just ``ClamAV 1.4.3``."""
    head, _, rest = reply.partition("/")
    engine = head.removeprefix("ClamAV").strip()
    number, _, date = rest.partition("/")
    return engine, int(number) if number.strip().isdigit() else None, date.strip()


def read_cvd_header(path: Path) -> tuple[int | None, int | None, str | None]:
    """(version, signature count, build time) from a CVD/CLD file's 512-byte header:
    ``ClamAV-VDB:<build time>:<version>:<signatures>:<level>:<md5>:<dsig>:<builder>:<stime>``."""
    try:
        with path.open("rb") as handle:
            header = handle.read(512).decode("ascii", "replace")
    except OSError:
        return None, None, None
    fields = header.split(":")
    if len(fields) < 4 or fields[0] != "ClamAV-VDB":
        return None, None, None
    # The build time itself contains a colon ("14 Nov 2024 08:26 -0500").
    built = f"{fields[1]}:{fields[2]}".strip()
    version = int(fields[3]) if fields[3].isdigit() else None
    signatures = int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else None
    return version, signatures, built


def installed_databases(directory: Path) -> list[DatabaseFile]:
    """The signature database files in clamd's DatabaseDirectory, official ones first."""
    found: list[DatabaseFile] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return found
    for path in entries:
        if not path.name.endswith(DATABASE_SUFFIXES) or not path.is_file():
            continue
        stem = path.name.split(".", 1)[0]
        kind = "official" if stem in OFFICIAL else \
            "starter" if stem.startswith(STARTER_PREFIX) else "other"
        stat = path.stat()
        version = signatures = None
        built = None
        if path.suffix in (".cvd", ".cld", ".cud"):
            version, signatures, built = read_cvd_header(path)
        elif path.suffix in (".hdb", ".hsb", ".ndb", ".ldb", ".mdb", ".msb", ".cdb", ".pwdb"):
            signatures = _count_lines(path)
        found.append(DatabaseFile(path.name, kind, stat.st_size, stat.st_mtime, version,
                                  signatures, built))
    found.sort(key=lambda d: ("official", "other", "starter").index(d.kind))
    return found


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip() and not line.startswith(b"#"))
    except OSError:
        return None


def client_for(config: ClamavConfig) -> ClamdClient:
    return ClamdClient(config.address, connect_timeout=config.connect_timeout,
                       timeout=min(config.scan_timeout, 30.0), chunk_size=config.chunk_size,
                       max_concurrent=config.max_concurrent_scans)


def _section(config: Config | ClamavConfig) -> ClamavConfig:
    return config.clamav if isinstance(config, Config) else config


class UpdateFailed(Exception):
    """Neither freshclam nor clamd could be asked to update; the message says why."""


async def clamav_status(config: Config | ClamavConfig) -> ClamavStatus:
    """Ask clamd and look at the database directory (``config``: the machine
    configuration or its ``[clamav]`` section)."""
    config = _section(config)
    result = ClamavStatus(enabled=config.enabled, address=config.address)
    result.databases = await asyncio.to_thread(installed_databases, config.database_dir)
    try:
        reply = await client_for(config).version()
    except ClamdError as exc:
        result.error = str(exc)
    else:
        result.reachable = True
        result.engine, result.signature_version, result.signature_date = parse_version(reply)
    result.warnings = _warnings(result)
    return result


def _warnings(result: ClamavStatus) -> list[str]:
    warnings = []
    if not result.enabled:
        warnings.append("virus scanning is disabled in the configuration ([clamav] enabled)")
    if not result.reachable:
        warnings.append("clamd is not answering: mail is deferred until it is back"
                        if result.enabled else "clamd is not answering")
    if result.source == "starter":
        warnings.append("only the starter database is installed: freshclam has not fetched "
                        "the official signatures yet")
    elif result.source == "none":
        warnings.append("no signature database is installed")
    daily = next((d for d in result.databases if d.name.startswith("daily.")), None)
    if daily is not None and time.time() - daily.modified > STALE_AFTER:
        warnings.append(f"the daily signatures were last updated "
                        f"{datetime.fromtimestamp(daily.modified, UTC):%Y-%m-%d %H:%M} UTC")
    if daily is not None and daily.version is not None and result.signature_version \
            is not None and daily.version != result.signature_version:
        warnings.append(f"clamd has daily {result.signature_version} loaded but "
                        f"{daily.version} is installed: a reload is pending")
    return warnings


def status(config: Config | ClamavConfig) -> ClamavStatus:
    """``clamav_status`` for synchronous callers (the CLI, the web UI's request threads)."""
    return asyncio.run(clamav_status(config))


@dataclass
class UpdateOutcome:
    freshclam_requested: bool
    freshclam: str                  # what happened to the freshclam request
    reloaded: bool
    reload: str                     # clamd's answer to RELOAD, or why there was none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def request_update(config: Config | ClamavConfig) -> UpdateOutcome:
    """Ask freshclam to check for new signatures now, and clamd to reload its databases
    (which picks up anything installed meanwhile, e.g. by the update agent; freshclam
    tells clamd itself when it has fetched something).  Raises UpdateFailed when neither
    could be asked."""
    config = _section(config)
    requested, freshclam = await asyncio.to_thread(_request_freshclam, config.update_request)
    try:
        answer = await client_for(config).reload()
        reloaded = answer.upper().startswith("RELOADING")
    except ClamdError as exc:
        answer, reloaded = str(exc), False
    if not requested and not reloaded:
        raise UpdateFailed(f"freshclam: {freshclam}; clamd: {answer}")
    return UpdateOutcome(requested, freshclam, reloaded, answer)


def update_now(config: Config | ClamavConfig) -> UpdateOutcome:
    """``request_update`` for synchronous callers."""
    return asyncio.run(request_update(config))


def _request_freshclam(request_file: str) -> tuple[bool, str]:
    """Touch the request file a systemd path unit watches; the unit wakes freshclam (which
    runs as its own user) so nobody needs the right to signal it."""
    if not request_file:
        return False, "no freshclam on this machine ([clamav] update_request is empty)"
    path = Path(request_file)
    if not path.parent.is_dir():
        return False, f"{path.parent} does not exist: freshclam is not set up here"
    # One request a minute reaches freshclam; more would only make it ask the mirrors
    # again (which throttle clients that ask too often).
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime < REQUEST_INTERVAL:
            return True, "freshclam was asked less than a minute ago; it is checking now"
    try:
        path.write_text(f"{time.time():.0f} {os.getpid()}\n")
    except OSError as exc:
        return False, f"cannot write {path}: {exc.strerror}"
    return True, "freshclam asked to check for new signatures now"
