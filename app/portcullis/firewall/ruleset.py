"""The reviewable ruleset (``firewall/portcullis.nft``) and its site values.

The ruleset file loads as it is with ``nft -f``; its site values are ``define``s at the
top, and, where nft 1.0's grammar takes no variable (set timeouts, limit rates, log
groups), literals on lines marked ``# site: NAME``.  ``render`` puts a site's values into
both kinds of place and refuses a file whose defines or marks are not the expected ones, so
the ruleset and this module cannot silently drift apart.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portcullis.addresses import AddressError, vendor_network
from portcullis.config import FirewallConfig
from portcullis.firewall.nft import FirewallError

TABLE_FAMILY = "inet"
TABLE_NAME = "portcullis"
TABLE = f"{TABLE_FAMILY} {TABLE_NAME}"

_DEFINE_RE = re.compile(r"^define\s+(\w+)\s*=.*$", re.MULTILINE)
_MARK_RE = re.compile(r"#\s*site:\s*(\w+)\s*$")
_TIMEOUT_RE = re.compile(r"\btimeout\s+\d+[smhd]?\b")
_RATE_OVER_RE = re.compile(r"\blimit rate over \d+/minute burst \d+ packets\b")
_RATE_RE = re.compile(r"\blimit rate \d+/minute burst \d+ packets\b")
_GROUP_RE = re.compile(r"\bgroup \d+\b")
# Entries the scanner sets (65,536 each) may ever hold, with room for the kernel's
# once-a-second collection of expired ones.
SCANNER_MARKS = 60000
# Ports the ruleset itself serves or answers; the tarpit must not take one of them.
_SERVED_PORT_DEFINES = ("ssh_port", "public_tcp_ports", "reset_tcp_ports")


@dataclass(frozen=True)
class SiteValues:
    """Everything about one site the ruleset needs, validated."""

    vendor_v4: tuple[ipaddress.IPv4Network, ...]
    vendor_v6: tuple[ipaddress.IPv6Network, ...]
    ssh_rate: int
    ssh_block_seconds: int
    scan_log_rate: int
    scan_log_group: int
    scanner_seconds: int
    tarpit_port: int
    syn_proxy: bool = True

    @classmethod
    def from_config(cls, config: FirewallConfig) -> SiteValues:
        """Validate the ``[firewall]`` section; errors name the key."""
        v4: list[ipaddress.IPv4Network] = []
        v6: list[ipaddress.IPv6Network] = []
        for text in config.vendor_netblocks:
            try:
                network = vendor_network(text)
            except AddressError as exc:
                raise FirewallError(f"[firewall] vendor_netblocks: {exc}") from None
            (v4 if network.version == 4 else v6).append(network)  # type: ignore[arg-type]
        for key, low, high in (("ssh_rate", 1, 10000), ("scan_log_rate", 1, 10000),
                               ("scan_log_group", 0, 65535), ("tarpit_port", 1, 65535)):
            value = getattr(config, key)
            if not low <= value <= high:
                raise FirewallError(f"[firewall] {key}: must be between {low} and {high}, "
                                    f"not {value}")
        return cls(
            vendor_v4=tuple(ipaddress.collapse_addresses(v4)),
            vendor_v6=tuple(ipaddress.collapse_addresses(v6)),
            ssh_rate=config.ssh_rate,
            ssh_block_seconds=_seconds("ssh_block_minutes", config.ssh_block_minutes),
            scan_log_rate=config.scan_log_rate,
            scan_log_group=config.scan_log_group,
            scanner_seconds=_seconds("scanner_minutes", config.scanner_minutes),
            tarpit_port=config.tarpit_port,
            syn_proxy=config.syn_proxy,
        )


def _seconds(key: str, minutes: float) -> int:
    # NaN and infinity (config.load refuses them; a FirewallConfig built in code may not)
    seconds = round(minutes * 60) if math.isfinite(minutes) else 0
    if not 1 <= seconds <= 7 * 86400:
        raise FirewallError(f"[firewall] {key}: must be between 1 second and 7 days")
    return seconds


def scanner_marks_per_minute(scanner_seconds: int) -> int:
    """How many new scanners a minute the scanner sets take: a burst of that many plus a
    scanner_timeout's worth at that rate stays within SCANNER_MARKS, under the sets' size,
    so forged sources marked as scanners can never fill them."""
    half = SCANNER_MARKS // 2
    return max(1, min(half, half * 60 // scanner_seconds))


def _rate_over(per_minute: int) -> str:
    return f"limit rate over {per_minute}/minute burst {per_minute} packets"


def _nft_set(networks: tuple[ipaddress.IPv4Network, ...] | tuple[ipaddress.IPv6Network, ...]
             ) -> str:
    return "{ " + ", ".join(str(n) for n in networks) + " }" if networks else "{ }"


def read(path: Path) -> str:
    """The ruleset text; a missing or unreadable file is a FirewallError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FirewallError(f"{path}: cannot read the ruleset: {exc.strerror}") from None


