"""Housekeeping's purges of a large backlog work in batches (``Store.purge``): a gateway
worker's write gets in between them, where one statement (or one transaction) over the
whole backlog held the store's write lock throughout, and the result is the one the
single statement gave."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from portcullis.accounts import audit, sessions, throttle
from portcullis.bayes.database import TokenDatabase, today
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, GreylistPolicy
from portcullis.reputation import mta, oneway, peers
from portcullis.store import Store, open_store
from portcullis.store.base import PURGE_BATCH

NOW = 2_000_000_000.0
DAY = 86400.0
BACKLOG = 3 * PURGE_BATCH + 5       # four batches
GREYLIST = GreylistPolicy(delay=300, window=4 * 3600, expiry=30 * DAY, awl_passes=0)
HARVEST = harvest.HarvestPolicy(threshold=10, window=600, block=3600, reject=False)


@dataclass(frozen=True)
class Upkeep:
    table: str                          # the table whose backlog it works through
    fill: Callable[[Store], None]       # BACKLOG rows to go (or change), and one to stay
    run: Callable[[Store], int]
    done: int                           # what ``run`` returns
    left: str                           # a query of what is left afterwards ...
    expected: object                    # ... and its answer


def rows(sql: str, make: Callable[[int], tuple]) -> Callable[[Store], None]:
    return lambda store: store.executemany(sql, [make(n) for n in range(BACKLOG + 1)])


def old(n: int, stamp: float) -> float:
    """The last row is the one that stays."""
    return NOW if n == BACKLOG else stamp


def correspondent(n: int) -> tuple[str, float]:
    """An address on the Internet and when it was last written with."""
    return f"x{n}@r.test", old(n, 0.0)


def bayes(counts: str, days_ago: int, max_tokens: int) -> Upkeep:
    """Tokens (spam, ham ``counts``) learnt ``days_ago``, and one today that stays."""
    return Upkeep(
        "bayes_tokens",
        rows("INSERT INTO bayes_tokens (token, spam, ham, seen, taught)"
             f" VALUES (?, {counts}, ?, 0)",
             lambda n: (f"t{n:05}", today() - (0 if n == BACKLOG else days_ago))),
        lambda store: TokenDatabase(store).expire(hapax_days=30, max_days=90,
                                                  max_tokens=max_tokens), BACKLOG,
        "SELECT token FROM bayes_tokens", [(f"t{BACKLOG:05}",)])


def mta_upkeep(store: Store) -> int:
    mta.decay(store, 30, now=NOW - 30 * DAY)        # the run before, a half-life ago
    return mta.decay(store, 30, now=NOW)


UPKEEPS = {
    "greylist": (pytest.mark.defenses, Upkeep(
        "greylist",
        rows("INSERT INTO greylist (network, sender, recipient, first_seen, last_seen,"
             " client) VALUES (?, 's@x.test', 'r@y.test', ?, ?, ?)",
             lambda n: (f"10.{n // 256}.{n % 256}.0/24", old(n, 0.0), old(n, 0.0), "c")),
        lambda store: Greylist(store).purge(GREYLIST, now=NOW), BACKLOG,
        "SELECT first_seen FROM greylist", [(NOW,)])),
    "harvest": (pytest.mark.defenses, Upkeep(
        "harvest",
        rows("INSERT INTO harvest (client, invalid, window_start, blocked_until)"
             " VALUES (?, 3, ?, 0)", lambda n: (f"10.0.{n // 256}.{n % 256}", old(n, 0.0))),
        lambda store: harvest.purge(store, HARVEST, now=NOW), BACKLOG,
        "SELECT window_start FROM harvest", [(NOW,)])),
    "bayes": (pytest.mark.reputation, bayes("1, 0", days_ago=100, max_tokens=1_000_000)),
    "bayes beyond its size": (pytest.mark.reputation, bayes("5, 5", days_ago=1, max_tokens=1)),
    "MTA decay": (pytest.mark.reputation, Upkeep(
        "mta_reputation",
        rows("INSERT INTO mta_reputation (address, kind, connections, unwanted,"
             " first_seen, last_seen) VALUES (?, 'ip', ?, ?, 0, ?)",
             lambda n: (f"10.0.{n // 256}.{n % 256}", 1.5 if n < BACKLOG else 8.0,
                        1.0, NOW)),
        mta_upkeep, BACKLOG,
        "SELECT connections, unwanted FROM mta_reputation", [(4.0, 0.5)])),
    "audit": (pytest.mark.webui, Upkeep(
        "web_audit",
        rows("INSERT INTO web_audit (at, user, client_ip, action, detail)"
             " VALUES (?, 'admin', '192.0.2.1', 'login', '')", lambda n: (old(n, 0.0),)),
        lambda store: audit.purge(store, now=NOW), BACKLOG,
        "SELECT at FROM web_audit", [(NOW,)])),
    "sessions": (pytest.mark.webui, Upkeep(
        "web_sessions",
        lambda store: (
            store.execute("INSERT INTO web_users (name, role, created) VALUES ('a', 'super', 0)"),
            rows("INSERT INTO web_sessions (id, user, csrf, client_ip, created, last_seen)"
                 " VALUES (?, 'a', '', '', ?, ?)",
                 lambda n: (f"s{n}", old(n, 0.0), old(n, 0.0)))(store)),
        lambda store: sessions.purge_sessions(store, now=NOW), BACKLOG,
        "SELECT id FROM web_sessions", [(f"s{BACKLOG}",)])),
    "login failures": (pytest.mark.webui, Upkeep(
        "web_login_failures",
        rows("INSERT INTO web_login_failures (key, at) VALUES ('ip:192.0.2.1', ?)",
             lambda n: (old(n, 0.0),)),
        lambda store: throttle.purge_failures(store, now=NOW), BACKLOG,
        "SELECT at FROM web_login_failures", [(NOW,)])),
}


# Relationships unused since a time are forgotten: (table, its rows, the address column).
RELATIONSHIPS = {
    "peers": ("outbound_pairs", "INSERT INTO outbound_pairs (sender, recipient,"
              " recipient_domain, messages, first_seen, last_seen)"
              " VALUES ('a@example.com', ?, 'r.test', 1, 0, ?)", "recipient", peers.expire),
    "one-way": ("one_way", "INSERT INTO one_way (sender, recipient, network, last_credit,"
                " first_seen, last_seen) VALUES (?, 'u@example.com', '192.0.2.0/24', 0, 0, ?)",
                "sender", oneway.expire),
}
UPKEEPS |= {name: (pytest.mark.reputation, Upkeep(
    table, rows(sql, correspondent),
    lambda store, expire=expire: expire(store, NOW - DAY), BACKLOG,
    f"SELECT {column} FROM {table}", [correspondent(BACKLOG)[:1]]))
    for name, (table, sql, column, expire) in RELATIONSHIPS.items()}


@pytest.mark.parametrize("upkeep", [pytest.param(upkeep, marks=mark, id=name)
                                    for name, (mark, upkeep) in UPKEEPS.items()])
def test_upkeep_of_a_backlog_lets_the_gateway_write_between_batches(tmp_path, upkeep):
    store = open_store(tmp_path)
    upkeep.fill(store)
    gateway = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    writes: list[str] = []

    def statement_starts(sql: str) -> None:
        if sql.startswith((f"DELETE FROM {upkeep.table} ", f"UPDATE {upkeep.table} ")):
            try:
                gateway.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                writes.append("in")
            except sqlite3.OperationalError as exc:     # the purge holds the lock
                writes.append(str(exc))

    store._conn().set_trace_callback(statement_starts)
    try:
        assert upkeep.run(store) == upkeep.done
    finally:
        store._conn().set_trace_callback(None)
    # A batch a statement, and the gateway's write got in before each one.
    assert len(writes) >= 4 and set(writes) == {"in"}
    assert store.query_values(upkeep.left) == upkeep.expected
    gateway.close()
    store.close()


@pytest.mark.reputation
def test_choosing_the_least_used_tokens_holds_no_lock(tmp_path):
    """Beyond its size the token table is sorted to find each batch; the sort runs as a
    read, and a gateway write gets in while it does, where inside the DELETE every batch's
    sort held the write lock."""
    store = open_store(tmp_path)
    bayes("5, 5", days_ago=1, max_tokens=1).fill(store)
    gateway = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    running, writes = [""], []

    def while_running() -> int:
        if running[0].startswith("SELECT token FROM bayes_tokens WHERE 1 = 1 ORDER BY"):
            try:
                gateway.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                writes.append("in")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
        return 0

    conn = store._conn()
    conn.set_trace_callback(lambda sql: running.__setitem__(0, sql))
    conn.set_progress_handler(while_running, 1000)
    try:
        TokenDatabase(store).expire(hapax_days=30, max_days=90, max_tokens=1)
    finally:
        conn.set_progress_handler(None, 0)
        conn.set_trace_callback(None)
    assert writes and set(writes) == {"in"}
    gateway.close()
    store.close()
