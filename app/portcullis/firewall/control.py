"""Runtime control of the loaded ruleset: apply it, read counters and sets, block, unblock.

Everything here runs nft commands through libnftables in the caller's network namespace and
needs CAP_NET_ADMIN there.  Processes without it (the web UI) reach the same functions
through the control socket (``portcullis.firewall.client``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from portcullis.addresses import IPAddress, IPNetwork
from portcullis.firewall.nft import FirewallError, Nft
from portcullis.firewall.ruleset import TABLE, TABLE_FAMILY, TABLE_NAME

# Sets whose contents survive a re-apply (the ruleset replaces the table, so they would be
# lost otherwise): blocked SSH sources and known scanners keep their remaining time, the
# pushed black list stays until the monitor pushes it again.
KEPT_SETS = ("ssh_blocked_v4", "ssh_blocked_v6", "scanners_v4", "scanners_v6",
             "blacklist_v4", "blacklist_v6")
# Per-source state kept about an address (removed by unblock, so it starts afresh).
SOURCE_SETS = ("ssh_blocked", "ssh_meter", "scanners", "closed_meter")
# The IPv6 elements of every per-source set are a source's /64 (the ruleset masks the host
# bits away): one host may use every address of its /64.
IPV6_SOURCE_PREFIX = 64
MAX_BLOCK_MINUTES = 7 * 24 * 60
# Entries a status lists per kind (the totals count them all).  The sets hold up to 65,536
# sources per family, and anyone knocking on closed ports from many addresses fills the
# scanner sets: listed whole, the answer outgrew the control socket's limit and the web UI
# lost the firewall status.
STATUS_LIMIT = 1000


@dataclass(frozen=True)
class SetEntry:
    """One source in a dynamic set; ``expires`` in whole seconds (None: never)."""

    address: str
    expires: int | None


@dataclass(frozen=True)
class Counter:
    name: str
    packets: int
    bytes: int
    comment: str = ""


@dataclass
class FirewallStatus:
    """What the web UI and ``portcullis firewall status`` show."""

    loaded: bool
    counters: list[Counter] = field(default_factory=list)
    ssh_blocked: list[SetEntry] = field(default_factory=list)
    scanners: list[SetEntry] = field(default_factory=list)
    vendor_netblocks: list[str] = field(default_factory=list)
    black_list: list[str] = field(default_factory=list)
    # How many entries the sets hold; the lists above show at most STATUS_LIMIT of them.
    ssh_blocked_total: int = 0
    scanners_total: int = 0
    black_list_total: int = 0

    def counter(self, name: str) -> int:
        """Packets counted by the named counter (0 if the ruleset has no such counter)."""
        return next((c.packets for c in self.counters if c.name == name), 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FirewallStatus:
        ssh_blocked = [SetEntry(**e) for e in data.get("ssh_blocked", [])]
        scanners = [SetEntry(**e) for e in data.get("scanners", [])]
        black_list = list(data.get("black_list", []))
        return cls(
            loaded=bool(data["loaded"]),
            counters=[Counter(**c) for c in data.get("counters", [])],
            ssh_blocked=ssh_blocked,
            scanners=scanners,
            vendor_netblocks=list(data.get("vendor_netblocks", [])),
            black_list=black_list,
            ssh_blocked_total=int(data.get("ssh_blocked_total", len(ssh_blocked))),
            scanners_total=int(data.get("scanners_total", len(scanners))),
            black_list_total=int(data.get("black_list_total", len(black_list))),
        )


def parse_address(text: str) -> IPAddress:
    """One source address (IPv4-mapped IPv6 counts as IPv4); FirewallError if not one."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise FirewallError(f"{text!r} is not an IP address") from None
    if getattr(address, "scope_id", None) is not None:
        # "fe80::1%x": the zone text would be pasted into the nft command as it is
        raise FirewallError(f"{text!r}: an address with a zone is not a source to block")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def parse_source(text: str) -> IPAddress:
    """An address, or an IPv6 /64 as status lists sources (its first address)."""
    if "/" not in str(text):
        return parse_address(text)
    try:
        network = ipaddress.ip_network(str(text).strip())
    except ValueError:
        raise FirewallError(f"{text!r} is not an IP address") from None
    if network.version != 6 or network.prefixlen != IPV6_SOURCE_PREFIX:
        raise FirewallError(f"{text!r}: only an IPv6 /{IPV6_SOURCE_PREFIX} may be given "
                            "instead of an address")
    return parse_address(str(network.network_address))   # refuses a zone, as for one


