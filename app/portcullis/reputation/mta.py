"""MTA reputation: what each sending IP (an IPv6 client's /64), and an IPv4 client's
/24, has done here.

Every inbound connection that decided a message or had a recipient refused counts once
for its IP (an IPv6 client's /64, as everywhere: ``addresses.source_of``) and once for an
IPv4 client's /24: *unwanted* if it came from a DNSBL-listed or black-listed address or
tried invalid recipients or relaying (the FAQ's definition), *accepted* if every message
it brought was accepted below the Tag threshold (mail for a domain without filtering
was not judged, and counts for nothing: through such a domain a spammer's MTA would earn
the bonus of a legitimate one).  Counters decay by half every
``mta_days`` days, so the lists show what MTAs do now, and rows that decayed to nothing
are removed.

Top Spammers: 50 or more connections, 95% or more unwanted.  Top Legitimate: over 50
connections, 95% or more accepted.  Top 50 of each, busiest first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from portcullis.addresses import source_of
from portcullis.events import UNFILTERED, ConnectionClosed
from portcullis.policy import Symbol
from portcullis.reputation.networks import network_of
from portcullis.store import Store

DAY = 86400.0
TOP = 50
SPAMMER_CONNECTIONS = 50        # "50 or more connections"
SPAMMER_SHARE = 0.95
LEGITIMATE_CONNECTIONS = 50     # "over 50 connections"
LEGITIMATE_SHARE = 0.95
# Scoring: how much history an IP or network needs before its record counts.
SCORE_MIN_IP = 10
SCORE_MIN_NET = 20
BAD_SHARE = 0.8
GOOD_SHARE = 0.95


@dataclass(frozen=True)
class Standing:
    address: str
    connections: float
    unwanted: float
    accepted: float
    tagged: float
    rejected: float
    first_seen: float
    last_seen: float

    @property
    def unwanted_share(self) -> float:
        return self.unwanted / self.connections if self.connections else 0.0

    @property
    def accepted_share(self) -> float:
        return self.accepted / self.connections if self.connections else 0.0

    def to_json(self) -> dict:
        return {"address": self.address, "connections": round(self.connections, 1),
                "unwanted": round(self.unwanted, 1), "accepted": round(self.accepted, 1),
                "tagged": round(self.tagged, 1), "rejected": round(self.rejected, 1),
                "unwanted_share": round(self.unwanted_share, 4),
                "accepted_share": round(self.accepted_share, 4),
                "first_seen": self.first_seen, "last_seen": self.last_seen}


def classify_connection(event: ConnectionClosed) -> dict[str, int]:
    """The counters one connection adds (each 0 or 1)."""
    refused = event.refused
    verdicts = event.verdicts
    unwanted = bool(refused["unknown"] or refused["relay"] or refused["policy"]
                    or verdicts["listed"])
    decided = sum(v for k, v in verdicts.items() if k not in ("listed", UNFILTERED))
    accepted = not unwanted and decided > 0 and verdicts["accept"] == decided
    return {"connections": 1, "unwanted": int(unwanted), "accepted": int(accepted),
            "tagged": int(verdicts["tag"] > 0), "rejected": int(verdicts["reject"] > 0)}


def counts_as_connection(event: ConnectionClosed) -> bool:
    """Only connections that got a verdict count: a greylisted attempt was not judged,
    nor mail for a domain without filtering."""
    judged = any(v for k, v in event.verdicts.items() if k not in ("tempfail", UNFILTERED))
    return judged or any(v for k, v in event.refused.items() if not k.endswith("-temporary"))


def record(store: Store, event: ConnectionClosed) -> None:
    if not counts_as_connection(event):
        return
    network = network_of(event.client_ip)
    if not network:
        return
    add = classify_connection(event)
    sender = source_of(event.client_ip)
    # An IPv6 sender is its /64 (its own network): a row per address let a spammer that
    # takes a new address for each connection stay off Top Spammers and MTA_BAD_IP,
    # and grow the table by a row per connection.
    records = [(sender, "ip")] + ([(network, "net")] if network != sender else [])
    # One statement for both rows: atomic by itself, so no BEGIN and COMMIT of its own
    # (a transaction's two extra statements cost as much as the upsert).
    counts = (add["connections"], add["unwanted"], add["accepted"], add["tagged"],
              add["rejected"], event.when, event.when)
    store.execute(
        # Only fixed placeholders are joined here.
        "INSERT INTO mta_reputation (address, kind, connections, unwanted, accepted,"  # noqa: S608
        " tagged, rejected, first_seen, last_seen) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(records))
        + " ON CONFLICT (address) DO UPDATE SET"
        " connections = connections + excluded.connections,"
        " unwanted = unwanted + excluded.unwanted,"
        " accepted = accepted + excluded.accepted,"
        " tagged = tagged + excluded.tagged, rejected = rejected + excluded.rejected,"
        " last_seen = excluded.last_seen",
        [value for address, kind in records for value in (address, kind, *counts)])


# Standing's fields in order, read as plain tuples: the lookup runs at every connection.
_STANDING = ("SELECT address, connections, unwanted, accepted, tagged, rejected, first_seen,"
             " last_seen FROM mta_reputation")


def standing(store: Store, address: str) -> Standing | None:
    rows = store.query_values(_STANDING + " WHERE address = ?", (address,))
    return Standing(*rows[0]) if rows else None


def top_spammers(store: Store, limit: int = TOP) -> list[Standing]:
    """MTAs with 50 or more connections, 95% or more of them unwanted; busiest first."""
    rows = store.query_values(
        _STANDING + " WHERE kind = 'ip' AND connections >= ?"
        " AND unwanted >= ? * connections ORDER BY connections DESC, address LIMIT ?",
        (SPAMMER_CONNECTIONS, SPAMMER_SHARE, limit))
    return [Standing(*r) for r in rows]


def top_legitimate(store: Store, limit: int = TOP) -> list[Standing]:
    """MTAs with over 50 connections, 95% or more of them accepted; busiest first."""
    rows = store.query_values(
        _STANDING + " WHERE kind = 'ip' AND connections > ?"
        " AND accepted >= ? * connections ORDER BY connections DESC, address LIMIT ?",
        (LEGITIMATE_CONNECTIONS, LEGITIMATE_SHARE, limit))
    return [Standing(*r) for r in rows]


def symbols(store: Store, client_ip: str) -> list[Symbol]:
    """Score contributions from the record of the client's IP (an IPv6 client's /64),
    else (too little history, or a mixed one) its network's: an address of a spammers'
    /24 that mixes in some wanted mail must not escape the network's penalty."""
    source, network = source_of(client_ip), network_of(client_ip)
    # Both records in one read (a new or mixed IP needs its network's too).
    found = {row[0]: Standing(*row) for row in store.query_values(
        _STANDING + " WHERE address IN (?, ?)", (source, network))}
    ip = found.get(source)
    if ip is not None and ip.connections >= SCORE_MIN_IP:
        if ip.unwanted_share >= BAD_SHARE:
            return [Symbol("MTA_BAD_IP", round(3.0 * ip.unwanted_share, 2),
                           f"MTA {client_ip}: {ip.unwanted_share:.0%} of "
                           f"{ip.connections:.0f} connections unwanted")]
        if ip.accepted_share >= GOOD_SHARE:
            return [Symbol("MTA_GOOD_IP", -1.5, f"MTA {client_ip}: {ip.accepted_share:.0%} "
                           f"of {ip.connections:.0f} connections accepted")]
    net = found.get(network) if network else None
    if net is not None and net.connections >= SCORE_MIN_NET:
        if net.unwanted_share >= BAD_SHARE:
            return [Symbol("MTA_BAD_NET", round(2.0 * net.unwanted_share, 2),
                           f"network {network}: {net.unwanted_share:.0%} of "
                           f"{net.connections:.0f} connections unwanted")]
        if net.accepted_share >= GOOD_SHARE:
            return [Symbol("MTA_GOOD_NET", -0.5, f"network {network}: "
                           f"{net.accepted_share:.0%} of {net.connections:.0f} "
                           "connections accepted")]
    return []


