"""The gateway's event loop leaves checkpoints (copying the write-ahead log back into the
database, with its fsyncs) to a thread: its commits only append to the log."""

import threading

import pytest

from portcullis.store import SQLiteStore, StoreError, open_store
from portcullis.store.sqlite import WAL_SIZE_LIMIT

pytestmark = pytest.mark.gateway

PAGE = 4096


def test_commits_leave_the_log_to_the_checkpoint_thread(tmp_path):
    store = open_store(tmp_path)
    store.execute("CREATE TABLE filler (data BLOB)")
    store.checkpoint_elsewhere()
    database, wal = tmp_path / "portcullis.db", tmp_path / "portcullis.db-wal"
    # Past SQLite's automatic checkpoint (1000 pages): without one, the log keeps growing
    # instead of starting over, and the database file has none of the rows yet.
    for _ in range(1300):
        store.execute("INSERT INTO filler (data) VALUES (?)", (b"x" * PAGE,))
    assert wal.stat().st_size > 1200 * PAGE
    assert database.stat().st_size < 100 * PAGE

    worker = threading.Thread(target=store.checkpoint)   # a connection of its own
    worker.start()
    worker.join()
    assert database.stat().st_size > 1300 * PAGE       # copied back
    assert store.scalar("SELECT count(*) FROM filler") == 1300


def test_without_the_hand_over_commits_checkpoint_as_sqlite_does(tmp_path):
    store = open_store(tmp_path)
    store.execute("CREATE TABLE filler (data BLOB)")
    for _ in range(1300):
        store.execute("INSERT INTO filler (data) VALUES (?)", (b"x" * PAGE,))
    # The log was copied back at 1000 pages and started over: it never grew past that.
    assert (tmp_path / "portcullis.db-wal").stat().st_size < 1100 * PAGE
    assert (tmp_path / "portcullis.db").stat().st_size > 900 * PAGE


def test_a_checkpoint_that_cannot_run_is_left_for_next_time(tmp_path):
    (tmp_path / "store").mkdir()
    store = SQLiteStore(tmp_path / "store")      # a directory: SQLite cannot open it
    with pytest.raises(StoreError):
        store.execute("SELECT 1")                 # what the commits would report
    store.checkpoint()                            # the checkpoint thread carries on


def test_the_log_shrinks_back_after_a_spike(tmp_path):
    """One large transaction (a migration, bulk training, a purge) grows the log; once
    checkpointed, the next commit starts it over and cuts it back to WAL_SIZE_LIMIT,
    rather than the file keeping its largest size for as long as the gateway runs."""
    store = open_store(tmp_path)
    store.execute("CREATE TABLE filler (data BLOB)")
    store.checkpoint_elsewhere()
    wal = tmp_path / "portcullis.db-wal"
    pages = WAL_SIZE_LIMIT // PAGE + 2000
    store.executemany("INSERT INTO filler (data) VALUES (?)", [(b"x" * PAGE,)] * pages)
    assert wal.stat().st_size > WAL_SIZE_LIMIT + 1000 * PAGE

    worker = threading.Thread(target=store.checkpoint)
    worker.start()
    worker.join()
    store.execute("INSERT INTO filler (data) VALUES (?)", (b"after",))
    assert wal.stat().st_size <= WAL_SIZE_LIMIT
    assert store.scalar("SELECT count(*) FROM filler") == pages + 1
