"""``portcullis maintenance`` and ``portcullis log``: upkeep and the decision log."""

from __future__ import annotations

import argparse

from portcullis import housekeeping
from portcullis.cli.common import add_command, load_config, number, open_services
from portcullis.decisionlog import tail


def register(subparsers: argparse._SubParsersAction) -> None:
    upkeep = add_command(subparsers, "maintenance", "run retention and cache expiry now")
    upkeep.set_defaults(func=run_maintenance)
    log = add_command(subparsers, "log", "show the last decisions")
    # 0 or less printed the whole of the log's last 4 MiB (a slice from the end).
    log.add_argument("--lines", type=number(int, minimum=1), default=50)
    log.add_argument("--grep", default="", help="only lines containing this text")
    log.set_defaults(func=show_log)


def run_maintenance(args: argparse.Namespace) -> int:
    for line in housekeeping.run(open_services(args)):
        print(line)
    return 0


def show_log(args: argparse.Namespace) -> int:
    for line in tail(load_config(args).log_file, args.lines, args.grep):
        print(line)
    return 0