def _key(source: IPAddress) -> str:
    """How the per-source sets hold this source."""
    if source.version == 6:
        return str(ipaddress.ip_network(f"{source}/{IPV6_SOURCE_PREFIX}", strict=False)
                   .network_address)
    return str(source)


def _shown(key: str, version: int) -> str:
    """A per-source set's element as status shows it: an IPv6 one as the /64 it is."""
    return key if version == 4 else f"{key}/{IPV6_SOURCE_PREFIX}"


def _sources(nft: Nft, stem: str) -> list[SetEntry]:
    """A per-source set of both families, as status shows them."""
    return set_entries(nft, f"{stem}_v4") + [
        SetEntry(_shown(e.address, 6), e.expires) for e in set_entries(nft, f"{stem}_v6")]


def _family(address: IPAddress | IPNetwork) -> str:
    return "v4" if address.version == 4 else "v6"


def table_handle(nft: Nft) -> int | None:
    """The loaded table's handle (a new one after every apply), None if not loaded."""
    # Only the tables: "list table" would list every element of every set (the black list
    # and the per-source sets may hold tens of thousands), every 30 s in the monitor.
    try:
        objects = nft.query(f"list tables {TABLE_FAMILY}")
    except FirewallError:
        return None
    return next((int(o["table"]["handle"]) for o in objects
                 if o.get("table", {}).get("family") == TABLE_FAMILY
                 and o["table"].get("name") == TABLE_NAME), None)


def table_loaded(nft: Nft) -> bool:
    return table_handle(nft) is not None


def set_entries(nft: Nft, name: str) -> list[SetEntry]:
    """The elements of one set of the loaded table."""
    entries: list[SetEntry] = []
    for obj in nft.query(f"list set {TABLE} {name}"):
        for element in obj.get("set", {}).get("elem", []):
            entries.append(_entry(element))
    return entries


def _entry(element: Any) -> SetEntry:
    if isinstance(element, dict) and "elem" in element:
        value = element["elem"].get("val")
        expires = element["elem"].get("expires")
    else:
        value, expires = element, None
    if isinstance(value, dict) and "prefix" in value:
        value = f"{value['prefix']['addr']}/{value['prefix']['len']}"
    elif isinstance(value, dict) and "range" in value:
        value = "-".join(str(v) for v in value["range"])
    return SetEntry(str(value), None if expires is None else int(expires))


def apply(nft: Nft, ruleset_text: str,
          black_list: Iterable[IPNetwork] | None = None) -> None:
    """Load the (rendered) ruleset in one transaction.

    Blocked SSH sources and scanners of the running ruleset are carried over with their
    remaining time; ``black_list`` (if given) fills the black-list drop sets.
    """
    carried: list[str] = []
    if table_loaded(nft):
        for name in KEPT_SETS:
            try:
                entries = set_entries(nft, name)
            except FirewallError:
                continue          # a set the old ruleset did not have
            elements = [e.address if e.expires is None else f"{e.address} timeout {e.expires}s"
                        for e in entries if e.expires is None or e.expires > 1]
            if elements:
                carried.append(f"add element {TABLE} {name} {{ {', '.join(elements)} }}")
    commands = [ruleset_text, *carried]
    if black_list is not None:
        commands.extend(_black_list_commands(black_list))
    nft.run("\n".join(commands) + "\n")


def _black_list_commands(networks: Iterable[IPNetwork]) -> list[str]:
    by_family: dict[str, list[Any]] = {"v4": [], "v6": []}
    for network in networks:
        if getattr(network.network_address, "scope_id", None) is not None:
            # its text would be pasted into the nft command as it is
            raise FirewallError(f"{network}: a network with a zone cannot be dropped")
        by_family[_family(network)].append(network)
    commands = []
    for family, items in by_family.items():
        commands.append(f"flush set {TABLE} blacklist_{family}")
        if items:
            merged = ipaddress.collapse_addresses(items)
            commands.append(f"add element {TABLE} blacklist_{family} "
                            f"{{ {', '.join(str(n) for n in merged)} }}")
    return commands