def render(text: str, site: SiteValues) -> str:
    """The ruleset with the site's values in place of the defaults."""
    defines: dict[str, str] = {
        "vendor_v4": _nft_set(site.vendor_v4),
        "vendor_v6": _nft_set(site.vendor_v6),
        "tarpit_port": str(site.tarpit_port),
        # The SYN proxy takes the public ports, or none when turned off.
        "syn_proxy_ports": "$public_tcp_ports" if site.syn_proxy else "{ }",
    }
    marks: dict[str, list[tuple[re.Pattern[str], Callable[[], str]]]] = {
        "ssh_block": [(_TIMEOUT_RE, lambda: f"timeout {site.ssh_block_seconds}s")],
        "scanner_timeout": [(_TIMEOUT_RE, lambda: f"timeout {site.scanner_seconds}s")],
        "scanner_marks": [(_RATE_OVER_RE, lambda: _rate_over(
            scanner_marks_per_minute(site.scanner_seconds)))],
        "ssh_rate": [(_RATE_OVER_RE, lambda: _rate_over(site.ssh_rate))],
        "scan_log": [(_RATE_RE, lambda: f"limit rate {site.scan_log_rate}/minute "
                                        f"burst {site.scan_log_rate} packets"),
                     (_GROUP_RE, lambda: f"group {site.scan_log_group}")],
    }
    seen_defines: set[str] = set()
    seen_marks: set[str] = set()
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        define = _DEFINE_RE.match(line.rstrip("\n"))
        if define and define.group(1) in defines:
            name = define.group(1)
            if name in seen_defines:
                raise FirewallError(f"ruleset line {number + 1}: {name} defined twice")
            seen_defines.add(name)
            lines[number] = f"define {name} = {defines[name]}\n"
            continue
        mark = _MARK_RE.search(line)
        if not mark:
            continue
        name = mark.group(1)
        if name not in marks:
            raise FirewallError(f"ruleset line {number + 1}: unknown site mark {name!r}")
        seen_marks.add(name)
        for pattern, value in marks[name]:
            line, count = pattern.subn(value(), line)
            if count != 1:
                raise FirewallError(f"ruleset line {number + 1}: site mark {name!r} expects "
                                    f"exactly one {pattern.pattern!r}")
        lines[number] = line
    missing = sorted((set(defines) - seen_defines) | (set(marks) - seen_marks))
    if missing:
        raise FirewallError(f"ruleset lacks the site values {', '.join(missing)}")
    if site.tarpit_port in _served_ports(text):
        # Scanners would be redirected to a real service (25: the gateway) instead.
        raise FirewallError(f"[firewall] tarpit_port: {site.tarpit_port} is a port the "
                            "firewall serves or answers itself")
    return "".join(lines)


def _served_ports(text: str) -> set[int]:
    ports: set[int] = set()
    for define in _DEFINE_RE.finditer(text):
        if define.group(1) in _SERVED_PORT_DEFINES:
            value = define.group(0).split("=", 1)[1]
            ports.update(int(port) for port in re.findall(r"\b\d+\b", value))
    return ports
