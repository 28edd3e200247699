"""Administrator accounts: the super administrator and domain administrators."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from portcullis.accounts.passwords import (
    check_password_rules,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from portcullis.addresses import normalise_domain
from portcullis.store import Store

SUPER = "super"
DOMAIN = "domain"
ROLES = (SUPER, DOMAIN)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class AccountError(ValueError):
    """An account operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    domains: tuple[str, ...] = ()
    has_password: bool = False

    @property
    def is_super(self) -> bool:
        return self.role == SUPER

    def may_manage(self, domain: str) -> bool:
        """May this administrator see and change this domain?"""
        return self.is_super or domain.lower() in self.domains

    @property
    def domain_filter(self) -> list[str] | None:
        """None for the super administrator (everything), else the domains to show."""
        return None if self.is_super else list(self.domains)

    def to_json(self) -> dict:
        return {"name": self.name, "role": self.role, "domains": list(self.domains),
                "has_password": self.has_password}


def normalise_name(name: str) -> str:
    cleaned = name.strip().lower()
    if not _NAME_RE.match(cleaned):
        raise AccountError(f"{name!r} is not a valid user name (letters, digits, . _ @ -;"
                           " at most 64)")
    return cleaned


def _check_domains(store: Store, role: str, domains: Iterable[str]) -> list[str]:
    names = sorted({normalise_domain(d) for d in domains})
    if role == SUPER and names:
        raise AccountError("a super administrator manages every domain; give no --domain")
    for name in names:
        if store.query_one("SELECT 1 AS x FROM domains WHERE name = ?", (name,)) is None:
            raise AccountError(f"domain {name} is not protected")
    return names


def get_user(store: Store, name: str) -> User | None:
    try:
        name = normalise_name(name)
    except AccountError:
        return None
    row = store.query_one("SELECT name, role, password_hash FROM web_users WHERE name = ?",
                          (name,))
    if row is None:
        return None
    domains = tuple(r["domain"] for r in store.query(
        "SELECT domain FROM web_user_domains WHERE user = ? ORDER BY domain", (name,)))
    return User(row["name"], row["role"], domains, bool(row["password_hash"]))


def list_users(store: Store) -> list[User]:
    users = []
    for row in store.query("SELECT name FROM web_users ORDER BY role DESC, name"):
        user = get_user(store, row["name"])
        if user is not None:
            users.append(user)
    return users


def has_super_admin(store: Store) -> bool:
    """Whether a super administrator exists (if not, the web UI offers first-start setup)."""
    return store.query_one("SELECT 1 AS x FROM web_users WHERE role = ?", (SUPER,)) is not None


def add_user(store: Store, name: str, role: str, domains: Iterable[str] = (),
             password: str | None = None) -> User:
    """Create an account; without a password it cannot log in until one is set."""
    name = normalise_name(name)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    domain_names = _check_domains(store, role, domains)
    if role == DOMAIN and not domain_names:
        raise AccountError("a domain administrator needs at least one domain (--domain)")
    if password is not None:
        check_password_rules(password)
    encoded = hash_password(password) if password is not None else ""
    with store.transaction():
        if store.query_one("SELECT 1 AS x FROM web_users WHERE name = ?", (name,)):
            raise AccountError(f"user {name} already exists")
        now = time.time()
        store.execute("INSERT INTO web_users (name, role, password_hash, created,"
                      " password_changed) VALUES (?, ?, ?, ?, ?)",
                      (name, role, encoded, now, now if password is not None else None))
        store.executemany("INSERT INTO web_user_domains (user, domain) VALUES (?, ?)",
                          [(name, d) for d in domain_names])
    return User(name, role, tuple(domain_names), password is not None)


def set_domains(store: Store, name: str, domains: Iterable[str]) -> User:
    """Replace the domains a domain administrator manages."""
    user = get_user(store, name)
    if user is None:
        raise AccountError(f"no user {name}")
    domain_names = _check_domains(store, user.role, domains)
    if user.role == DOMAIN and not domain_names:
        raise AccountError("a domain administrator needs at least one domain")
    with store.transaction():
        store.execute("DELETE FROM web_user_domains WHERE user = ?", (user.name,))
        store.executemany("INSERT INTO web_user_domains (user, domain) VALUES (?, ?)",
                          [(user.name, d) for d in domain_names])
    return User(user.name, user.role, tuple(domain_names), user.has_password)


def set_password(store: Store, name: str, password: str) -> None:
    """Store a new password hash and end every session of that user."""
    check_password_rules(password)
    encoded = hash_password(password)
    with store.transaction():
        changed = store.execute(
            "UPDATE web_users SET password_hash = ?, password_changed = ? WHERE name = ?",
            (encoded, time.time(), normalise_name(name)))
        if not changed:
            raise AccountError(f"no user {name}")
        store.execute("DELETE FROM web_sessions WHERE user = ?", (normalise_name(name),))


def remove_user(store: Store, name: str) -> None:
    """Delete an account (and its sessions); the last super administrator stays."""
    user = get_user(store, name)
    if user is None:
        raise AccountError(f"no user {name}")
    with store.transaction():
        if user.is_super and int(store.scalar(
                "SELECT COUNT(*) FROM web_users WHERE role = ?", (SUPER,))) <= 1:
            raise AccountError("the last super administrator cannot be removed")
        store.execute("DELETE FROM web_users WHERE name = ?", (user.name,))


def password_stamp(store: Store, name: str) -> str:
    """When the user's password was set, as text; '' for no such user or no password."""
    try:
        key = normalise_name(name)
    except AccountError:
        return ""
    stamp = store.scalar("SELECT password_changed FROM web_users WHERE name = ?"
                         " AND password_hash IS NOT NULL AND password_hash != ''", (key,))
    return "" if stamp is None else repr(float(stamp))


def authenticate(store: Store, name: str, password: str) -> User | None:
    """The user when name and password match, else None (in about the same time)."""
    try:
        key = normalise_name(name)
    except AccountError:
        key = ""
    row = store.query_one("SELECT password_hash FROM web_users WHERE name = ?", (key,)) \
        if key else None
    encoded = row["password_hash"] if row and row["password_hash"] else dummy_hash()
    if not verify_password(password, encoded) or row is None or not row["password_hash"]:
        return None
    if needs_rehash(encoded):
        store.execute("UPDATE web_users SET password_hash = ? WHERE name = ?",
                      (hash_password(password), key))
    return get_user(store, key)