def decay(store: Store, half_life_days: float, now: float | None = None) -> int:
    """Halve counters every ``half_life_days`` (applied in whole days, so counts stay
    exact between upkeep runs); drop rows that decayed below one connection.  Returns
    the number of rows removed."""
    now = time.time() if now is None else now
    days = _claim_decay_days(store, now)
    if not days:
        return 0
    factor = 0.5 ** (days / max(half_life_days, 1e-6))
    # In batches (Store.purge), up to the rows there now: a record a gateway adds
    # meanwhile is not decayed before it counted.
    store.purge("mta_reputation", "rowid <= ?",
                (store.scalar("SELECT max(rowid) FROM mta_reputation", default=0),),
                update="connections = connections * ?, unwanted = unwanted * ?,"
                " accepted = accepted * ?, tagged = tagged * ?, rejected = rejected * ?",
                values=(factor,) * 5)
    return store.purge("mta_reputation", "connections < 1")


def _claim_decay_days(store: Store, now: float) -> int:
    """The whole days of decay due, marked done in the same transaction, so a second
    upkeep at once (``portcullis maintenance`` beside the gateway's) decays nothing, and
    one cut off halfway leaves rows decayed once at most.  A decay stamped after now (a
    clock that ran ahead, set back) counts as done now (store/clock.py's rule): nothing
    decayed until the clock caught up."""
    with store.transaction():
        stored = float(store.scalar("SELECT value FROM reputation_meta WHERE key ="
                                    " 'mta_decayed'", default=0.0))
        last = min(stored, now)
        days = int((now - last) // DAY) if last else 0
        decayed = last + days * DAY if last else now
        if decayed != stored:
            store.execute("UPDATE reputation_meta SET value = ? WHERE key = 'mta_decayed'",
                          (decayed,))
    return days
