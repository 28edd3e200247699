"""Anti-rollback state: the newest version applied per target, kept by root.

A file in a root-owned directory (not the shared store, which every service account can
write): a compromised gateway must not be able to reset it and invite a replayed bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from portcullis.update.versions import VersionError, parse_version


class StateError(Exception):
    """The state file is unreadable; the agent refuses updates rather than guess."""


@dataclass(frozen=True)
class Pending:
    """An update made live but not yet judged: ``version`` of ``target`` replaced
    ``previous``.  If it is still on record at the next start, the update was cut off
    (power loss, the installer killed) before its health check passed."""

    target: str
    version: str
    previous: str


class UpdateState:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"
        self.pending_path = state_dir / "pending.json"

    def versions(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.path}: unreadable anti-rollback state: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: unreadable anti-rollback state")
        versions: dict[str, str] = {}
        for target, version in data.items():
            try:
                parse_version(version)
            except VersionError as exc:
                raise StateError(f"{self.path}: {target}: {exc}") from None
            versions[str(target)] = version
        return versions

    def installed(self, target: str) -> str | None:
        return self.versions().get(target)

    def record(self, target: str, version: str) -> None:
        """Remember ``version`` for ``target`` (written atomically, durable before return)."""
        versions = self.versions()
        versions[target] = version
        write_atomically(self.path, (json.dumps(versions, indent=2, sort_keys=True) + "\n")
                         .encode(), 0o644)

    def begin(self, pending: Pending) -> None:
        """Note, durably, that ``pending`` is about to go live (before anything changes)."""
        self.pending_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomically(self.pending_path, (json.dumps(asdict(pending), sort_keys=True)
                                             + "\n").encode(), 0o644)

    def pending(self) -> Pending | None:
        """The update that was going live when the installer last stopped, if any."""
        try:
            data = json.loads(self.pending_path.read_bytes())
            return Pending(str(data["target"]), str(data["version"]), str(data["previous"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise StateError(f"{self.pending_path}: unreadable: {exc}") from None

    def end(self) -> None:
        """The pending update was judged (kept or undone): nothing left to recover."""
        try:
            self.pending_path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.pending_path.parent)


def write_atomically(path: Path, data: bytes, mode: int, *, owner: tuple[int, int] | None = None
                     ) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never
    a mix, even across a power cut."""
    with atomic_file(path, mode, owner=owner) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int, *, owner: tuple[int, int] | None = None
                ) -> Iterator[BinaryIO]:
    """A new file to write that replaces ``path`` (fsynced, renamed into place) when the
    block ends without an exception; on one it is removed and ``path`` stays as it was."""
    # An unpredictable name created with O_EXCL|O_NOFOLLOW (mkstemp): with a name known in
    # advance, a link placed there by whoever can write the directory would have root
    # write through it.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
