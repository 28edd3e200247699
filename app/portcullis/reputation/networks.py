"""The network an MTA sends from: its /24 (IPv4) or /64 (IPv6)."""

from __future__ import annotations

import ipaddress

from portcullis.addresses import IPAddress, parse_ip


def network_of(ip: IPAddress | str | None) -> str:
    """``a.b.c.0/24`` or ``x:x:x:x::/64`` for an address; '' when there is none."""
    address = parse_ip(ip) if isinstance(ip, str) else ip
    if address is None:
        return ""
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
