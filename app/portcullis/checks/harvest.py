"""Address harvesting: clients that guess recipients (FAQ: "50% to 95% of all e-mail
connections are e-mail address guessing and/or e-mail relay attempts").

Every recipient refused as unknown (by the gateway or the internal host) or as a relay
attempt is counted against the client address — for IPv6 its /64, which one host can
fill with addresses of its own (``record_refusal``, called by the ``HarvestCounter``
observer when ``counts`` says so: never for a relay's mail).  When a client
reaches ``harvest_threshold`` within ``harvest_window`` minutes, every further recipient
from it — in this session and in new connections — is refused for ``harvest_block``
minutes, with 451 (``harvest_action`` tempfail: a real MTA that merely had a stale list
retries and gets through later) or 550 (reject).  Other clients are unaffected; a known
peer or a white-listed client is never blocked (the policy's flags see to that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portcullis.addresses import AddressError, IPNetwork, parse_ip, parse_network, source_of
from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Flag, Symbol
from portcullis.store import Store

if TYPE_CHECKING:
    from portcullis.directory.snapshot import Snapshot

# Refusals that count: as unknown, by the gateway's own list or callout cache or by the
# internal host's answer to RCPT (for a domain validated by callout it is the only word
# on a guessed address), and relay attempts.
COUNTED_REASONS = ("unknown", "relay")
CLIENT_PREFIX = {4: 32, 6: 64}     # what one client is counted as (addresses.source_of)


@dataclass(frozen=True)
class HarvestPolicy:
    threshold: int       # invalid recipients that make a harvester (0: detection off)
    window: float        # seconds over which they are counted
    block: float         # seconds a harvester is refused
    reject: bool         # 550 instead of 451

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> HarvestPolicy:
        return cls(threshold=int(settings["harvest_threshold"]),
                   window=float(settings["harvest_window"]) * 60,
                   block=float(settings["harvest_block"]) * 60,
                   reject=settings["harvest_action"] == "reject")


def counts(reason: str, client_ip: str, snapshot: Snapshot) -> bool:
    """Whether a recipient refused for ``reason`` counts against its client: never for a
    relay, the organisation's own mail server, whose users' typos are no harvesting."""
    return reason in COUNTED_REASONS and not snapshot.is_relay(parse_ip(client_ip))


def record_refusal(store: Store, client_ip: str, policy: HarvestPolicy,
                   now: float | None = None) -> bool:
    """Count one invalid recipient from ``client_ip``; return True if it is now blocked."""
    if not policy.threshold:
        return False
    now = time.time() if now is None else now
    client = source_of(client_ip)
    with store.transaction():
        row = store.query_one("SELECT invalid, window_start, blocked_until FROM harvest"
                              " WHERE client = ?", (client,))
        if row is None or now - row["window_start"] > policy.window:
            invalid, window_start = 1, now
        else:
            invalid, window_start = row["invalid"] + 1, row["window_start"]
        blocked_until = row["blocked_until"] if row is not None else 0.0
        if invalid >= policy.threshold:
            blocked_until = max(blocked_until, now + policy.block)
        store.execute(
            "INSERT INTO harvest (client, invalid, window_start, blocked_until)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (client) DO UPDATE SET"
            " invalid = excluded.invalid, window_start = excluded.window_start,"
            " blocked_until = excluded.blocked_until",
            (client, invalid, window_start, blocked_until))
    return blocked_until > now


def blocked_until(store: Store, client_ip: str, now: float | None = None) -> float | None:
    """When the block on ``client_ip`` ends, or None if it is not blocked."""
    now = time.time() if now is None else now
    until = store.scalar("SELECT blocked_until FROM harvest WHERE client = ?",
                         (source_of(client_ip),), default=0.0)
    return until if until > now else None


def purge(store: Store, policy: HarvestPolicy, now: float | None = None) -> int:
    """Forget clients whose counting window and block are both over."""
    now = time.time() if now is None else now
    return store.purge("harvest", "window_start < ? AND blocked_until < ?",
                       (now - policy.window, now))


def clients(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """Clients with invalid recipients counted, blocked ones first."""
    now = time.time() if now is None else now
    rows = store.query("SELECT client, invalid, window_start, blocked_until FROM harvest"
                       " ORDER BY blocked_until DESC, invalid DESC")
    return [dict(row) | {"blocked": row["blocked_until"] > now} for row in rows]


def unblock(store: Store, text: str) -> int:
    """Lift blocks and reset counts (an administrator's decision): of the client ``text``
    names, however it is written (an address, or the /64 or /32 ``clients`` shows), or
    of every client in a wider network.  The number of clients lifted; 0 for text that
    is no address or network."""
    try:
        named = parse_network(text)
    except AddressError:
        return 0
    if named.prefixlen >= CLIENT_PREFIX[named.version]:     # within one client: its key
        return store.execute("DELETE FROM harvest WHERE client = ?",
                             (source_of(str(named.network_address)),))
    # A wider network: every client counted is looked at (a botnet leaves many).
    lifted = [row["client"] for row in store.query("SELECT client FROM harvest")
              if _within(row["client"], named)]
    return store.executemany("DELETE FROM harvest WHERE client = ?",
                             [(client,) for client in lifted])


def _within(client: str, named: IPNetwork) -> bool:
    """Whether a counted client (an address or /64) lies in ``named``."""
    try:
        counted = parse_network(client)
    except AddressError:
        return False
    return counted.version == named.version and counted.subnet_of(named)


class HarvestDetection(Check):
    name = "harvest"
    stage = Stage.RCPT
    inline = True
    description = "refuse clients that tried too many invalid recipients"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        found = refusal(self.services.store, ctx.snapshot.settings, ctx.client_ip)
        return [] if found is None else [found]


def refusal(store: Store, settings: dict[str, Any], client_ip: str) -> Symbol | None:
    """The symbol refusing ``client_ip`` as a harvester, or None if it is not blocked."""
    policy = HarvestPolicy.from_settings(settings)
    if not policy.threshold or blocked_until(store, client_ip) is None:
        return None
    flag = Flag.REJECT if policy.reject else Flag.TEMPFAIL
    later = "" if policy.reject else ", try again later"
    return Symbol("HARVESTING", 0.0, f"Too many invalid recipients from {client_ip}"
                  f" (address harvesting){later}", flag)
