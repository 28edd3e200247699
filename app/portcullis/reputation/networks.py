"""The network an MTA sends from: its /24 (IPv4) or /64 (IPv6)."""

from __future__ import annotations

import functools
import ipaddress

from portcullis.addresses import IPAddress, parse_ip


# A message asks for its client's network up to three times (the peers check, the
# learner, the MTA record), and busy MTAs come back: parsing and formatting the address
# cost more than the rest of those steps.  Bounded, by address (never by message).
@functools.lru_cache(maxsize=4096)
def network_of(ip: IPAddress | str | None) -> str:
    """``a.b.c.0/24`` or ``x:x:x:x::/64`` for an address; '' when there is none."""
    address = parse_ip(ip) if isinstance(ip, str) else ip
    if address is None:
        return ""
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
