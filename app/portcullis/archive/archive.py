"""Writing, finding, reading and purging archived messages."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import heapq
import json
import logging
import os
import secrets
import shutil
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from portcullis.addresses import domain_of
from portcullis.policy import VIRUS_SYMBOL, Decision, Symbol
from portcullis.store import Store, StoreError

log = logging.getLogger(__name__)

_NEW_SEGMENT = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
# Every message's whole text: the gateway writes a segment, the services' group reads it
# (the web UI's message page and release), other users never (the process umask, 022
# under ``make run``, let them); the umask may take more away.
SEGMENT_MODE = 0o640
# On the corpus (1,500 messages, 5.5 KB on average) level 1 compresses in two thirds of
# level 5's time (62 against 93 us a message) to 6% more bytes (41.7% of the original
# against 39.3%): the archive is kept for days, the CPU is spent on every message.
COMPRESS_LEVEL = 1
SEGMENT_BYTES = 64 * 1024 * 1024     # a writer starts a new segment file past this size
MAX_SEARCH = 1000                    # messages one search returns at most (a page)
MAX_OFFSET = 10**9                   # SQLite takes 64-bit numbers; a larger one was an error
MAX_ARMS = 100                       # domains one query reads (SQLite: 500 SELECTs at most)


class ArchiveError(Exception):
    """The archive cannot take a message now (disk full, store locked): answer 4xx."""


class _RandomPool:
    """Kernel randomness fetched 4 KiB at a time: one getrandom() per message cost more
    than the rest of naming it."""

    def __init__(self) -> None:
        self._pool = b""

    def take(self, size: int) -> bytes:
        if len(self._pool) < size:
            self._pool = secrets.token_bytes(4096)
        chunk, self._pool = self._pool[:size], self._pool[size:]
        return chunk


_random = _RandomPool()


def new_message_id(when: float | None = None) -> str:
    """Sortable and unguessable: ``20261129T021530-3f9a2c1d4e``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if when is None else when))
    return f"{stamp}-{_random.take(5).hex()}"


@dataclass
class ArchivedMessage:
    id: str
    received: float
    direction: str
    client_ip: str
    helo: str
    mail_from: str
    recipients: list[str]
    subject: str
    verdict: str
    reason: str
    score: float
    symbols: list[Symbol]
    size: int
    path: str
    delivery: str
    released: float | None
    released_to: dict[str, float]   # recipient -> when a release delivered it to them

    @property
    def delivered_on_arrival(self) -> bool:
        """Whether the internal host took the message when it came (so every recipient
        has it already)."""
        return self.verdict in ("accept", "tag") and self.delivery[:1] == "2"

    @property
    def deferred(self) -> bool:
        """Whether the sender was told to try again later (4xx, by the filter or the
        internal host): its server normally sends the message again by itself."""
        return self.verdict == "tempfail" or (
            self.verdict in ("accept", "tag") and self.delivery[:1] == "4")

    @property
    def kept_back(self) -> bool:
        """Whether the message did not reach its recipients when it came: the filter
        refused it, or the internal host did (a wanted message it refused, too big for
        it, say, is released once the host is fixed).  Not while its delivery is under
        way (no outcome yet)."""
        return self.verdict in ("reject", "tempfail") or (
            bool(self.delivery) and not self.delivered_on_arrival)

    @property
    def virus(self) -> bool:
        """Whether the virus scanner found a virus in it: as in Proxmox Mail Gateway's
        virus quarantine, only the super administrator may release it."""
        return any(s.name == VIRUS_SYMBOL for s in self.symbols)

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["symbols"] = [s.to_json() for s in self.symbols]
        return data


@dataclass(eq=False)
class _Segment:
    """The file one thread of one process appends the bodies of one day to."""

    name: str        # relative to the archive root
    day: str         # YYYY/MM/DD
    fd: int
    pid: int         # the process that opened it (a forked child opens its own)
    size: int = 0
    closed: bool = False


