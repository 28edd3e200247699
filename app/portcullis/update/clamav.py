"""Installing ClamAV signature files and making clamd use them.

The small interface the update agent (signature bundles) and the antivirus area share:

    database = ClamavDatabase(Path("/var/lib/clamav"), Clamd(Path("/run/clamav/clamd.ctl")))
    database.validate(files)            # every file loads in ClamAV, or SignatureError
    installed = database.install(files) # atomic per file, previous files kept aside
    database.reload()                   # clamd RELOAD, then waits until it answers again
    installed.rollback() / installed.commit()

clamd keeps its previous database when a reload fails and says nothing on its socket, so
files are loaded once with ``clamscan`` *before* they replace anything.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Database file kinds clamd reads from its database directory.
SIGNATURE_SUFFIXES = frozenset({
    "cvd", "cld", "cud", "cdiff", "hdb", "hsb", "hdu", "hsu", "mdb", "msb", "mdu", "msu",
    "ndb", "ndu", "ldb", "ldu", "idb", "cdb", "cbc", "pdb", "gdb", "wdb", "ftm", "fp", "sfp",
    "ign", "ign2", "crb", "yar", "yara", "cat", "info", "cfg", "pwdb",
})
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")
VALIDATE_TIMEOUT = 300


class SignatureError(Exception):
    """Signature files that must not be installed (bad name or they do not load)."""


class ClamdError(Exception):
    """clamd did not do what it was asked."""


def check_signature_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.rpartition(".")[2].lower() not in SIGNATURE_SUFFIXES:
        raise SignatureError(f"{name!r} is not a ClamAV database file name")


class Clamd:
    """clamd's local socket (the z-prefixed, NUL-terminated command protocol)."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, name: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"z" + name.encode() + b"\0")
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
        except OSError as exc:
            raise ClamdError(f"clamd at {self.socket_path}: {exc}") from None
        return reply.rstrip(b"\0\n").decode(errors="replace")

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except ClamdError:
            return False

    def reload(self, wait: float = 60.0) -> None:
        """Ask clamd to reload its database and wait until it answers again."""
        reply = self.command("RELOAD")
        if reply != "RELOADING":
            raise ClamdError(f"clamd answered RELOAD with {reply!r}")
        deadline = time.monotonic() + wait
        while not self.ping():
            if time.monotonic() > deadline:
                raise ClamdError(f"clamd did not answer within {wait:g} s after RELOAD")
            time.sleep(0.2)


@dataclass
class InstalledSignatures:
    """Files put in place by ``ClamavDatabase.install``; can be undone until committed."""

    directory: Path
    names: list[str]
    backup_dir: Path
    replaced: list[str] = field(default_factory=list)

    def rollback(self) -> None:
        """Put the previous files back (and remove files that did not exist before)."""
        for name in self.names:
            saved = self.backup_dir / name
            if name in self.replaced:
                os.replace(saved, self.directory / name)
            else:
                (self.directory / name).unlink(missing_ok=True)
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    def commit(self) -> None:
        shutil.rmtree(self.backup_dir, ignore_errors=True)


class ClamavDatabase:
    def __init__(self, directory: Path, clamd: Clamd | None = None,
                 clamscan: str = "clamscan") -> None:
        self.directory = directory
        self.clamd = clamd
        self.clamscan = clamscan

    def validate(self, files: Mapping[str, Path]) -> None:
        """Load the files (alone) in ClamAV; SignatureError with its complaint if not."""
        for name in files:
            check_signature_name(name)
        with tempfile.TemporaryDirectory(prefix="pcu-sigcheck-") as scratch:
            database = Path(scratch, "db")
            database.mkdir()
            for name, source in files.items():
                shutil.copyfile(source, database / name)
            sample = Path(scratch, "empty")
            sample.write_bytes(b"")
            try:
                result = subprocess.run(
                    [self.clamscan, "--no-summary", "--stdout", f"--database={database}",
                     str(sample)], capture_output=True, text=True, timeout=VALIDATE_TIMEOUT,
                    check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SignatureError(f"cannot check the signatures with {self.clamscan}: "
                                     f"{exc}") from None
        if result.returncode not in (0, 1):
            complaint = [line for line in (result.stderr + result.stdout).splitlines()
                         if "rror" in line] or ["clamscan failed"]
            raise SignatureError(f"signature files do not load: {complaint[-1].strip()}")

    def install(self, files: Mapping[str, Path]) -> InstalledSignatures:
        """Put each file in place atomically, owned like the database directory."""
        for name in files:
            check_signature_name(name)
        info = self.directory.stat()
        backup_dir = Path(tempfile.mkdtemp(prefix=".portcullis-update-", dir=self.directory))
        installed = InstalledSignatures(self.directory, [], backup_dir)
        try:
            for name, source in files.items():
                final = self.directory / name
                tmp = self.directory / f".{name}.new"
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o644)
                if os.geteuid() == 0:
                    os.chown(tmp, info.st_uid, info.st_gid)
                if final.exists():
                    os.link(final, backup_dir / name)
                    installed.replaced.append(name)
                installed.names.append(name)
                os.replace(tmp, final)
        except BaseException:
            installed.rollback()
            raise
        return installed

    def reload(self, wait: float = 60.0) -> bool:
        """Tell clamd; False if it is not running (it reads the files when it starts)."""
        if self.clamd is None or not self.clamd.socket_path.exists():
            return False
        self.clamd.reload(wait)
        return True
