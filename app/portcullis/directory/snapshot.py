"""The gateway's cached view of the directory, refreshed when the store says it changed.

Domains, relays, lists and settings are read per SMTP command; asking SQLite each time
would be wasteful, so a snapshot is kept and reloaded when the store's generation counter
moves (checked at most every ``REFRESH_SECONDS``).  Valid addresses are not cached: an ISP
may list hundreds of thousands, and an indexed lookup is cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from portcullis.addresses import IPAddress, IPNetwork, address_key, domain_matches
from portcullis.config import Config
from portcullis.directory.bwlists import stored_entries
from portcullis.directory.domains import Domain, list_domains
from portcullis.directory.relays import stored_relays
from portcullis.directory.settings import DEFAULT_RECIPIENT_DELIMITER, get_settings
from portcullis.directory.valid_addresses import subaddress_owner
from portcullis.policy import Thresholds
from portcullis.store import Store

REFRESH_SECONDS = 1.0


@dataclass
class BWList:
    networks: list[IPNetwork] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)
    delimiter: str = DEFAULT_RECIPIENT_DELIMITER    # recipient_delimiter

    @classmethod
    def load(cls, store: Store, kind: str, delimiter: str) -> BWList:
        result = cls(delimiter=delimiter)
        for entry in stored_entries(store, kind):
            if entry.network is not None:
                result.networks.append(entry.network)
            elif entry.kind == "address":
                result.addresses.add(entry.text)
            else:
                result.domains.append(entry.text)
        return result

    def match_ip(self, ip: IPAddress | None) -> str | None:
        if ip is None:
            return None
        for net in self.networks:
            if ip.version == net.version and ip in net:
                return str(net)
        return None

    def match_sender(self, address: str) -> str | None:
        # As entries are stored: a sender writing the domain in U-labels, capitals or
        # with the root's dot is the same sender (the black list was escaped so).
        # A listed user's subaddresses are theirs (user+ext@ is looked up as user@ too,
        # as Postfix's access maps do): a newsletter's VERP bounce address, or a
        # black-listed sender one '+' away.
        address = address_key(address)
        for candidate in (address, subaddress_owner(address, self.delimiter)):
            if candidate in self.addresses:
                return candidate
        domain = address.rpartition("@")[2]
        for pattern in self.domains:
            if domain and domain_matches(domain, pattern):
                return pattern
        return None


@dataclass
class Snapshot:
    domains: dict[str, Domain]
    relays: list[IPNetwork]
    black: BWList
    white: BWList
    settings: dict[str, Any]
    generation: int

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.settings["tag_threshold"], self.settings["reject_threshold"])

    def is_relay(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip.version == n.version and ip in n for n in self.relays)


def load_snapshot(store: Store, config: Config) -> Snapshot:
    generation = store.generation()
    settings = get_settings(store, config)
    delimiter = settings["recipient_delimiter"]
    return Snapshot(
        domains={d.name: d for d in list_domains(store)},
        relays=stored_relays(store),
        black=BWList.load(store, "black", delimiter),
        white=BWList.load(store, "white", delimiter),
        settings=settings,
        generation=generation,
    )


class SnapshotCache:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self._snapshot = load_snapshot(store, config)
        self._checked = time.monotonic()

    def get(self) -> Snapshot:
        now = time.monotonic()
        if now - self._checked >= REFRESH_SECONDS:
            self._checked = now
            if self.store.generation() != self._snapshot.generation:
                self._snapshot = load_snapshot(self.store, self.config)
        return self._snapshot
