"""Relays: internal networks allowed to send outbound mail through the gateway."""

from __future__ import annotations

import logging
import time

from portcullis.addresses import (
    WIDEST_PREFIX,
    AddressError,
    IPNetwork,
    check_note,
    parse_network,
    too_wide,
)
from portcullis.store import Store

log = logging.getLogger(__name__)


def list_relays(store: Store) -> list[dict]:
    return store.query("SELECT network, note, created FROM relays ORDER BY network")


def stored_relays(store: Store) -> list[IPNetwork]:
    """The relay networks as the gateway matches them; one an older release stored that
    today's rules refuse is left out and named in the log (see bwlists.stored_entries)."""
    networks = []
    for row in list_relays(store):
        try:
            networks.append(parse_network(row["network"]))
        except AddressError as exc:
            log.warning("relay %r is left out: %s", row["network"], exc)
    return networks


def add_relay(store: Store, network: str, note: str = "") -> str:
    parsed = parse_network(network)
    if too_wide(parsed):     # an open relay is on every blocklist within hours
        raise AddressError(f"{parsed} would let most of the Internet send through the gateway"
                           f" (an open relay); a relay network is at most"
                           f" /{WIDEST_PREFIX[parsed.version]}")
    net, note = str(parsed), check_note(note)
    with store.transaction():
        store.execute("INSERT INTO relays (network, note, created) VALUES (?, ?, ?)"
                      " ON CONFLICT (network) DO UPDATE SET note = excluded.note",
                      (net, note, time.time()))
        store.bump_generation()
    return net


def remove_relay(store: Store, network: str) -> None:
    try:
        net = str(parse_network(network))
    except AddressError:
        net = network.strip()   # as an older release stored what this one refuses
    with store.transaction():
        if not store.execute("DELETE FROM relays WHERE network = ?", (net,)):
            raise AddressError(f"{net} is not a relay")
        store.bump_generation()
