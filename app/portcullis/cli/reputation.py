"""``portcullis report top-spammers|top-legitimate``: the MTA lists of the FAQ."""

from __future__ import annotations

import argparse
import datetime

from portcullis.cli.common import add_command, open_services, print_json, print_table
from portcullis.reputation import Standing, top_legitimate, top_spammers


def register(subparsers: argparse._SubParsersAction) -> None:
    report = add_command(subparsers, "report", "reputation reports")
    sub = report.add_subparsers(dest="report", metavar="REPORT", required=True)
    spammers = add_command(sub, "top-spammers", "MTAs with 50+ connections, 95%% or more unwanted")
    spammers.add_argument("--json", action="store_true")
    spammers.set_defaults(func=show_top, lister=top_spammers, share="unwanted")
    legitimate = add_command(sub, "top-legitimate",
                             "MTAs with over 50 connections, 95%% or more accepted")
    legitimate.add_argument("--json", action="store_true")
    legitimate.set_defaults(func=show_top, lister=top_legitimate, share="accepted")


def show_top(args: argparse.Namespace) -> int:
    standings: list[Standing] = args.lister(open_services(args).store)
    if args.json:
        print_json([s.to_json() for s in standings])
        return 0

    def when(stamp: float) -> str:
        return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

    print_table(["mta", "connections", args.share, "last seen"],
                [(s.address, f"{s.connections:.0f}",
                  f"{s.unwanted_share if args.share == 'unwanted' else s.accepted_share:.1%}",
                  when(s.last_seen)) for s in standings])
    return 0
