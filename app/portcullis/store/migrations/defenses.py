"""Tables of the defenses: greylisting (triplets, auto-whitelisted networks) and harvest
detection (invalid recipients per client)."""

STEPS = [
    """
    CREATE TABLE greylist (
        network TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        passed REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (network, sender, recipient)
    );
    CREATE INDEX greylist_first_seen ON greylist (first_seen);
    CREATE INDEX greylist_last_seen ON greylist (last_seen);
    CREATE TABLE greylist_awl (
        network TEXT PRIMARY KEY,
        passes INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE harvest (
        client TEXT PRIMARY KEY,
        invalid INTEGER NOT NULL,
        window_start REAL NOT NULL,
        blocked_until REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX harvest_window_start ON harvest (window_start)
    """,
    # The client network each triplet's first attempt came from, which the bound on
    # waiting triplets counts by (an spf:DOMAIN source is many networks).  An older
    # release's SPF-source triplets name no network: they count for none until they go.
    """
    ALTER TABLE greylist ADD COLUMN client TEXT NOT NULL DEFAULT '';
    UPDATE greylist SET client = network;
    CREATE INDEX greylist_client ON greylist (client, first_seen)
    """,
]
