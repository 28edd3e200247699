"""SQLite (WAL) store: the embedded default, one connection per thread."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from portcullis.addresses import domain_of
from portcullis.store import migrations
from portcullis.store.base import Params, Row, Store, StoreError

BUSY_TIMEOUT_MS = 5000
# How long a process with a schema to bring up to date waits for the writer before it:
# another process's migration at boot takes as long as its tables are big, and giving up
# after a statement's wait would leave this process's service down.
MIGRATION_WAIT_MS = 600_000
# What the write-ahead log is cut back to when it starts over: without a limit SQLite
# keeps the file at its largest (one bulk training or purge: gigabytes) for as long as
# any connection stays open, which on the appliance is for ever.
WAL_SIZE_LIMIT = 32 * 1024 * 1024
# The store is shared by the services of one group (the appliance's ``portcullis``) and
# never readable by other users: it holds administrators' password hashes and session
# keys, the archive index and the Bayes tokens.  The umask may take more away, never add.
FILE_MODE = 0o660
OTHERS = 0o007


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _domain_of(value: object) -> object:
    return domain_of(value) if isinstance(value, str) else value


def _use_wal(conn: sqlite3.Connection) -> None:
    """Turn the file to WAL (a lasting property of the file: a no-op once done).

    SQLite's busy handler does not cover this change: a process that opens a new store
    while another one is setting it up (the gateway's workers and the web UI at first
    boot) gets "database is locked" at once.  So wait here, as long as a busy statement
    would.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Errors:
    """Turns the driver's errors into ``StoreError`` (an ``IntegrityError`` stays one:
    callers catch it by name).  A class, not a generator: it wraps every statement, and
    a generator-based context manager cost as much as a simple statement."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
            raise StoreError(f"store {self.path}: {exc}") from exc


class _Transaction:
    """``SQLiteStore.transaction``: the outermost one begins and commits (or rolls back
    on any exception), nested ones join it."""

    __slots__ = ("store", "wait")

    def __init__(self, store: SQLiteStore, wait: float | None) -> None:
        self.store = store
        self.wait = wait

    def __enter__(self) -> None:
        store = self.store
        conn = store._conn()
        local = store._local
        if local.depth:
            local.depth += 1
            return
        if self.wait is None:
            with store._errors:
                conn.execute("BEGIN IMMEDIATE")
        else:
            with store._waiting(int(self.wait * 1000)), store._errors:
                conn.execute("BEGIN IMMEDIATE")
        local.depth = 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        store = self.store
        local = store._local
        if local.depth > 1:
            local.depth -= 1
            return
        local.depth = 0
        if kind is not None:
            with contextlib.suppress(sqlite3.Error):
                local.conn.execute("ROLLBACK")
            return
        try:
            with store._errors:
                local.conn.execute("COMMIT")
        except (sqlite3.Error, StoreError):
            # A COMMIT that failed (a deferred constraint, a full disk) may leave the
            # transaction open, and every later BEGIN on this connection would fail.
            with contextlib.suppress(sqlite3.Error):
                local.conn.execute("ROLLBACK")
            raise


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._errors = _Errors(path)
        path.parent.mkdir(parents=True, exist_ok=True)

    # Each thread (waitress workers, asyncio's executor) gets its own connection; the
    # gateway's event loop uses one.  WAL lets readers run beside the one writer.
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._create_file()
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                _use_wal(conn)
                # NORMAL in WAL mode is durable across process crashes (not power loss of
                # the last commits), and saves an fsync per message.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
                conn.execute("PRAGMA foreign_keys = ON")
                # casefold(x): case-blind searches in any script (the archive's); SQLite's
                # own LIKE and lower() fold ASCII letters only.
                conn.create_function("casefold", 1, _casefold, deterministic=True)
                # domain_of(address): an address's domain as domains are stored (A-labels,
                # lower case), which no LIKE on the address can match for a recipient
                # written in U-labels or capitals.
                conn.create_function("domain_of", 1, _domain_of, deterministic=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _create_file(self) -> None:
        """Create the database file with ``FILE_MODE`` less the process umask.

        SQLite itself creates it 0644 whatever the umask, which would leave the store read
        only to the other services of the ``portcullis`` group (UMask=0007) and readable
        by every user; its -wal and -shm files take the database file's mode, so this one
        file is enough.
        """
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            self._close_to_others()
        except OSError as exc:
            raise StoreError(f"cannot create store {self.path}: {exc.strerror}") from exc

    def _close_to_others(self) -> None:
        """Take other users' access away from a store an older release made under a wider
        umask (0644 under ``make run``), when its owner opens it."""
        for path in (self.path, self.path.with_name(self.path.name + "-wal"),
                     self.path.with_name(self.path.name + "-shm")):
            with contextlib.suppress(OSError):      # gone, or another user's: left as is
                status = path.stat()
                if status.st_mode & OTHERS and status.st_uid == os.geteuid():
                    path.chmod(stat.S_IMODE(status.st_mode) & ~OTHERS)

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._errors:
            return self._conn().execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        with self._errors, self.transaction():
            return self._conn().executemany(sql, rows).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        with self._errors:
            return int(self._conn().execute(sql, params).lastrowid or 0)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._errors:
            cursor = self._conn().execute(sql, params)
            rows = cursor.fetchall()
        # The column names once per query: a row factory read the cursor's description
        # (built anew at every read) for every row.
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_values(self, sql: str, params: Params = ()) -> list[tuple]:
        with self._errors:
            return self._conn().execute(sql, params).fetchall()

    def transaction(self, *, wait: float | None = None
                    ) -> contextlib.AbstractContextManager[None]:
        return _Transaction(self, wait)

    def migrate(self) -> None:
        with self._waiting(MIGRATION_WAIT_MS):
            migrations.apply(self)

    @contextlib.contextmanager
    def _waiting(self, milliseconds: int) -> Iterator[None]:
        """Meanwhile this thread's statements wait up to ``milliseconds`` for another
        writer, instead of BUSY_TIMEOUT_MS."""
        conn = self._conn()
        with self._errors:
            conn.execute(f"PRAGMA busy_timeout = {milliseconds}")
        try:
            yield
        finally:
            with self._errors:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def checkpoint_elsewhere(self) -> None:
        # By default the commit that takes the log past 1000 pages checkpoints it, with
        # two fsyncs: on the gateway's event loop (about once every 50 messages) that
        # stalls every session of the worker for as long as the disk takes, a few ms on
        # an idle disk and far more on a busy one.
        with self._errors:
            self._conn().execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        # One that cannot run now (the disk full, the file locked) is tried again next
        # time; the commits themselves report what is wrong with the store.
        with contextlib.suppress(sqlite3.Error, StoreError):
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
