"""Peer and one-way relationships between the sender and this recipient (RCPT stage, so
the bonus, and a peer's protection, are kept per recipient)."""

from __future__ import annotations

from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Symbol
from portcullis.reputation import oneway, peers
from portcullis.reputation.networks import network_of


class Relationships(Check):
    name = "relationships"
    stage = Stage.RCPT
    inline = True
    description = "bonus for known peers (replies are permission) and regular senders"

    async def check(self, ctx: Context) -> list[Symbol]:
        sender = peers.correspondent(ctx.mail_from)
        if "@" not in sender or not ctx.recipient:
            return []
        settings = self.services.config.reputation
        store = self.services.store
        found = peers.symbols(peers.lookup(store, ctx.recipient, sender),
                              settings.peer_protect_exchanges)
        if any(s.name == "PEER" for s in found):
            return found
        network = network_of(ctx.ip)
        if network:
            found += oneway.symbols(oneway.lookup(store, sender, ctx.recipient, network),
                                    settings.one_way_min_messages)
        return found
