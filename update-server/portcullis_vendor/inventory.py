"""The inventory: which appliances to push to (a TOML file).

    user = "pcupdate"               # defaults for every appliance (optional)
    port = 22
    known_hosts = "known_hosts"     # relative to this file: the appliances' host keys

    [[appliance]]
    name = "acme-gw1"
    host = "192.0.2.10"
    port = 22                       # optional, else the default above
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class InventoryError(Exception):
    """An unusable inventory; the message names the file and the entry."""


@dataclass(frozen=True)
class Appliance:
    name: str
    host: str
    port: int = 22
    user: str = "pcupdate"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port != 22 else self.host


@dataclass(frozen=True)
class Inventory:
    path: Path
    appliances: tuple[Appliance, ...]
    known_hosts: Path


def load_inventory(path: Path) -> Inventory:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such inventory file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read: {exc}") from None
    unknown = set(raw) - {"user", "port", "known_hosts", "appliance"}
    if unknown:
        raise InventoryError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    user = _text(raw.get("user", "pcupdate"), f"{path}: user")
    port = _port(raw.get("port", 22), f"{path}: port")
    known_hosts = path.parent / _text(raw.get("known_hosts", "known_hosts"),
                                      f"{path}: known_hosts")
    entries = raw.get("appliance", [])
    if not isinstance(entries, list) or not entries:
        raise InventoryError(f"{path}: lists no [[appliance]]")
    appliances = [_appliance(e, i, path, user, port) for i, e in enumerate(entries)]
    names = [a.name for a in appliances]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InventoryError(f"{path}: appliance {duplicate!r} is listed twice")
    # One appliance under two names: both pushes run at once, and its agent turns the
    # second away ("another bundle is being received"), a failure that is none.
    named: dict[tuple[str, int], list[Appliance]] = {}
    for appliance in appliances:
        named.setdefault((appliance.host.lower(), appliance.port), []).append(appliance)
    twice = next((same for same in named.values() if len(same) > 1), None)
    if twice:
        raise InventoryError(f"{path}: {twice[0].address} is listed twice "
                             f"({', '.join(a.name for a in twice)}): one appliance, one entry")
    return Inventory(path, tuple(appliances), known_hosts)


def _appliance(entry: Any, index: int, path: Path, user: str, port: int) -> Appliance:
    where = f"{path}: appliance #{index + 1}"
    if not isinstance(entry, dict):
        raise InventoryError(f"{where}: must be a table")
    unknown = set(entry) - {"name", "host", "port", "user"}
    if unknown:
        raise InventoryError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = _text(entry.get("name"), f"{where}: name")
    if not _NAME.fullmatch(name):
        raise InventoryError(f"{where}: name {name!r} must be letters, digits, . _ -")
    return Appliance(name, _text(entry.get("host"), f"{where}: host"),
                     _port(entry.get("port", port), f"{where}: port"),
                     _text(entry.get("user", user), f"{where}: user"))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InventoryError(f"{where}: must be non-empty text")
    return value.strip()


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise InventoryError(f"{where}: must be a port number")
    return value
