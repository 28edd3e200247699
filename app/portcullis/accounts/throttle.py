"""Login throttling: too many failed logins lock out the guesser, not everyone.

Failures are counted over ``WINDOW_SECONDS`` under three keys, each with its own limit:
the pair (user name, client address) — a typing administrator is stopped after a few
tries; the client address alone — one host guessing many names; and the user name alone,
set high — many hosts guessing one password.  A browser that logged in as that user
before is not held back by the name's limit, so failures from elsewhere cannot lock the
real administrator out.  Counts live in the store, so they hold across threads, restarts
and gateways sharing a store.
"""

from __future__ import annotations

import time

from portcullis.addresses import source_of
from portcullis.store import Store

WINDOW_SECONDS = 15 * 60
LIMITS = {"pair": 5, "ip": 20, "user": 50}


def _keys(username: str, client_ip: str) -> dict[str, str]:
    name = username.strip().lower()[:100]
    # A client is its IPv4 address or its IPv6 /64, as for every per-client limit: one
    # host takes a /64's addresses as it likes, and each would have limits of its own.
    client = source_of(client_ip)
    return {"pair": f"pair:{name}|{client}", "ip": f"ip:{client}", "user": f"user:{name}"}


def retry_after(store: Store, username: str, client_ip: str, now: float | None = None,
                *, known_device: bool = False) -> float:
    """Seconds until this user name may try again from this address (0: go ahead).

    ``known_device``: the browser holds the cookie of an earlier good login of this user
    (``web.security.device_token``).  The name's own limit does not hold it back: failures
    from anywhere else must not lock the real administrator out (OWASP's device cookies).
    """
    now = time.time() if now is None else now
    wait = 0.0
    for kind, key in _keys(username, client_ip).items():
        if kind == "user" and known_device:
            continue
        rows = store.query("SELECT at FROM web_login_failures WHERE key = ? AND at > ?"
                           " ORDER BY at DESC LIMIT ?", (key, now - WINDOW_SECONDS,
                                                          LIMITS[kind]))
        if len(rows) >= LIMITS[kind]:
            # Allowed again when the oldest of the last LIMIT failures leaves the window.
            wait = max(wait, rows[-1]["at"] + WINDOW_SECONDS - now)
    return wait


def record_failure(store: Store, username: str, client_ip: str,
                   now: float | None = None) -> None:
    now = time.time() if now is None else now
    store.executemany("INSERT INTO web_login_failures (key, at) VALUES (?, ?)",
                      [(key, now) for key in _keys(username, client_ip).values()])


def claim_attempt(store: Store, username: str, client_ip: str, now: float | None = None,
                  *, known_device: bool = False) -> float:
    """``retry_after``, and when it is 0 the attempt counted as a failure at once, before
    its password is checked (``record_success`` takes it back).  Checked and counted in
    one transaction: checked first and counted once the slow password hash said no, the
    web server's threads (8) each passed the check with the same count, so ten guesses
    at once got ten answers where five were allowed, at every turn of the window."""
    with store.transaction():
        wait = retry_after(store, username, client_ip, now, known_device=known_device)
        if not wait:
            record_failure(store, username, client_ip, now)
    return wait


def record_success(store: Store, username: str, client_ip: str) -> None:
    """A good login: its claimed attempt is no failure of the address or the name, and
    the failures of that name from that address are forgotten."""
    keys = _keys(username, client_ip)
    with store.transaction():
        store.execute("DELETE FROM web_login_failures WHERE key = ?", (keys["pair"],))
        for key in (keys["ip"], keys["user"]):
            store.execute("DELETE FROM web_login_failures WHERE rowid IN (SELECT rowid"
                          " FROM web_login_failures WHERE key = ? ORDER BY at DESC"
                          " LIMIT 1)", (key,))


def purge_failures(store: Store, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return store.purge("web_login_failures", "at <= ?", (now - WINDOW_SECONDS,))
