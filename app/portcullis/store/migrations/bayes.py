"""Tables of the Bayes classifier: token counts, per-class totals, learnt messages."""

STEPS = [
    """
    CREATE TABLE bayes_tokens (
        token TEXT PRIMARY KEY,
        spam INTEGER NOT NULL DEFAULT 0,
        ham INTEGER NOT NULL DEFAULT 0,
        seen INTEGER NOT NULL            -- day number (UTC) the token was last learnt
    ) WITHOUT ROWID;
    CREATE INDEX bayes_tokens_seen ON bayes_tokens (seen);
    CREATE TABLE bayes_totals (
        key TEXT PRIMARY KEY,            -- spam, ham, auto_spam, auto_ham
        value INTEGER NOT NULL
    );
    INSERT INTO bayes_totals (key, value) VALUES ('spam', 0), ('ham', 0),
        ('auto_spam', 0), ('auto_ham', 0);
    CREATE TABLE bayes_learned (
        digest TEXT PRIMARY KEY,         -- identifies a message's content
        class TEXT NOT NULL CHECK (class IN ('spam', 'ham')),
        source TEXT NOT NULL,            -- cli, mailbox, auto
        learned REAL NOT NULL
    );
    CREATE INDEX bayes_learned_learned ON bayes_learned (learned)
    """,
    # The generation of the token counts: raised by every change but auto-learning, so
    # the gateway's cached counts (bayes/database.py, TokenCache) are dropped at once.
    "INSERT INTO bayes_totals (key, value) VALUES ('generation', 0)",
    # The day a person last taught the token (0: only the auto-learner learnt it): a
    # person's training is kept from expiry (bayes/database.py, expire).  Counts learnt
    # before cannot be told apart and stay the auto-learner's.  The index serves both
    # expiry queries (auto-learnt by age; the size bound, auto-learnt first).
    """
    ALTER TABLE bayes_tokens ADD COLUMN taught INTEGER NOT NULL DEFAULT 0;
    DROP INDEX bayes_tokens_seen;
    CREATE INDEX bayes_tokens_taught_seen ON bayes_tokens (taught, seen)
    """,
]
