"""Tables of the update agent: every update attempt with its outcome (the web UI's history)."""

STEPS = [
    """
    CREATE TABLE update_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started REAL NOT NULL,
        finished REAL,
        client TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        version TEXT NOT NULL DEFAULT '',
        previous TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        signed_by TEXT NOT NULL DEFAULT '',
        sha256 TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX update_history_started ON update_history (started)
    """,
]