class Archive:
    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = root
        # Small bodies are written on the event loop, large ones in worker threads: each
        # thread appends to a segment of its own, so none waits for another's write.
        self._local = threading.local()
        self._segments: list[_Segment] = []       # every one open, for close()
        self._segments_lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------

    def write_body(self, message_id: str, content: bytes) -> str:
        """Compress a body and append it to this thread's segment file of the message's
        day; return where it is (``YYYY/MM/DD/segment-<id>.gz#<offset>+<length>``).
        CPU and I/O: large bodies belong in a worker thread.

        One file per message cost more than the rest of archiving it (creating a file
        is the slowest thing a file system does, and a busy gateway makes millions).  A
        segment is a series of whole gzip members (``zcat`` reads it), written by one
        thread only, so offsets are known without asking.  Nothing refers to a body
        before ``index`` records it; bytes a crash or a failed index left in a segment
        are never read, and go with their day's directory once it is past retention.
        """
        day = f"{message_id[0:4]}/{message_id[4:6]}/{message_id[6:8]}"
        compressed = gzip.compress(content, compresslevel=COMPRESS_LEVEL, mtime=0)
        segment: _Segment | None = getattr(self._local, "segment", None)
        if segment is None or segment.closed or segment.day != day \
                or segment.pid != os.getpid():
            self._retire(segment)
            segment = self._local.segment = self._open_segment(day, message_id)
        start = segment.size
        try:
            view = memoryview(compressed)
            while view:
                view = view[os.write(segment.fd, view):]
        except OSError as exc:
            # Disk full: take the partial member back, and start a fresh segment next
            # time (this one's end is no longer known for sure).
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, start)
                if start == 0:
                    (self.root / segment.name).unlink()
            self._retire(segment)
            raise ArchiveError(f"cannot write archive file: {exc.strerror or exc}") from exc
        segment.size += len(compressed)
        if segment.size >= SEGMENT_BYTES:
            self._retire(segment)
        return f"{segment.name}#{start}+{len(compressed)}"

    def _open_segment(self, day: str, message_id: str) -> _Segment:
        name = f"{day}/segment-{message_id}.gz"       # message ids are unique
        path = self.root / name
        try:
            fd = _create_segment(path)
        except OSError as exc:
            raise ArchiveError(f"cannot write archive file: {exc.strerror or exc}") from exc
        segment = _Segment(name=name, day=day, fd=fd, pid=os.getpid())
        with self._segments_lock:
            self._segments.append(segment)
        return segment

    def _retire(self, segment: _Segment | None) -> None:
        """Close a segment (a forked child only forgets its parent's)."""
        if segment is None:
            return
        with self._segments_lock:
            if segment in self._segments:
                self._segments.remove(segment)
            if segment.closed:
                return
            segment.closed = True
        if segment.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(segment.fd)

    def close(self) -> None:
        """Close the segment files this process appends to (new ones open when needed)."""
        with self._segments_lock:
            segments = list(self._segments)
        for segment in segments:
            self._retire(segment)

    def index(self, *, message_id: str, received: float, direction: str, client_ip: str,
              helo: str, mail_from: str, recipients: list[str], subject: str,
              decision: Decision, size: int, path: str, delivery: str = "") -> None:
        """Record a message whose body ``write_body`` stored.  ``delivery``: the reply a
        refused message got (known before it is archived); a delivered one's outcome is
        written by ``set_delivery`` once the next hop answered."""
        try:
            with self.store.transaction():
                self.store.execute(
                    "INSERT INTO archive (id, received, direction, client_ip, helo, mail_from,"
                    " subject, verdict, reason, score, symbols, size, path, delivery)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (message_id, received, direction, client_ip, helo[:255], mail_from,
                     subject[:998], decision.verdict.value, decision.reason, decision.score,
                     json.dumps([s.to_json() for s in decision.symbols]), size, path,
                     delivery[:300]))
                self.store.executemany(
                    "INSERT INTO archive_rcpt (archive_id, address, domain, received)"
                    " VALUES (?,?,?,?)",
                    [(message_id, r, domain_of(r), received) for r in recipients])
        except StoreError as exc:
            _remove_file(self.root, path)
            raise ArchiveError(str(exc)) from exc

    def set_delivery(self, message_id: str, delivery: str, verdict: str | None = None,
                     reason: str = "") -> None:
        """Record what became of the message (best effort: the mail matters more); with
        ``verdict``, what it amounted to (a wanted message the internal host refused is
        rejected or deferred by it, ``reason`` saying so)."""
        try:
            if verdict:
                self.store.execute(
                    "UPDATE archive SET delivery = ?, verdict = ?, reason = ? WHERE id = ?",
                    (delivery[:300], verdict, reason, message_id))
            else:
                self.store.execute("UPDATE archive SET delivery = ? WHERE id = ?",
                                   (delivery[:300], message_id))
        except StoreError as exc:
            log.warning("archive %s: delivery outcome not recorded: %s", message_id, exc)

    def mark_released(self, message_id: str, outcome: str | None = None) -> None:
        """Record that a release delivered the message, and with ``outcome`` what it did
        in place of the delivery's (without, the delivery stays as it is)."""
        if outcome is None:
            self.store.execute("UPDATE archive SET released = ? WHERE id = ?",
                               (time.time(), message_id))
        else:
            self.store.execute("UPDATE archive SET released = ?, delivery = ? WHERE id = ?",
                               (time.time(), outcome[:300], message_id))

    def claim_release(self, message_id: str, recipients: list[str]) -> list[str]:
        """Mark the recipients not released to yet as released, and return them: of two
        releases at once (a double click, two administrators) only one delivers."""
        now = time.time()
        with self.store.transaction():
            return [r for r in recipients if self.store.execute(
                "UPDATE archive_rcpt SET released = ? WHERE archive_id = ? AND address = ?"
                " AND released IS NULL", (now, message_id, r))]

    def set_released(self, message_id: str, recipients: list[str], released: bool) -> None:
        """Record a release's outcome per recipient: delivered now, or (a claim that
        failed) not released after all."""
        self.store.executemany(
            "UPDATE archive_rcpt SET released = ? WHERE archive_id = ? AND address = ?",
            [(time.time() if released else None, message_id, r) for r in recipients])

    # -- reading -----------------------------------------------------------------------

    def get(self, message_id: str) -> ArchivedMessage | None:
        row = self.store.query_one("SELECT * FROM archive WHERE id = ?", (message_id,))
        return self._from_row(row) if row else None

    def read_body(self, message: ArchivedMessage) -> bytes:
        name, _, span = message.path.partition("#")
        try:
            if not span:                 # one file per message (archives before segments)
                with gzip.open(self.root / name, "rb") as handle:
                    return handle.read()
            start, _, length = span.partition("+")
            with open(self.root / name, "rb") as handle:
                member = os.pread(handle.fileno(), int(length), int(start))
            if len(member) != int(length):
                raise EOFError("the segment file ends early")
            return gzip.decompress(member)
        except FileNotFoundError:
            # Not an OS error to show an administrator (nor where the archive lives).
            raise ArchiveError(f"the body of {message.id} is no longer in the archive: its"
                               " day's files were removed (retention)") from None
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            # An OS error's own text names the file: not for administrators to see.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ArchiveError(f"archived body of {message.id} is unreadable: {reason}"
                               ) from exc

    def search(self, *, since: float | None = None, until: float | None = None,
               sender: str = "", recipient: str = "", subject: str = "", verdict: str = "",
               client_ip: str = "", domains: list[str] | None = None, limit: int = 100,
               offset: int = 0) -> list[ArchivedMessage]:
        """Newest first.  Text filters are case-blind substrings (in any script: the
        store's casefold()); ``domains`` restricts
        to messages for those recipient domains (a domain administrator's view), and the
        recipient filter then matches those domains' recipients only: it must not tell
        which of another domain's addresses got the message too."""
        limit, offset = min(max(limit, 1), MAX_SEARCH), min(max(offset, 0), MAX_OFFSET)
        where: list[str] = []
        params: list[object] = []
        for column, value in (("a.mail_from", sender), ("a.subject", subject),
                              ("a.client_ip", client_ip)):
            if value:
                where.append(f"casefold({column}) LIKE ? ESCAPE '\\'")
                params.append(f"%{_like(value.casefold())}%")
        if verdict:
            where.append("a.verdict = ?")
            params.append(verdict)
        on_message = bool(where)
        # Within domains, the recipient rows (which keep the arrival time) lead.
        by = "a" if domains is None else "r"
        for condition, value in ((f"{by}.received >= ?", since), (f"{by}.received < ?", until)):
            if value is not None:
                where.append(condition)
                params.append(value)
        if recipient:
            where.append("casefold(r.address) LIKE ? ESCAPE '\\'")
            params.append(f"%{_like(recipient.casefold())}%")
        if domains is not None:
            return self._search_domains(domains, where, params, on_message, limit, offset)
        if recipient:       # of any of the message's recipients
            where[-1] = ("EXISTS (SELECT 1 FROM archive_rcpt r"  # noqa: S608
                         f" WHERE r.archive_id = a.id AND {where[-1]})")
        rows = self.store.query(
            # Only fixed SQL fragments with ? placeholders are joined here.
            f"SELECT a.* FROM archive a WHERE {' AND '.join(where) or '1 = 1'}"  # noqa: S608
            " ORDER BY a.received DESC, a.id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [self._from_row(r) for r in rows]

    def _search_domains(self, domains: list[str], where: list[str], params: list[object],
                        on_message: bool, limit: int, offset: int) -> list[ArchivedMessage]:
        """``search`` within recipient domains, read from each domain's newest recipient
        rows down (index archive_rcpt_domain_received), one arm per domain merged in
        order by the store: going down the whole archive and asking each message for a
        recipient in these domains read every message when the domains get little mail.
        ``where`` may name the recipient row (r) and, if ``on_message``, the message (a).
        """
        arm = ("SELECT DISTINCT r.received, r.archive_id FROM archive_rcpt r"  # noqa: S608
               + (" JOIN archive a ON a.id = r.archive_id" if on_message else "")
               + f" WHERE {' AND '.join(['r.domain = ?', *where])}")
        chunks = [domains[n:n + MAX_ARMS] for n in range(0, len(domains), MAX_ARMS)]
        # One query skips the offset itself; the pages of several are merged here.
        skip = offset if len(chunks) == 1 else 0
        pages = [self.store.query_values(
            " UNION ".join([arm] * len(chunk)) + " ORDER BY 1 DESC, 2 DESC LIMIT ? OFFSET ?",
            [*(value for domain in chunk for value in (domain, *params)),
             offset - skip + limit, skip]) for chunk in chunks]
        ids = list(dict.fromkeys(
            archive_id for _, archive_id in heapq.merge(*pages, reverse=True)))
        ids = ids[offset - skip:offset - skip + limit]
        if not ids:
            return []
        rows = {row["id"]: row for row in self.store.query(
            f"SELECT * FROM archive WHERE id IN ({','.join('?' * len(ids))})", ids)}  # noqa: S608
        # A message purged in between is left out.
        return [self._from_row(rows[i]) for i in ids if i in rows]

    def _from_row(self, row: dict) -> ArchivedMessage:
        rows = self.store.query("SELECT address, released FROM archive_rcpt"
                                " WHERE archive_id = ? ORDER BY rowid", (row["id"],))
        recipients = [r["address"] for r in rows]
        symbols = [Symbol.from_json(s) for s in json.loads(row["symbols"])]
        return ArchivedMessage(
            id=row["id"], received=row["received"], direction=row["direction"],
            client_ip=row["client_ip"], helo=row["helo"], mail_from=row["mail_from"],
            recipients=recipients, subject=row["subject"], verdict=row["verdict"],
            reason=row["reason"], score=row["score"], symbols=symbols, size=row["size"],
            path=row["path"], delivery=row["delivery"], released=row["released"],
            released_to={r["address"]: r["released"] for r in rows
                         if r["released"] is not None})

    # -- retention ---------------------------------------------------------------------

    def purge(self, retention_days: int, now: float | None = None) -> int:
        """Delete messages older than the retention; return how many went."""
        now = time.time() if now is None else now
        cutoff = now - retention_days * 86400
        removed = 0
        try:
            while True:
                rows = self.store.query(
                    "SELECT id, path FROM archive WHERE received < ? LIMIT 500", (cutoff,))
                if not rows:
                    break
                for row in rows:
                    _remove_file(self.root, row["path"])
                with self.store.transaction():
                    self.store.executemany("DELETE FROM archive WHERE id = ?",
                                           [(r["id"],) for r in rows])
                removed += len(rows)
        finally:
            # Also when the store cannot write (a full disk: "database or disk is full"):
            # the bodies of days past the retention are what makes room for it again.
            self._sweep_days(cutoff, now)
        return removed

    def _sweep_days(self, cutoff: float, now: float) -> None:
        """Remove the directories of days wholly past the retention with their segments
        (the bodies of a day's messages purged so far are unindexed, never read again),
        and of past days the purge has emptied.  An empty directory of a day not over yet
        stays: a gateway may be about to put its first segment there."""
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.glob("*/*/*"), reverse=True):
            if not directory.is_dir():
                continue
            day_end = _day_end(directory)
            if day_end <= cutoff:
                shutil.rmtree(directory, ignore_errors=True)
            elif day_end <= now and not any(directory.iterdir()):
                with contextlib.suppress(OSError):      # a file arrived after all
                    directory.rmdir()


def _create_segment(path: Path) -> int:
    """Create a segment file, and its day's directory for the day's first one.  A purge
    in another process may sweep an empty directory before the file is in it (it leaves
    the current day's alone, so only after the clock moved): the second try is enough."""
    for _ in range(2):
        try:
            return os.open(path, _NEW_SEGMENT, SEGMENT_MODE)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, _NEW_SEGMENT, SEGMENT_MODE)


def _remove_file(root: Path, path: str) -> None:
    """Delete a body stored in a file of its own (archives before segments); a body in a
    segment stays until its day's directory goes."""
    if "#" not in path:
        (root / path).unlink(missing_ok=True)


def _day_end(directory: Path) -> float:
    """When the day a ``YYYY/MM/DD`` directory holds ends (infinity: not such a name)."""
    try:
        day = datetime.datetime.strptime("/".join(directory.parts[-3:]), "%Y/%m/%d")
    except ValueError:
        return float("inf")
    return day.replace(tzinfo=datetime.UTC).timestamp() + 86400


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
