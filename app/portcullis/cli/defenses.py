"""``portcullis dnsbl|greylist|harvest``: look at and correct what the defenses decided.

The settings themselves (zones, delays, thresholds) are ``portcullis settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from portcullis.addresses import AddressError, parse_ip
from portcullis.checks.base import Context
from portcullis.checks.dnsbl import Dnsbl
from portcullis.checks.greylist import Greylist, GreylistPolicy, parse_client
from portcullis.checks.harvest import clients, unblock
from portcullis.cli.common import (
    CommandError,
    add_command,
    domain_name,
    number,
    open_services,
    print_json,
    print_table,
)

MAX_SHOWN = 100_000   # greylist entries one 'show' prints


def register(subparsers: argparse._SubParsersAction) -> None:
    dnsbl = add_command(subparsers, "dnsbl", "DNS blocklists of client addresses")
    sub = dnsbl.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = add_command(sub, "check", "look an address up in the configured zones now")
    check.add_argument("ip")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=dnsbl_check)

    greylist = add_command(subparsers, "greylist", "greylisting entries")
    sub = greylist.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = add_command(sub, "show", "recent entries and auto-whitelisted networks")
    show.add_argument("--client", default="", metavar="IP|NETWORK",
                      help="only this client's network")
    show.add_argument("--domain", action="append", type=domain_name, metavar="DOMAIN",
                      help="only entries for recipients in this domain (repeatable)")
    show.add_argument("--limit", type=number(int, 1, MAX_SHOWN), default=50,
                      help=f"at most this many entries (1 to {MAX_SHOWN})")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=greylist_show)
    forget = add_command(sub, "forget", "forget entries, so senders are greylisted anew")
    forget.add_argument("client", metavar="IP|NETWORK|all")
    forget.set_defaults(func=greylist_forget)

    harvest = add_command(subparsers, "harvest", "address-harvest detection")
    sub = harvest.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = add_command(sub, "show", "clients with invalid recipients counted")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=harvest_show)
    lift = add_command(sub, "unblock", "lift the block of a client, or of every client"
                       " in a network, now")
    lift.add_argument("ip", metavar="IP|NETWORK")
    lift.set_defaults(func=harvest_unblock)


def _stamp(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else ""


def _network(text: str) -> str:
    """The greylist network of an address, or a network as given."""
    try:
        return parse_client(text)
    except AddressError as exc:
        raise CommandError(str(exc)) from None


def dnsbl_check(args: argparse.Namespace) -> int:
    if parse_ip(args.ip) is None:
        raise CommandError(f"{args.ip!r} is not an IP address")
    services = open_services(args)
    check = Dnsbl(services)
    ctx = Context(client_ip=args.ip, snapshot=services.snapshots.get())
    found = asyncio.run(check.check(ctx))
    zones = ctx.snapshot.settings["dnsbl_zones"] if ctx.snapshot else []
    if args.json:
        print_json({"ip": args.ip, "zones": zones, "symbols": [s.to_json() for s in found]})
        return 0
    if not zones:
        print("no DNSBL zones configured (portcullis settings set dnsbl_zones ...)")
        return 0
    if not found:
        print(f"{args.ip}: not listed in {', '.join(z.split()[0] for z in zones)}")
    for symbol in found:
        verdict = "reject" if symbol.flag else f"{symbol.score:+g}"
        print(f"{symbol.name}  {verdict}  {symbol.reason}")
    return 0


def greylist_show(args: argparse.Namespace) -> int:
    services = open_services(args)
    greylist = Greylist(services.store)
    network = _network(args.client) if args.client else ""
    entries = greylist.entries(args.limit, network, args.domain)
    policy = GreylistPolicy.from_settings(services.snapshots.get().settings)
    trusted = greylist.trusted_networks(policy)
    if args.json:
        print_json({"entries": entries, "trusted_networks": trusted})
        return 0
    print_table(["network", "sender", "recipient", "first seen", "passed", "attempts"],
                [(e["network"], e["sender"] or "<>", e["recipient"], _stamp(e["first_seen"]),
                  _stamp(e["passed"]) or "waiting", e["attempts"]) for e in entries])
    print()
    print_table(["auto-whitelisted network", "passes", "last seen"],
                [(t["network"], t["passes"], _stamp(t["last_seen"])) for t in trusted])
    return 0


def greylist_forget(args: argparse.Namespace) -> int:
    services = open_services(args)
    network = "" if args.client == "all" else _network(args.client)
    removed = Greylist(services.store).forget(network)
    print(f"{removed} greylist entr(y/ies) forgotten")
    return 0


def harvest_show(args: argparse.Namespace) -> int:
    found = clients(open_services(args).store)
    if args.json:
        print_json(found)
        return 0
    print_table(["client", "invalid recipients", "counting since", "blocked until"],
                [(c["client"], c["invalid"], _stamp(c["window_start"]),
                  _stamp(c["blocked_until"]) if c["blocked"] else "") for c in found])
    return 0


def harvest_unblock(args: argparse.Namespace) -> int:
    lifted = unblock(open_services(args).store, args.ip)
    if not lifted:
        raise CommandError(f"{args.ip} is not counted or blocked")
    print(f"{args.ip} unblocked ({lifted} client(s))")
    return 0
