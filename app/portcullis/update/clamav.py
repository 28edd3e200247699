"""Installing ClamAV signature files and making clamd use them.

The small interface the update agent (signature bundles) and the antivirus area share:

    database = ClamavDatabase(Path("/var/lib/clamav"), Path("/run/clamav/clamd.ctl"))
    database.validate(files)            # every file loads in ClamAV, or SignatureError
    backup = new_backup_name()          # noted (by the caller) before anything changes
    installed = database.install(files, backup) # atomic per file, previous files kept aside
    database.reload()                   # clamd RELOAD, then waits until it answers again
    installed.rollback() / installed.commit()
    database.resume(backup, new_names)  # after a power cut: the same, to roll back or commit

clamd keeps its previous database when a reload fails and says nothing on its socket, so
files are loaded once with ``clamscan`` *before* they replace anything.  Talking to clamd
is the antivirus area's ``ClamdClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portcullis.antivirus.clamd import ClamdClient, ClamdError

# Database file kinds clamd reads from its database directory.
SIGNATURE_SUFFIXES = frozenset({
    "cvd", "cld", "cud", "cdiff", "hdb", "hsb", "hdu", "hsu", "mdb", "msb", "mdu", "msu",
    "ndb", "ndu", "ldb", "ldu", "idb", "cdb", "cbc", "pdb", "gdb", "wdb", "ftm", "fp", "sfp",
    "ign", "ign2", "crb", "yar", "yara", "cat", "info", "cfg", "pwdb",
})
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")
VALIDATE_TIMEOUT = 300


__all__ = ["ClamavDatabase", "ClamdError", "InstalledSignatures", "SignatureError",
           "check_signature_name", "new_backup_name", "reload_clamd"]
_BACKUP = re.compile(r"\.portcullis-update-[0-9a-f]{16}")


class SignatureError(Exception):
    """Signature files that must not be installed (bad name or they do not load)."""


def check_signature_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.rpartition(".")[2].lower() not in SIGNATURE_SUFFIXES:
        raise SignatureError(f"{name!r} is not a ClamAV database file name")


def new_backup_name() -> str:
    """A name for the root-only directory an installation keeps the previous files in."""
    return f".portcullis-update-{secrets.token_hex(8)}"


def reload_clamd(address: str, wait: float = 60.0) -> None:
    """Ask clamd to reload its databases and wait until it answers again (ClamdError)."""
    asyncio.run(_reload(ClamdClient(address, connect_timeout=5.0, timeout=30.0), wait))


async def _reload(client: ClamdClient, wait: float) -> None:
    answer = await client.reload()
    if not answer.upper().startswith("RELOADING"):
        raise ClamdError(f"clamd answered RELOAD with {answer!r}")
    deadline = time.monotonic() + wait
    while True:
        try:
            await client.ping()
            return
        except ClamdError:
            if time.monotonic() > deadline:
                raise ClamdError(f"clamd did not answer within {wait:g} s after RELOAD") \
                    from None
            await asyncio.sleep(0.2)


def _open_directory(path: str | Path, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   dir_fd=dir_fd)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


@dataclass
class InstalledSignatures:
    """Files put in place by ``ClamavDatabase.install``; can be undone until committed.

    Every step works on descriptors of the database directory and of a root-only backup
    directory inside it: the directory belongs to clamav, whose daemons read hostile
    files, and a link planted there must not turn root's writes onto another file.
    """

    directory_fd: int
    backup_name: str
    backup_fd: int
    names: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    def rollback(self) -> None:
        """Put the previous files back (and remove files that did not exist before)."""
        try:
            for name in self.names:
                if name in self.replaced:
                    os.replace(name, name, src_dir_fd=self.backup_fd,
                               dst_dir_fd=self.directory_fd)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=self.directory_fd)
        finally:
            self.commit()

    def commit(self) -> None:
        """Forget the previous files."""
        if self.backup_fd < 0:
            return
        shutil.rmtree(self.backup_name, dir_fd=self.directory_fd, ignore_errors=True)
        os.close(self.backup_fd)
        os.close(self.directory_fd)
        self.backup_fd = -1


class ClamavDatabase:
    def __init__(self, directory: Path, clamd_socket: Path | None = None,
                 clamscan: str = "clamscan") -> None:
        self.directory = directory
        self.clamd_socket = clamd_socket
        self.clamscan = clamscan

    def validate(self, files: Mapping[str, Path]) -> None:
        """Load the files (alone) in ClamAV; SignatureError with its complaint if not."""
        for name in files:
            check_signature_name(name)
        self._load(files)

    def validate_installed(self, files: Mapping[str, Path]) -> None:
        """Load the database directory as it will be with ``files`` in place: what clamd
        reads at its next RELOAD or start.  clamd keeps its previous database when a
        reload fails (and still answers PING), so this is the one place to tell that the
        files would not be used and that clamd would not start again."""
        for name in files:
            check_signature_name(name)
        self._load({**self._installed_files(), **files})

    def _installed_files(self) -> dict[str, Path]:
        found = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    check_signature_name(entry.name)
                except SignatureError:
                    continue   # not a database file (our backups and temporaries neither)
                if entry.is_file(follow_symlinks=False):
                    found[entry.name] = Path(entry.path)
        return found

    def _load(self, files: Mapping[str, Path]) -> None:
        with tempfile.TemporaryDirectory(prefix="pcu-sigcheck-") as scratch:
            database = Path(scratch, "db")
            database.mkdir()
            for name, source in files.items():
                # never through a link the clamav account planted after the listing
                with open(source, "rb", opener=_no_follow) as data, \
                        open(database / name, "xb") as out:
                    shutil.copyfileobj(data, out, 1024 * 1024)
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

    def install(self, files: Mapping[str, Path], backup_name: str) -> InstalledSignatures:
        """Put each file in place atomically, owned like the database directory, keeping
        the files they replace in ``backup_name`` (``new_backup_name()``)."""
        for name in files:
            check_signature_name(name)
        directory_fd = _open_directory(self.directory)
        try:
            installed = self._backup_directory(directory_fd, backup_name, create=True)
        except BaseException:
            os.close(directory_fd)
            raise
        owner = os.fstat(directory_fd)
        try:
            for name, source in files.items():
                self._install_one(installed, name, source, owner)
        except BaseException:
            installed.rollback()
            raise
        return installed

    def resume(self, backup_name: str, new_names: Collection[str]
               ) -> InstalledSignatures | None:
        """An installation cut off (a power cut, the installer killed), to roll back or
        commit: ``new_names`` are the bundle's files that did not exist before it.  None
        if there is nothing left of it (its backup directory is gone: it never began, or
        was committed or rolled back already)."""
        if not _BACKUP.fullmatch(backup_name):
            raise SignatureError(f"{backup_name!r} is not a backup directory's name")
        for name in new_names:
            check_signature_name(name)
        directory_fd = _open_directory(self.directory)
        try:
            installed = self._backup_directory(directory_fd, backup_name, create=False)
            kept = os.listdir(installed.backup_fd)
        except FileNotFoundError:
            os.close(directory_fd)
            return None
        except BaseException:
            os.close(directory_fd)
            raise
        installed.replaced = [name for name in kept if _NAME.fullmatch(name)]
        installed.names = [*installed.replaced,
                           *(name for name in new_names if name not in installed.replaced)]
        return installed

    @staticmethod
    def _backup_directory(directory_fd: int, name: str, *, create: bool
                          ) -> InstalledSignatures:
        if create:
            os.mkdir(name, 0o700, dir_fd=directory_fd)
        backup_fd = _open_directory(name, directory_fd)
        made = os.fstat(backup_fd)
        if made.st_uid != os.geteuid() or made.st_mode & 0o077:  # swapped for another one
            os.close(backup_fd)
            raise SignatureError(f"{name} in the database directory was replaced")
        return InstalledSignatures(directory_fd, name, backup_fd)

    @staticmethod
    def _install_one(installed: InstalledSignatures, name: str, source: Path,
                     owner: os.stat_result) -> None:
        directory_fd = installed.directory_fd
        temporary = f".{name}.{secrets.token_hex(8)}.new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=directory_fd)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
                shutil.copyfileobj(data, out, 1024 * 1024)
                os.fchmod(out.fileno(), 0o644)
                if os.geteuid() == 0:
                    os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
            with contextlib.suppress(FileNotFoundError):
                # the entry itself (a planted link stays a link), never what it points to
                os.link(name, name, src_dir_fd=directory_fd, dst_dir_fd=installed.backup_fd,
                        follow_symlinks=False)
                installed.replaced.append(name)
            installed.names.append(name)
            os.replace(temporary, name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory_fd)
            raise

    def reload(self, wait: float = 60.0) -> bool:
        """Tell clamd; False if it is not running (it reads the files when it starts)."""
        if self.clamd_socket is None or not self.clamd_socket.exists():
            return False
        reload_clamd(str(self.clamd_socket), wait)
        return True
