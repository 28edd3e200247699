"""Tables of the gateway core: directory (domains, relays, lists), archive index, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portcullis.store.base import Store


def _mapped_networks_as_ipv4(store: Store) -> None:
    """Clients are matched by their IPv4 address, so an IPv4-mapped entry (::ffff:a.b.c.d)
    matched nobody; keep it as the IPv4 network ``parse_network`` now gives (an entry that
    is then there twice is kept once)."""
    from portcullis.addresses import AddressError, parse_network

    def ipv4(text: str) -> str:
        try:
            return str(parse_network(text))
        except AddressError:      # refused by a later rule (a zone): left for the snapshot
            return text

    for row in store.query("SELECT network FROM relays WHERE network LIKE '::ffff:%'"):
        new = ipv4(row["network"])
        store.execute("UPDATE OR IGNORE relays SET network = ? WHERE network = ?",
                      (new, row["network"]))
        store.execute("DELETE FROM relays WHERE network = ? AND ? != network",
                      (row["network"], new))
    for row in store.query("SELECT kind, entry FROM bwlist WHERE entry LIKE '::ffff:%'"):
        new = ipv4(row["entry"])
        store.execute("UPDATE OR IGNORE bwlist SET entry = ? WHERE kind = ? AND entry = ?",
                      (new, row["kind"], row["entry"]))
        store.execute("DELETE FROM bwlist WHERE kind = ? AND entry = ? AND ? != entry",
                      (row["kind"], row["entry"], new))


STEPS = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', 1);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        mail_host TEXT NOT NULL,
        filtering INTEGER NOT NULL DEFAULT 1,
        smtp_validation INTEGER NOT NULL DEFAULT 1,
        reject_non_validated INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL
    );
    CREATE TABLE valid_addresses (
        address TEXT PRIMARY KEY,
        domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE
    );
    CREATE INDEX valid_addresses_domain ON valid_addresses (domain);
    CREATE TABLE relays (network TEXT PRIMARY KEY, note TEXT NOT NULL DEFAULT '',
                         created REAL NOT NULL);
    CREATE TABLE bwlist (
        kind TEXT NOT NULL CHECK (kind IN ('black', 'white')),
        entry TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        PRIMARY KEY (kind, entry)
    );
    CREATE TABLE callout_cache (
        address TEXT PRIMARY KEY,
        valid INTEGER NOT NULL,
        reply TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX callout_cache_expires ON callout_cache (expires);
    CREATE TABLE archive (
        id TEXT PRIMARY KEY,
        received REAL NOT NULL,
        direction TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        helo TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        subject TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL,
        score REAL NOT NULL,
        symbols TEXT NOT NULL,
        size INTEGER NOT NULL,
        path TEXT NOT NULL,
        delivery TEXT NOT NULL DEFAULT '',
        released REAL
    );
    CREATE INDEX archive_received ON archive (received);
    CREATE TABLE archive_rcpt (
        archive_id TEXT NOT NULL REFERENCES archive (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        domain TEXT NOT NULL
    );
    CREATE INDEX archive_rcpt_id ON archive_rcpt (archive_id);
    CREATE INDEX archive_rcpt_domain ON archive_rcpt (domain, archive_id);
    CREATE TABLE outbound_pairs (
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        messages INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (sender, recipient)
    );
    CREATE INDEX outbound_pairs_last_seen ON outbound_pairs (last_seen);
    CREATE TABLE traffic (
        bucket INTEGER NOT NULL,
        domain TEXT NOT NULL,
        verdict TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, domain, verdict)
    )
    """,
    _mapped_networks_as_ipv4,
    # Releases per recipient, so a second release does not deliver a second copy; what
    # earlier releases delivered counts as released to every recipient.
    """
    ALTER TABLE archive_rcpt ADD COLUMN released REAL;
    UPDATE archive_rcpt SET released = (SELECT a.released FROM archive a
                                        WHERE a.id = archive_rcpt.archive_id)
        WHERE archive_id IN (SELECT id FROM archive WHERE released IS NOT NULL)
    """,
    # A domain administrator's archive, dashboard and log read their domains' newest
    # messages from the recipient rows, which keep the arrival time for it (going down
    # the whole archive read every message when a domain gets little mail).  The
    # (domain, archive_id) index served that search only.
    """
    ALTER TABLE archive_rcpt ADD COLUMN received REAL NOT NULL DEFAULT 0;
    UPDATE archive_rcpt SET received = COALESCE((SELECT a.received FROM archive a
                                                 WHERE a.id = archive_rcpt.archive_id), 0);
    DROP INDEX archive_rcpt_domain;
    CREATE INDEX archive_rcpt_domain_received ON archive_rcpt (domain, received, archive_id)
    """,
    # A domain administrator's dashboard and reports read their domains' traffic counters:
    # by the primary key (bucket first) every domain's counters of the range were read.
    "CREATE INDEX traffic_domain ON traffic (domain, bucket)",
    # A wanted message the internal host refused when it came was archived as accepted
    # (or tagged), its reply in ``delivery`` only: it is what the gateway logged, rejected
    # or deferred by the internal host (smtp/handler.py's refused_by_host).
    """
    UPDATE archive
       SET verdict = CASE WHEN delivery LIKE '4%' THEN 'tempfail' ELSE 'reject' END,
           reason = 'by internal host: ' || substr(delivery, 5)
     WHERE verdict IN ('accept', 'tag') AND delivery GLOB '[45][0-9][0-9] *'
    """,
    # Recipients refused at RCPT, by protected domain, for its administrators' log view
    # (refusallog.py): they are in no archived message, and the log file is not theirs.
    """
    CREATE TABLE rcpt_refusals (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        helo TEXT NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX rcpt_refusals_domain_at ON rcpt_refusals (domain, at);
    CREATE INDEX rcpt_refusals_at ON rcpt_refusals (at)
    """,
]
