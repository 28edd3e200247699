"""Entry point: parse the command line and dispatch to a command module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from portcullis import __version__
from portcullis.addresses import AddressError
from portcullis.archive import ArchiveError
from portcullis.cli.common import CommandError
from portcullis.directory.settings import SettingError
from portcullis.store import StoreError

# Modules of portcullis.cli, each adding its subcommands with register(subparsers).
# One per line: areas add theirs at the end (the file merges with git's union driver).
COMMANDS = [
    "serve",
    "directory",
    "archive",
    "settings",
    "maintenance",
    "defenses",
    "firewall",
    "web",
    "clamav",
    "bayes",
    "reputation",
    "tls",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portcullis",
                                     description="Portcullis mail gateway appliance")
    parser.add_argument("--version", action="version", version=f"portcullis {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (default: $PORTCULLIS_CONFIG or "
                             "/etc/portcullis/portcullis.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"portcullis.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, AddressError, SettingError, ArchiveError, StoreError) as exc:
        print(f"portcullis: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
