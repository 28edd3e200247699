"""The wire format on both hops (vendor -> agent over SSH, agent -> root's installer over
a local socket): a header line announcing the size, the bundle bytes, then one JSON result
line back.  The size makes an interrupted transfer an explicit, reported event instead of
a tar file that merely happens to end early.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from portcullis.update.bundle import BundleRejected, StorageError

MAGIC = b"PORTCULLIS-BUNDLE/1"
_HEADER = re.compile(rb"PORTCULLIS-BUNDLE/1 size=(\d{1,15})\n")
CHUNK = 256 * 1024
_MIB = 1024 * 1024
# How long one installation may run: the installer unit's RuntimeMaxSec (systemd ends one
# that runs longer, and the next installation undoes what it left live unjudged).
INSTALL_MAX_SECONDS = 2 * 3600
# How long the agent waits for the installer's answer once it has handed the bundle over:
# longer than an installation may run, or it reports a failure while the update goes on.
ANSWER_WAIT = INSTALL_MAX_SECONDS + 300


def header(size: int) -> bytes:
    return MAGIC + f" size={size}\n".encode()


def ensure_room(directory: Path, needed: int, keep_free: int) -> None:
    """StorageError unless ``needed`` bytes fit in ``directory``'s file system with
    ``keep_free`` bytes still free afterwards."""
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        raise StorageError(f"cannot tell the free space in {directory}: {exc}") from None
    free = stat.f_bavail * stat.f_frsize
    if free - needed < keep_free:
        raise StorageError(f"{directory} has {free // _MIB} MiB free: a bundle needing "
                           f"{-(-needed // _MIB)} MiB there would leave less than the "
                           f"{keep_free // _MIB} MiB kept free")


def receive(source: IO[bytes], sink: IO[bytes], max_bytes: int,
            room: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Copy one announced bundle from ``source`` to ``sink``; return (size, sha256).

    BundleRejected if the header is wrong, the size is over ``max_bytes``, or the stream
    ends before the announced size (the sender went away); StorageError if ``sink`` cannot
    take it (a full disk), or ``room(size)`` says there is no room for it.
    """
    line = source.readline(64)
    if not line:
        raise BundleRejected("transfer interrupted before it started (no data)")
    match = _HEADER.fullmatch(line)
    if not match:
        raise BundleRejected("not a bundle transfer (bad header)")
    size = int(match.group(1))
    if size > max_bytes:
        raise BundleRejected(f"bundle of {size} bytes is over the limit of {max_bytes}")
    if room is not None:
        room(size)   # before a byte is written
    digest = hashlib.sha256()
    received = 0
    # read1: whatever has arrived (read() would wait for a whole chunk or the end).
    read = getattr(source, "read1", source.read)
    while received < size:
        chunk = read(min(CHUNK, size - received))
        if not chunk:
            raise BundleRejected(f"transfer interrupted: received {received} of {size} bytes")
        digest.update(chunk)
        try:
            sink.write(chunk)
        except OSError as exc:
            raise StorageError(f"cannot keep the bundle: {exc}") from None
        received += len(chunk)
    try:
        sink.flush()
    except OSError as exc:
        raise StorageError(f"cannot keep the bundle: {exc}") from None
    return size, digest.hexdigest()


def send(source: IO[bytes], size: int, write: Callable[[bytes], Any],
         progress: Callable[[int], None] | None = None) -> None:
    """Write the header and ``size`` bytes of ``source`` through ``write``."""
    write(header(size))
    sent = 0
    while sent < size:
        chunk = source.read(min(CHUNK, size - sent))
        if not chunk:
            raise OSError(f"bundle file shrank while sending ({sent} of {size} bytes)")
        write(chunk)
        sent += len(chunk)
        if progress is not None:
            progress(sent)


def result_line(result: dict[str, Any]) -> bytes:
    return (json.dumps(result, sort_keys=True) + "\n").encode()


def parse_result(text: str) -> dict[str, Any] | None:
    """The last JSON object line of ``text`` with an ``outcome``, or None."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "outcome" in data:
                return data
    return None
