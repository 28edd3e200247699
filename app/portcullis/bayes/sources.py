"""Where training and evaluation messages come from: a maildir, an mbox file, a folder of
message files (``.eml`` or any name), or a list file naming message files.

Each message is yielded as (label, bytes) with a label that names it in messages to the
user; a file that cannot be read is yielded as (label, OSError) so the caller reports it
and goes on.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

LIST_SUFFIXES = (".txt", ".lst", ".list")
MAX_FILE_BYTES = 64 * 1024 * 1024        # larger files are reported, not read
_MBOX_SEPARATOR = re.compile(rb"^From \S+ +\S.*\d{4}\s*$")

Item = tuple[str, bytes | OSError]


class SourceError(ValueError):
    """A training or evaluation source that cannot be used at all."""


class _Entry(NamedTuple):
    path: Path
    index: int | None = None   # the message's place in an mbox file
    listed: bool = False       # found by listing a folder (see _read)


def _read(path: Path, *, follow: bool = True) -> bytes | OSError:
    """A file's bytes.  In a folder that was listed (a user's maildir, say) a symbolic
    link is not followed, nor anything but a regular file opened: training runs as root
    and must not read /etc/shadow for whoever can write to that folder."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            return OSError("a symbolic link (not followed in a folder)")
        return exc
    with open(fd, "rb") as handle:
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                return OSError("not a regular file")
            if status.st_size > MAX_FILE_BYTES:
                return OSError(f"file too large ({status.st_size:,} bytes)")
            return handle.read()
        except OSError as exc:
            return exc


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _list_paths(path: Path) -> list[Path]:
    """Paths named in a list file; relative ones are found beside the list file or in
    the folders above it (a split list usually sits in a subfolder of its corpus)."""
    paths = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line)
        if not entry.is_absolute():
            candidates = [base / entry for base in (path.parent, *path.parent.parents)]
            entry = next((c for c in candidates[:3] if c.exists()), path.parent / entry)
        paths.append(entry)
    return paths


def count(source: Path) -> int:
    """How many items ``messages(source)`` will yield (for progress display)."""
    return sum(1 for _ in _entries(source))


def _entries(source: Path) -> Iterator[_Entry]:
    if source.is_dir():
        folders = [source / "cur", source / "new"] if _is_maildir(source) else [source]
        for folder in folders:
            if folder.is_dir():
                # Symbolic links are listed, to be reported as skipped.
                yield from (_Entry(p, listed=True) for p in sorted(folder.iterdir())
                            if (p.is_symlink() or p.is_file())
                            and not p.name.startswith("."))
    elif source.is_file() and source.suffix.lower() in LIST_SUFFIXES:
        yield from (_Entry(p) for p in _list_paths(source))
    elif source.is_file():
        if _looks_like_mbox(source):
            data = _read(source)
            for index in range(len(_split_mbox(data)) if isinstance(data, bytes) else 1):
                yield _Entry(source, index)
        else:
            yield _Entry(source)
    else:
        raise SourceError(f"{source}: no such file or folder")


def messages(source: Path) -> Iterator[Item]:
    """Yield (label, content or error) for every message in a source."""
    mbox_cache: dict[Path, list[bytes] | OSError] = {}
    for path, index, listed in _entries(source):
        if index is not None:
            if path not in mbox_cache:
                data = _read(path)
                mbox_cache.clear()
                mbox_cache[path] = _split_mbox(data) if isinstance(data, bytes) else data
            parts = mbox_cache[path]
            yield (f"{path}#{index + 1}", parts if isinstance(parts, OSError) else parts[index])
        else:
            yield (str(path), _read(path, follow=not listed))


def _looks_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if not _MBOX_SEPARATOR.match(head.split(b"\n", 1)[0]):
        return False
    return path.suffix.lower() in (".mbox", ".mbx", "") and path.suffix.lower() != ".eml"


def _split_mbox(data: bytes) -> list[bytes]:
    """Split an mbox on ``From `` lines that follow a blank line (mboxo/mboxrd)."""
    messages: list[bytes] = []
    current: list[bytes] = []
    previous_blank = True
    for line in data.splitlines(keepends=True):
        if previous_blank and _MBOX_SEPARATOR.match(line.rstrip(b"\r\n")):
            if current:
                messages.append(b"".join(current))
            current = []
        else:
            # mboxrd quoting: ">From " (any number of >) loses one >.
            if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
                line = line[1:]
            current.append(line)
        previous_blank = line.strip() == b""
    if current:
        messages.append(b"".join(current))
    return messages
