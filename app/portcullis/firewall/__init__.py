"""The appliance firewall: the nftables ruleset, its runtime control, the scan log and the
tarpit.

The functions here are what the CLI (``portcullis firewall ...``) and the web UI call:

- ``status(config)``: named counters, blocked SSH sources with their expiry, scanners;
- ``block(config, address, minutes)`` / ``unblock(config, address)``;
- ``push_black_list(config)``: drop the administrator's IP black list at the firewall now
  (when ``[firewall] drop_black_list`` is on; the monitor also does it every 30 seconds);
- ``apply(config)``: load the ruleset with the site's values; ``check(config)``: validate it
  without root.

A process with CAP_NET_ADMIN (root, the monitor) talks to nftables itself; any other (the
web UI) goes through the monitor's control socket.  ``connect`` picks, so callers never care.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from portcullis.config import Config
from portcullis.firewall import control
from portcullis.firewall.check import check_ruleset
from portcullis.firewall.client import ControlClient
from portcullis.firewall.control import Counter, FirewallStatus, SetEntry
from portcullis.firewall.nft import FirewallError, Nft
from portcullis.firewall.ruleset import SiteValues, read, render

CAP_NET_ADMIN = 12

__all__ = ["ControlClient", "Counter", "Firewall", "FirewallError", "FirewallStatus",
           "LocalFirewall", "SetEntry", "SiteValues", "apply", "block", "check", "connect",
           "push_black_list", "rendered_ruleset", "status", "unblock"]


class Firewall(Protocol):
    """What callers can do with the firewall, wherever it is reached from."""

    def status(self) -> FirewallStatus: ...

    def block(self, address: str, minutes: float | None = None) -> SetEntry: ...

    def unblock(self, address: str) -> list[str]: ...


class LocalFirewall:
    """nftables in this process's network namespace (needs CAP_NET_ADMIN)."""

    def __init__(self, config: Config, nft: Nft | None = None) -> None:
        self.config = config
        self.nft = nft or Nft()

    def status(self) -> FirewallStatus:
        return control.status(self.nft)

    def block(self, address: str, minutes: float | None = None) -> SetEntry:
        return control.block(self.nft, address,
                             self.config.firewall.ssh_block_minutes if minutes is None
                             else minutes)

    def unblock(self, address: str) -> list[str]:
        return control.unblock(self.nft, address)


def has_net_admin() -> bool:
    """Whether this process holds CAP_NET_ADMIN (so may administer nftables itself)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError):
        pass
    return False


def connect(config: Config) -> Firewall:
    """The firewall: directly when privileged, else through the control socket."""
    if has_net_admin():
        return LocalFirewall(config)
    return ControlClient(config.firewall.control_socket)


def rendered_ruleset(config: Config, ruleset: Path | None = None) -> str:
    """The ruleset file with this site's values, as ``apply`` would load it."""
    site = SiteValues.from_config(config.firewall)
    return render(read(ruleset or config.firewall.ruleset), site)


def apply(config: Config, ruleset: Path | None = None) -> str:
    """Validate and load the ruleset with the site's values; return the loaded text."""
    text = rendered_ruleset(config, ruleset)
    # The pushed black list is carried into the new table only while it is to be dropped.
    control.apply(Nft(), text, black_list=None if config.firewall.drop_black_list else [])
    return text


def check(config: Config, ruleset: Path | None = None) -> str:
    """Validate the ruleset with the site's values, without root; return the text."""
    text = rendered_ruleset(config, ruleset)
    check_ruleset(text)
    return text


def status(config: Config) -> FirewallStatus:
    """Counters, blocked SSH sources (with seconds to expiry) and scanners."""
    return connect(config).status()


def block(config: Config, address: str, minutes: float | None = None) -> SetEntry:
    """Block a source from SSH (default: the configured ssh_block_minutes)."""
    return connect(config).block(address, minutes)


def unblock(config: Config, address: str) -> list[str]:
    """Lift a block (SSH block set and scanner set); FirewallError if none held it."""
    return connect(config).unblock(address)


def push_black_list(config: Config) -> int | None:
    """Have the monitor put the store's IP black list into the drop sets now.

    Returns how many networks are dropped, or None when ``drop_black_list`` is off.  The
    monitor reads the store as its own unprivileged user, so no root process ever opens
    (and leaves root-owned files in) the state directory.
    """
    return ControlClient(config.firewall.control_socket).push_black_list()
