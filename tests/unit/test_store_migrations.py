"""Opening and migrating the store while other processes use it: the gateway's workers,
the web UI, the firewall monitor and the CLI all open it, at boot and at any time after."""

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator

import pytest

from portcullis.store import StoreError, migrations, open_store, sqlite

pytestmark = pytest.mark.gateway


def hold_write_lock(path, release: threading.Event, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    release.wait(30)
    conn.execute("COMMIT")
    conn.close()


@contextlib.contextmanager
def another_writer(path) -> Iterator[threading.Event]:
    """Another process's writer: a long transaction (a purge, bulk training, a migration
    of its own) holding the store's write lock until the event given is set, or the
    block ends."""
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, release, held))
    holder.start()
    try:
        assert held.wait(10)
        yield release
    finally:
        release.set()
        holder.join()


@pytest.fixture
def quick_busy_timeout(monkeypatch):
    # A writer gives up after this long: far less than the lock is held below.
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_MS", 100)


def test_a_migrated_store_opens_while_another_process_holds_the_write_lock(
        tmp_path, quick_busy_timeout):
    """Opening a store whose schema is current writes nothing, so a gateway worker
    restarted (or the web UI, or a CLI command) while the housekeeping thread purges
    opens it at once instead of failing with 'database is locked'."""
    open_store(tmp_path).close()
    with another_writer(tmp_path / "portcullis.db"):
        store = open_store(tmp_path)
        assert store.scalar("SELECT count(*) FROM schema_version") > 0
        store.close()


def test_a_store_behind_waits_for_another_writer_longer_than_a_statement_would(
        tmp_path, quick_busy_timeout):
    """A process that has to migrate waits for the writer before it (another process's
    migration at boot takes as long as the tables are big), rather than failing after a
    statement's busy timeout and leaving its service down."""
    store = open_store(tmp_path)
    # As an older release left it: without the update agent's table.
    store.execute("DROP TABLE update_history")
    store.execute("DELETE FROM schema_version WHERE component = 'updates'")
    store.close()
    with another_writer(tmp_path / "portcullis.db") as release:
        threading.Timer(1.0, release.set).start()     # ten busy timeouts
        store = open_store(tmp_path)
    assert store.scalar("SELECT count(*) FROM update_history") == 0
    assert store.scalar("SELECT version FROM schema_version WHERE component = 'updates'") \
        == len(sqlite.migrations.COMPONENTS["updates"])
    store.close()


STORE_FILES = ("portcullis.db", "portcullis.db-wal", "portcullis.db-shm")


def test_the_store_is_never_readable_by_other_users(tmp_path):
    """It holds password hashes, session keys, the archive index and the Bayes tokens:
    the services' group shares it, other users (umask 022 under ``make run``) never."""
    umask = os.umask(0o022)
    try:
        store = open_store(tmp_path)
        store.execute("INSERT INTO web_audit VALUES (0, 'admin', '::1', 'login', '')")
    finally:
        os.umask(umask)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in STORE_FILES}
    assert modes == dict.fromkeys(STORE_FILES, 0o640)
    store.close()


def test_a_store_an_older_release_left_readable_to_others_is_closed_to_them(tmp_path):
    store = open_store(tmp_path)
    for name in STORE_FILES:
        (tmp_path / name).chmod(0o664)
    store.close()
    store = open_store(tmp_path)
    assert store.scalar("SELECT count(*) FROM web_audit") == 0
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in STORE_FILES}
    assert modes == dict.fromkeys(STORE_FILES, 0o660)
    store.close()


def test_a_step_that_fails_names_itself_and_leaves_its_component_as_it_was(
        tmp_path, monkeypatch):
    """A step that cannot run on this store (one an older release left in a state the step
    did not expect) stops the opening with a StoreError naming the component and step,
    which every service reports as such, not a driver's IntegrityError traceback; the
    component's other steps of the run are rolled back with it."""
    open_store(tmp_path).close()
    steps = migrations.COMPONENTS["updates"]
    row = "INSERT INTO update_history (id, started, client, outcome) VALUES (1, 0, 'c', 'o')"
    monkeypatch.setitem(migrations.COMPONENTS, "updates",
                        [*steps, "CREATE TABLE probe (x)", f"{row};\n{row}"])
    with pytest.raises(StoreError, match=rf"migration updates {len(steps) + 2} failed: UNIQUE"):
        open_store(tmp_path)
    monkeypatch.undo()
    store = open_store(tmp_path)
    assert store.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'probe'") == 0
    assert store.scalar("SELECT count(*) FROM update_history") == 0
    assert store.scalar("SELECT version FROM schema_version WHERE component = 'updates'") \
        == len(steps)
    store.close()
