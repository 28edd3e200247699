"""The Store interface: a small SQL surface that every backend provides."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]
Params = Sequence[Any] | Mapping[str, Any]

# Rows ``Store.purge`` deletes a transaction: a few milliseconds of the write lock.
PURGE_BATCH = 2000


class StoreError(Exception):
    """The store cannot be used (locked, full, corrupt); callers answer 4xx."""


class Store(abc.ABC):
    """Transactions and parameterised SQL (``?`` placeholders, portable types only).

    Repositories write plain SQL against this; a backend translates placeholders and
    maps its driver's errors to ``StoreError``.
    """

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement for each parameter row."""

    @abc.abstractmethod
    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT and return the new row's id."""

    @abc.abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row a SELECT yields."""

    @abc.abstractmethod
    def query_values(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row a SELECT yields, as plain tuples in column order: for the hot
        lookups (hundreds of rows a message) where building a mapping per row costs as
        much as the query."""

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = (), default: Any = None) -> Any:
        rows = self.query_values(sql, params)
        return default if not rows else rows[0][0]

    def purge(self, table: str, where: str, params: Sequence[Any] = (), *,
              key: str = "rowid", order: str = "", most: int | None = None,
              update: str = "", values: Sequence[Any] = (),
              batch: int = PURGE_BATCH) -> int:
        """``DELETE FROM table WHERE where``, ``batch`` rows a transaction; return how
        many went.  Given ``update`` (a SET clause, its placeholders' ``values``), that
        UPDATE instead, in the same batches; return how many rows changed.

        One DELETE of a large backlog (a spam run's greylist entries, a day of one-off
        Bayes tokens: a million rows took 4.6 s here) holds the store's one write lock
        throughout, and every gateway write waits behind it (past the busy timeout the
        message is deferred); between batches they get in.  ``key`` names a row (a
        WITHOUT ROWID table's primary key).  ``order`` says which rows go first and
        ``most`` how many go at most.  An update walks the rows in rowid order, each
        once (its rows may still match ``where`` once changed).  ``table``, ``where``,
        ``key``, ``order`` and ``update`` are code's, never data.  Call it outside a
        transaction, or the batches join that one.
        """
        if update:
            return self._update_in_batches(table, where, params, update, values, batch)
        ordered = f" ORDER BY {order}" if order else ""
        removed = 0
        while most is None or removed < most:
            take = batch if most is None else min(batch, most - removed)
            # The batch is found first, a read that holds no lock (finding it can mean a
            # scan or a sort of the table), then deleted by key if it still matches.
            keys = [row[0] for row in self.query_values(
                f"SELECT {key} FROM {table} WHERE {where}{ordered} LIMIT ?",  # noqa: S608
                (*params, take))]
            if keys:
                removed += self.execute(
                    f"DELETE FROM {table} WHERE {key} IN"  # noqa: S608 - see the docstring
                    f" ({','.join('?' * len(keys))}) AND ({where})", (*keys, *params))
            if len(keys) < take:
                break
        return removed

    def _update_in_batches(self, table: str, where: str, params: Sequence[Any],
                           update: str, values: Sequence[Any], batch: int) -> int:
        changed, after = 0, -(2 ** 63)
        while True:
            # The batch's last row, then the rows up to it, each once, whatever was
            # written in between.
            rowids = self.query_values(
                f"SELECT rowid FROM {table} WHERE rowid > ? AND ({where})"  # noqa: S608
                " ORDER BY rowid LIMIT ?", (after, *params, batch))
            if rowids:
                changed += self.execute(
                    f"UPDATE {table} SET {update} WHERE rowid > ?"  # noqa: S608
                    f" AND rowid <= ? AND ({where})",
                    (*values, after, rowids[-1][0], *params))
            if len(rowids) < batch:
                return changed
            after = rowids[-1][0]

    @abc.abstractmethod
    @contextlib.contextmanager
    def transaction(self, *, wait: float | None = None) -> Iterator[None]:
        """Group statements atomically; nested use joins the outer transaction.

        ``wait``: the longest the outermost one waits, in seconds, for another writer to
        finish (StoreError past it); None, as long as any statement does.  For writes
        that can be left for later, which must not hold up mail."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Bring every component's schema up to date."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections held by this process."""

    # -- the write-ahead log ---------------------------------------------------------------

    @abc.abstractmethod
    def checkpoint_elsewhere(self) -> None:
        """Stop this thread's commits from folding the write-ahead log back into the
        database; the caller runs ``checkpoint`` from another thread instead (a no-op
        where the store keeps no such log)."""

    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Fold the write-ahead log back into the database as far as readers allow,
        without waiting for them or for the writer (a no-op where there is no such
        log)."""

    # -- a change counter for caches in other processes -----------------------------------

    def bump_generation(self) -> None:
        """Tell every process that configuration in the store changed."""
        self.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def generation(self) -> int:
        return int(self.scalar("SELECT value FROM meta WHERE key = 'generation'", default=0))
