"""The global black and white lists (domains, addresses, IPs/CIDRs)."""

from __future__ import annotations

import logging
import time

from portcullis.addresses import WIDEST_PREFIX, AddressError, ListEntry, check_note, too_wide
from portcullis.store import Store

KINDS = ("black", "white")
log = logging.getLogger(__name__)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise AddressError(f"list must be black or white, not {kind!r}")
    return kind


def list_entries(store: Store, kind: str) -> list[dict]:
    return store.query("SELECT entry, note, created FROM bwlist WHERE kind = ? ORDER BY entry",
                       (_kind(kind),))


def stored_entries(store: Store, kind: str) -> list[ListEntry]:
    """The list as the gateway and the firewall use it.  An entry an older release stored
    that today's rules refuse (an IPv6 zone, a line break, a network wider than a list
    takes) is left out and named in the log, never a list that cannot be read; it is
    removed as it is shown."""
    entries = []
    for row in list_entries(store, kind):
        try:
            entry = ListEntry.parse(row["entry"])
        except AddressError as exc:
            log.warning("%s list entry %r is left out: %s", kind, row["entry"], exc)
            continue
        if entry.network is not None and too_wide(entry.network):
            # Lists took any prefix before: an older release's '1.2.3.4/0' (0.0.0.0/0)
            # black-listed all mail, and dropped at the firewall, the web UI's way in too.
            log.warning("%s list entry %r is left out: wider than /%d", kind, entry.text,
                        WIDEST_PREFIX[entry.network.version])
            continue
        entries.append(entry)
    return entries


def add_entry(store: Store, kind: str, text: str, note: str = "") -> ListEntry:
    entry = ListEntry.parse(text)
    local, _, domain = entry.text.rpartition("@")
    if local == "*":
        # '*' is a valid local part, so this was kept as one mailbox's address, which no
        # sender has: what is meant is the domain entry.
        raise AddressError(f"{text.strip()!r}: a list takes no wildcards; write the domain"
                           f" alone ({domain}), which takes every sender there and in its"
                           " subdomains")
    if entry.network is not None and too_wide(entry.network):
        # On the white list it would wave most of the Internet past every check.
        raise AddressError(f"{entry.text} would put most of the Internet on the {kind} list;"
                           f" a list network is at most /{WIDEST_PREFIX[entry.network.version]}")
    with store.transaction():
        store.execute("INSERT INTO bwlist (kind, entry, note, created) VALUES (?, ?, ?, ?)"
                      " ON CONFLICT (kind, entry) DO UPDATE SET note = excluded.note",
                      (_kind(kind), entry.text, check_note(note), time.time()))
        store.bump_generation()
    return entry


def remove_entry(store: Store, kind: str, text: str) -> None:
    try:
        stored = ListEntry.parse(text).text
    except AddressError:
        stored = text.strip()   # as an older release stored what this one refuses
    with store.transaction():
        if not store.execute("DELETE FROM bwlist WHERE kind = ? AND entry = ?",
                             (_kind(kind), stored)):
            raise AddressError(f"{stored} is not on the {kind} list")
        store.bump_generation()
