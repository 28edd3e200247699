"""DNS blocklists for the connecting client (FAQ: "RBL Block").

The lookups start as the client connects (``Stage.CONNECT``) and are answered by the
first RCPT, so a listed client is refused there with ``550 5.7.1 RBL Block: <zone> <ip>``
(plus the administrator's reject text).  IPv4 clients are looked up by reversed octets,
IPv6 clients by reversed nibbles.  A silent or failing resolver fails open: the client is
judged without the zone and a ``DNSBL_UNAVAILABLE`` symbol says so.  The zones and what
their answers mean are the ``dnsbl_zones`` setting (grammar in ``blocklists.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portcullis.blocklists import REJECT, BlocklistZone, ZoneCache
from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Flag, Symbol
from portcullis.resolver import DnsAnswer, DnsStatus, reversed_ip

if TYPE_CHECKING:
    from portcullis.services import Services

LISTED_SCORE = 5.0   # what a rejecting listing adds when a peer's protection overrides it


def unavailable(zone: BlocklistZone, subject: str, answer: DnsAnswer) -> Symbol:
    """The fail-open symbol for a zone that could not be asked."""
    why = {DnsStatus.TIMEOUT: f"the resolver gave no answer ({answer.detail})",
           DnsStatus.UNAVAILABLE: "the resolver is not answering",
           }.get(answer.status, f"lookup failed ({answer.detail})")
    return Symbol("DNSBL_UNAVAILABLE", 0.0,
                  f"{zone.label} not consulted for {subject}: {why}; judged without it")


class Dnsbl(Check):
    name = "dnsbl"
    stage = Stage.CONNECT
    description = "the client's address on a DNS blocklist (IPv4 and IPv6)"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        # The resolver bounds each lookup; this only catches a check that went astray.
        self.timeout = self.services.config.dns.timeout * 2 + 1
        self.zones = ZoneCache(REJECT)

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        ip = ctx.ip
        zones = self.zones.get(ctx.snapshot.settings["dnsbl_zones"])
        if ip is None or not zones or ip.is_unspecified or ip.is_multicast:
            return []
        query = reversed_ip(ip)
        resolver = self.services.resolver
        answers = await resolver.lookup_all([(f"{query}.{zone.zone}", "A")
                                             for zone in zones])
        found: list[Symbol] = []
        for zone, answer in zip(zones, answers, strict=True):
            if answer.status.failed:
                found.append(unavailable(zone, str(ip), answer))
                continue
            action, code, refused = zone.judge(answer.records)
            if refused:
                found.append(Symbol("DNSBL_REFUSED", 0.0,
                                    f"{zone.label} refused the query ({code}): use a resolver "
                                    "of your own for it; judged without it"))
            elif action == REJECT:
                found.append(Symbol(f"DNSBL_{zone.tag}", LISTED_SCORE,
                                    f"RBL Block: {zone.label} {ip}", Flag.REJECT))
            elif action is not None:
                found.append(Symbol(f"DNSBL_{zone.tag}", float(action),
                                    f"{ip} listed in {zone.label} ({code})"))
        return found