def push_black_list(nft: Nft, networks: Iterable[IPNetwork]) -> int:
    """Replace the black-list drop sets with these networks (one transaction)."""
    networks = list(networks)
    _require_table(nft)
    nft.run("\n".join(_black_list_commands(networks)) + "\n")
    return len(networks)


def status(nft: Nft) -> FirewallStatus:
    """Counters, blocked SSH sources with expiry, scanners, vendor and black-list sets."""
    if not table_loaded(nft):
        return FirewallStatus(loaded=False)
    counters = [Counter(name=obj["counter"]["name"], packets=int(obj["counter"]["packets"]),
                        bytes=int(obj["counter"]["bytes"]),
                        comment=obj["counter"].get("comment", ""))
                for obj in nft.query(f"list counters table {TABLE}") if "counter" in obj]
    ssh_blocked, scanners = _sources(nft, "ssh_blocked"), _sources(nft, "scanners")
    black_list = [e.address for e in _both(nft, "blacklist")]
    return FirewallStatus(
        loaded=True,
        counters=sorted(counters, key=lambda c: c.name),
        ssh_blocked=_latest(ssh_blocked),
        scanners=_latest(scanners),
        vendor_netblocks=[e.address for e in _both(nft, "vendor")],
        black_list=black_list[:STATUS_LIMIT],
        ssh_blocked_total=len(ssh_blocked),
        scanners_total=len(scanners),
        black_list_total=len(black_list),
    )


def _latest(entries: list[SetEntry]) -> list[SetEntry]:
    """At most STATUS_LIMIT entries, those with the most time left (never-expiring) first."""
    if len(entries) <= STATUS_LIMIT:
        return entries
    return sorted(entries, key=lambda e: (e.expires is not None, -(e.expires or 0))
                  )[:STATUS_LIMIT]


def _both(nft: Nft, stem: str) -> list[SetEntry]:
    return set_entries(nft, f"{stem}_v4") + set_entries(nft, f"{stem}_v6")


def _require_table(nft: Nft) -> None:
    if not table_loaded(nft):
        raise FirewallError(f"the firewall is not loaded (no table {TABLE}); "
                            "run portcullis firewall apply")


def block(nft: Nft, address: str, minutes: float) -> SetEntry:
    """Block a source from SSH for ``minutes`` (as the exhaustion guard does)."""
    source = parse_source(address)
    if not 0 < minutes <= MAX_BLOCK_MINUTES:
        raise FirewallError(f"block time must be between 1 second and {MAX_BLOCK_MINUTES} "
                            f"minutes, not {minutes}")
    seconds = max(1, round(minutes * 60))
    _require_table(nft)
    name, key = f"ssh_blocked_{_family(source)}", _key(source)
    # Delete first so a second block replaces the remaining time instead of failing.
    commands = [f"add element {TABLE} {name} {{ {key} timeout {seconds}s }}"]
    if any(e.address == key for e in set_entries(nft, name)):
        commands.insert(0, f"delete element {TABLE} {name} {{ {key} }}")
    nft.run("\n".join(commands) + "\n")
    return SetEntry(_shown(key, source.version), seconds)


def unblock(nft: Nft, address: str) -> list[str]:
    """Forget a source: off the SSH block set and the scanner set, its meters reset.

    Returns the sets it was removed from; FirewallError if it was in none of them.
    """
    source = parse_source(address)
    _require_table(nft)
    family = _family(source)
    key = _key(source)
    held = [f"{stem}_{family}" for stem in SOURCE_SETS
            if any(e.address == key for e in set_entries(nft, f"{stem}_{family}"))]
    if not any(name.startswith(("ssh_blocked", "scanners")) for name in held):
        raise FirewallError(f"{source} is not blocked")
    nft.run("".join(f"delete element {TABLE} {name} {{ {key} }}\n" for name in held))
    return held


__all__ = ["TABLE_NAME", "Counter", "FirewallStatus", "SetEntry", "apply", "block",
           "push_black_list", "set_entries", "status", "unblock"]
