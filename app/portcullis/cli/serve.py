"""``portcullis serve``: run the SMTP gateway."""

from __future__ import annotations

import argparse

from portcullis import logsetup
from portcullis.cli.common import CommandError, add_command, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "serve", "run the SMTP gateway")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from portcullis.smtp.server import ListenError
    from portcullis.smtp.supervisor import serve

    config = load_config(args)
    logsetup.configure(config.log.level)
    try:
        return serve(config)
    except ListenError as exc:
        raise CommandError(str(exc)) from None
