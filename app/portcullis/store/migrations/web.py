"""Tables of the web UI: administrator accounts, their domains, sessions, login
failures (for throttling), the audit trail of administrative actions, and the secret that
signs forms shown before login."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portcullis.store.base import Store


def _form_secret(store: Store) -> None:
    store.execute("INSERT INTO web_secret (id, value) VALUES (1, ?)", (secrets.token_hex(32),))


STEPS = [
    """
    CREATE TABLE web_users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('super', 'domain')),
        password_hash TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        password_changed REAL
    );
    CREATE TABLE web_user_domains (
        user TEXT NOT NULL REFERENCES web_users (name) ON DELETE CASCADE,
        domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
        PRIMARY KEY (user, domain)
    );
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES web_users (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        created REAL NOT NULL,
        last_seen REAL NOT NULL,
        flash TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX web_sessions_user ON web_sessions (user);
    CREATE TABLE web_login_failures (key TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX web_login_failures_key ON web_login_failures (key, at);
    CREATE TABLE web_audit (
        at REAL NOT NULL,
        user TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX web_audit_at ON web_audit (at);
    CREATE TABLE web_secret (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL)
    """,
    _form_secret,
]
