"""Tables of the reputation engine.  Outbound (sender, recipient) pairs are recorded by
the core in ``outbound_pairs`` (its ``recipient_domain`` column and the indexes added here
serve reputation's lookups); these tables add what reputation learns itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from portcullis.store.base import Store

BATCH = 5000     # pairs read (and held in memory) at a time while filling a new column


def _recipient_domains(store: Store) -> None:
    """Give ``outbound_pairs`` the recipient's domain, indexed with the sender: counting
    a user's correspondents at a domain (every RCPT from a stranger) read all of the
    user's pairs with a LIKE on the address.  Existing pairs get the domain as the writer
    computes it (IDNs as A-labels, which SQL cannot do), read in batches of ``BATCH``."""
    from portcullis.reputation.peers import recipient_domain

    store.execute("ALTER TABLE outbound_pairs"
                  " ADD COLUMN recipient_domain TEXT NOT NULL DEFAULT ''")
    after: tuple[str, str] = ("", "")   # a pair ('', '') is skipped: its domain is ''
    while True:
        rows = store.query_values(
            "SELECT sender, recipient FROM outbound_pairs WHERE (sender, recipient) > (?, ?)"
            " ORDER BY sender, recipient LIMIT ?", (*after, BATCH))
        if not rows:
            break
        store.executemany(
            "UPDATE outbound_pairs SET recipient_domain = ? WHERE sender = ? AND recipient = ?",
            [(recipient_domain(recipient), sender, recipient) for sender, recipient in rows])
        after = rows[-1]
    store.execute("CREATE INDEX outbound_pairs_domain"
                  " ON outbound_pairs (sender, recipient_domain)")


class _Relationships(NamedTuple):
    """A table of relationships keyed by addresses, and how two of its rows become one."""

    table: str
    addresses: tuple[str, ...]      # the primary key's address columns
    rest_of_key: tuple[str, ...]    # the rest of the primary key
    counters: tuple[str, ...]       # summed
    latest: tuple[str, ...]         # times kept latest (first_seen is kept earliest)
    derived: tuple[str, ...] = ()   # follow from the addresses: made again from the key
    derive: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda addresses: ()


def _recipient_domain(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """``outbound_pairs.recipient_domain`` of a (sender, recipient) key: a domain stored
    with a trailing dot (domain_of keeps it) is another than its key's."""
    from portcullis.reputation.peers import recipient_domain

    return (recipient_domain(addresses[1]),)


_KEYED_BY_ADDRESS = (
    _Relationships("outbound_pairs", ("sender", "recipient"), (), ("messages",),
                   ("last_seen",), ("recipient_domain",), _recipient_domain),
    _Relationships("peer_inbound", ("internal", "external"), (), ("messages",),
                   ("last_seen",)),
    _Relationships("one_way", ("sender", "recipient"), ("network",), ("credits",),
                   ("last_credit", "last_seen")),
)


def _merged_spellings(store: Store) -> None:
    """Re-file relationships stored under another spelling of an address (a domain in
    Unicode rather than A-labels, capitals, a trailing dot) under ``peers.address_key``'s
    form, the only one looked up now; rows that meet under one key become one, and the
    columns derived from the addresses are made again from the key.  Read in batches of
    ``BATCH`` by primary key: a row re-filed ahead of the batch is read again, already in
    its form, and left alone."""
    for kind in _KEYED_BY_ADDRESS:
        key = kind.addresses + kind.rest_of_key
        columns = key + kind.counters + ("first_seen",) + kind.latest + kind.derived
        width = len(key)
        names, key_names = ", ".join(columns), ", ".join(key)
        merge = ", ".join([f"{c} = {c} + excluded.{c}" for c in kind.counters]
                          + ["first_seen = min(first_seen, excluded.first_seen)"]
                          + [f"{c} = max({c}, excluded.{c})" for c in kind.latest])
        # Table and column names come from _KEYED_BY_ADDRESS, never from data.
        select = (f"SELECT {names} FROM {kind.table} WHERE ({key_names})"  # noqa: S608
                  f" > ({', '.join('?' * width)}) ORDER BY {key_names} LIMIT ?")
        delete = (f"DELETE FROM {kind.table} WHERE "  # noqa: S608
                  + " AND ".join(f"{c} = ?" for c in key))
        insert = (f"INSERT INTO {kind.table} ({names})"  # noqa: S608
                  f" VALUES ({', '.join('?' * len(columns))})"
                  f" ON CONFLICT ({key_names}) DO UPDATE SET {merge}")
        after: tuple = ("",) * width
        while True:
            rows = store.query_values(select, (*after, BATCH))
            if not rows:
                break
            refiled = [(row, _refiled(kind, row)) for row in rows]
            moved = [(row, new) for row, new in refiled if new != row]
            if moved:
                store.executemany(delete, [row[:width] for row, _ in moved])
                store.executemany(insert, [new for _, new in moved])
            after = rows[-1][:width]


def _refiled(kind: _Relationships, row: tuple) -> tuple:
    """A row of ``kind`` (in ``_merged_spellings``' column order) under its addresses'
    keys, with its derived columns made from them."""
    from portcullis.addresses import address_key

    addresses = tuple(address_key(a) for a in row[:len(kind.addresses)])
    kept = row[len(kind.addresses):len(row) - len(kind.derived)]
    return addresses + kept + kind.derive(addresses)


STEPS = [
    """
    CREATE TABLE peer_inbound (
        internal TEXT NOT NULL,          -- our user
        external TEXT NOT NULL,          -- the correspondent our user wrote to
        messages INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (internal, external)
    );
    CREATE INDEX peer_inbound_last_seen ON peer_inbound (last_seen);
    CREATE INDEX outbound_pairs_recipient ON outbound_pairs (recipient);
    CREATE TABLE one_way (
        sender TEXT NOT NULL,            -- envelope sender on the Internet
        recipient TEXT NOT NULL,         -- our user
        network TEXT NOT NULL,           -- the sending MTA's /24 (IPv6 /64)
        credits INTEGER NOT NULL DEFAULT 0,
        last_credit REAL NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (sender, recipient, network)
    );
    CREATE INDEX one_way_last_seen ON one_way (last_seen);
    CREATE TABLE mta_reputation (
        address TEXT PRIMARY KEY,        -- an IP, or a network (a.b.c.0/24, x:x:x:x::/64)
        kind TEXT NOT NULL CHECK (kind IN ('ip', 'net')),
        connections REAL NOT NULL DEFAULT 0,   -- counters decay (half-life mta_days)
        unwanted REAL NOT NULL DEFAULT 0,
        accepted REAL NOT NULL DEFAULT 0,
        tagged REAL NOT NULL DEFAULT 0,
        rejected REAL NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE INDEX mta_reputation_kind ON mta_reputation (kind, connections);
    CREATE INDEX mta_reputation_last_seen ON mta_reputation (last_seen);
    CREATE TABLE reputation_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
    INSERT INTO reputation_meta (key, value) VALUES ('mta_decayed', 0)
    """,
    _recipient_domains,
    # No query looks a pair up by recipient alone (peers.py: by sender and recipient, the
    # primary key, or by sender and recipient_domain), yet every outbound message wrote
    # this index.
    "DROP INDEX IF EXISTS outbound_pairs_recipient",
    # Relationships are keyed by peers.address_key (domains in A-labels); rows an older
    # release stored under a Unicode spelling are merged with the A-label one.
    _merged_spellings,
    # peers.address_key strips a domain's trailing dot (user@example.com.): rows stored
    # under that spelling are merged the same way.
    _merged_spellings,
]
