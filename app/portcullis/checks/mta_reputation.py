"""What the connecting MTA (its IP, else its /24 or /64) has done here before."""

from __future__ import annotations

from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Symbol
from portcullis.reputation import mta


class MtaReputation(Check):
    name = "mta_reputation"
    stage = Stage.CONNECT
    inline = True
    description = "share of unwanted / accepted connections from this IP or network"

    async def check(self, ctx: Context) -> list[Symbol]:
        return mta.symbols(self.services.store, ctx.client_ip)
