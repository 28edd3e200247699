"""Tables of the reputation engine.  Outbound (sender, recipient) pairs are recorded by
the core in ``outbound_pairs`` (its ``recipient_domain`` column and the indexes added here
serve reputation's lookups); these tables add what reputation learns itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
]
