"""SQLite (WAL) store: the embedded default, one connection per thread."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from portcullis.store import migrations
from portcullis.store.base import Params, Row, Store, StoreError

BUSY_TIMEOUT_MS = 5000


def _row_factory(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
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
                conn.row_factory = _row_factory
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode is durable across process crashes (not power loss of
                # the last commits), and saves an fsync per message.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                # casefold(x): case-blind searches in any script (the archive's); SQLite's
                # own LIKE and lower() fold ASCII letters only.
                conn.create_function("casefold", 1, _casefold, deterministic=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _create_file(self) -> None:
        """Create the database file with the process umask deciding its mode.

        SQLite itself creates it 0644 whatever the umask, which would leave the store read
        only to the other services of the ``portcullis`` group (UMask=0007); its -wal and
        -shm files take the database file's mode, so this one file is enough.
        """
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create store {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._errors():
            return self._conn().execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        with self._errors(), self.transaction():
            return self._conn().executemany(sql, rows).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        with self._errors():
            return int(self._conn().execute(sql, params).lastrowid or 0)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._errors():
            return self._conn().execute(sql, params).fetchall()

    def query_values(self, sql: str, params: Params = ()) -> list[tuple]:
        with self._errors():
            cursor = self._conn().cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except BaseException:
            self._local.depth = 0
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        with self._errors():
            conn.execute("COMMIT")

    def migrate(self) -> None:
        migrations.apply(self)

    def checkpoint_elsewhere(self) -> None:
        # By default the commit that takes the log past 1000 pages checkpoints it, with
        # two fsyncs: on the gateway's event loop (about once every 50 messages) that
        # stalls every session of the worker for as long as the disk takes, a few ms on
        # an idle disk and far more on a busy one.
        with self._errors():
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
