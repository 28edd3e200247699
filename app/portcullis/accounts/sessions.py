"""Server-side login sessions.

The browser holds only a random token; the store keeps its SHA-256 (a copy of the store
does not give live sessions), the user, a per-session CSRF token and pending messages.
A session ends after ``IDLE_SECONDS`` without use or ``MAX_SECONDS`` after login, on
logout, and when the user's password changes or the account is removed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from portcullis.store import Store

IDLE_SECONDS = 30 * 60
MAX_SECONDS = 12 * 3600
TOUCH_SECONDS = 60          # last_seen is written at most this often (saves writes)


@dataclass(frozen=True)
class Session:
    key: str                 # SHA-256 of the token: the row's primary key
    user: str
    csrf: str
    created: float
    last_seen: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_session(store: Store, user: str, client_ip: str,
                   now: float | None = None) -> tuple[str, Session]:
    """Start a session; return the token for the cookie and the session."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    session = Session(_key(token), user, secrets.token_urlsafe(32), now, now)
    store.execute("INSERT INTO web_sessions (id, user, csrf, client_ip, created, last_seen)"
                  " VALUES (?, ?, ?, ?, ?, ?)",
                  (session.key, user, session.csrf, client_ip, now, now))
    return token, session


def load_session(store: Store, token: str, now: float | None = None) -> Session | None:
    """The live session of a cookie token, or None (unknown, idle too long, too old)."""
    if not token or len(token) > 200:
        return None
    now = time.time() if now is None else now
    row = store.query_one("SELECT * FROM web_sessions WHERE id = ?", (_key(token),))
    if row is None:
        return None
    if now - row["last_seen"] > IDLE_SECONDS or now - row["created"] > MAX_SECONDS:
        store.execute("DELETE FROM web_sessions WHERE id = ?", (row["id"],))
        return None
    if now - row["last_seen"] > TOUCH_SECONDS:
        store.execute("UPDATE web_sessions SET last_seen = ? WHERE id = ?", (now, row["id"]))
    return Session(row["id"], row["user"], row["csrf"], row["created"], row["last_seen"])


def end_session(store: Store, token: str) -> None:
    store.execute("DELETE FROM web_sessions WHERE id = ?", (_key(token),))


def push_message(store: Store, session: Session, level: str, text: str) -> None:
    """Keep a message to show on the next page (after a redirect)."""
    with store.transaction():
        row = store.query_one("SELECT flash FROM web_sessions WHERE id = ?", (session.key,))
        if row is None:
            return
        pending = [*json.loads(row["flash"])[-9:], [level, text[:2000]]]
        store.execute("UPDATE web_sessions SET flash = ? WHERE id = ?",
                      (json.dumps(pending), session.key))


def pop_messages(store: Store, session: Session) -> list[tuple[str, str]]:
    with store.transaction():
        row = store.query_one("SELECT flash FROM web_sessions WHERE id = ?", (session.key,))
        if row is None or row["flash"] == "[]":
            return []
        store.execute("UPDATE web_sessions SET flash = '[]' WHERE id = ?", (session.key,))
    return [(level, text) for level, text in json.loads(row["flash"])]


def active_sessions(store: Store, now: float | None = None) -> list[dict]:
    """Who is logged in now (for the server page)."""
    now = time.time() if now is None else now
    return store.query(
        "SELECT user, client_ip, created, last_seen FROM web_sessions"
        " WHERE last_seen >= ? AND created >= ? ORDER BY last_seen DESC",
        (now - IDLE_SECONDS, now - MAX_SECONDS))


def purge_sessions(store: Store, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return store.purge("web_sessions", "last_seen < ? OR created < ?",
                       (now - IDLE_SECONDS, now - MAX_SECONDS))
