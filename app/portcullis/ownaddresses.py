"""The addresses of this machine: what a mail host must not be, or the gateway would hand
mail to its own port 25 (a loop) or to its other services.

Read from the kernel each time (``/proc``, of the network namespace the process runs in):
an appliance's LAN address may come from DHCP and change while it runs.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from portcullis.addresses import IPAddress, parse_ip

log = logging.getLogger(__name__)

# The kernel's IPv4 routing tables: every local address is a "/32 host LOCAL" leaf under
# its "|-- address" line.  IPv6 addresses: one a line, 32 hex digits first.
FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")


def own_addresses() -> frozenset[IPAddress]:
    """Every address of this machine's interfaces, loopback included; empty when the
    kernel's tables cannot be read (then only loopback is known to be ours)."""
    found: set[IPAddress] = set()
    try:
        last = ""
        for line in FIB_TRIE.read_text().splitlines():
            text = line.strip()
            if text.startswith("|-- "):
                last = text[4:]
            elif text == "/32 host LOCAL" and last:
                found.add(ipaddress.IPv4Address(last))
        for line in IF_INET6.read_text().splitlines():
            if line:
                found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError) as exc:
        log.warning("cannot read this machine's addresses: %s", exc)
    return frozenset(found)


def is_own_address(text: str) -> bool:
    """Whether ``text`` is an address of this machine: loopback, "any" or an interface's."""
    address = parse_ip(text)          # an IPv4-mapped address as the IPv4 one
    if address is None:
        return False
    return address.is_loopback or address.is_unspecified or address in own_addresses()


def names_this_appliance(host: str) -> bool:
    """Whether a host as written names the appliance itself by choice (loopback, "any",
    localhost): its own services (the outbound Postfix, a local relay; tests and ``make
    run``) are reached so, never by accident.  An interface's address is no such choice:
    its port 25 is the gateway itself."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = parse_ip(name)          # an IPv4-mapped address as the IPv4 one
    return address is not None and (address.is_loopback or address.is_unspecified)


def is_interface_address(host: str) -> bool:
    """Whether ``host`` is written as an address of one of this machine's interfaces
    (loopback and "any" aside, ``names_this_appliance``'s): what no next hop may be."""
    return not names_this_appliance(host) and is_own_address(host)
