"""The SQLite store's transactions, errors and rows: what every repository relies on."""

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from pathlib import Path

import pytest

from portcullis.store import StoreError, open_store

pytestmark = pytest.mark.gateway


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path)
    store.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield store
    store.close()


def keys(store) -> list[str]:
    return [k for (k,) in store.query_values("SELECT k FROM t ORDER BY k")]


def test_a_nested_transaction_joins_the_outer_one(store):
    with store.transaction():
        store.execute("INSERT INTO t VALUES ('a', 1)")
        with store.transaction():
            store.execute("INSERT INTO t VALUES ('b', 2)")
        # Still inside the outer transaction: another connection sees nothing yet.
        other = sqlite3.connect(store.path)
        assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
        other.close()
    assert keys(store) == ["a", "b"]


def test_an_exception_rolls_the_whole_transaction_back_and_propagates(store):
    with pytest.raises(KeyError), store.transaction():
        store.execute("INSERT INTO t VALUES ('a', 1)")
        with store.transaction():
            store.execute("INSERT INTO t VALUES ('b', 2)")
        raise KeyError("x")
    assert keys(store) == []
    # The next transaction starts afresh (nothing of the failed one left open).
    with store.transaction():
        store.execute("INSERT INTO t VALUES ('c', 3)")
    assert keys(store) == ["c"]


def test_driver_errors_become_store_errors_but_integrity_errors_stay(store):
    store.execute("INSERT INTO t VALUES ('a', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        store.execute("INSERT INTO t VALUES ('a', 2)")
    with pytest.raises(StoreError):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError), store.transaction():
        store.execute("INSERT INTO no_such_table VALUES (1)")
    assert keys(store) == ["a"]


def test_rows_are_mappings_by_column_name_and_values_are_tuples(store):
    store.executemany("INSERT INTO t VALUES (?, ?)", [("a", 1), ("b", 2)])
    assert store.query("SELECT k, v AS value FROM t ORDER BY k") == [
        {"k": "a", "value": 1}, {"k": "b", "value": 2}]
    assert store.query("SELECT k FROM t WHERE k = 'none'") == []
    assert store.query_one("SELECT * FROM t WHERE k = ?", ("b",)) == {"k": "b", "v": 2}
    assert store.query_values("SELECT k, v FROM t ORDER BY k") == [("a", 1), ("b", 2)]
    assert store.scalar("SELECT v FROM t WHERE k = 'b'") == 2


def test_a_failed_commit_leaves_no_transaction_open(store):
    store.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id)"
                  " DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.execute("INSERT INTO t VALUES ('a', 1)")
        store.execute("INSERT INTO child VALUES (7)")     # fails at COMMIT only
    # The connection is usable: the failed transaction was rolled back, not left open.
    with store.transaction():
        store.execute("INSERT INTO t VALUES ('b', 2)")
    assert keys(store) == ["b"]
    assert store.scalar("SELECT count(*) FROM child") == 0


def _open_and_migrate(directory: str, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()
    open_store(Path(directory)).close()


def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path):
    """The gateway's workers (and the web UI) open a store that does not exist yet at
    the same moment on first boot: each must wait for the others' setup, none may fail
    ("database is locked" while another turns the new file to WAL)."""
    context = multiprocessing.get_context("fork")
    for attempt in range(15):
        directory = tmp_path / str(attempt)
        start = context.Barrier(4)
        procs = [context.Process(target=_open_and_migrate, args=(str(directory), start))
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * 4, f"attempt {attempt}"
        store = open_store(directory)
        assert store.scalar("PRAGMA journal_mode") == "wal"
        store.close()
