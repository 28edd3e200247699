"""What every command needs: the configuration, the services, and uniform output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from portcullis import config as configuration
from portcullis.addresses import AddressError, normalise_domain
from portcullis.numbers import NumberError, parse_number
from portcullis.printable import print_table  # noqa: F401 (the commands import it here)
from portcullis.services import Services


class CommandError(Exception):
    """A user-facing failure: printed as ``portcullis: message``, exit status 1."""


def load_config(args: argparse.Namespace) -> configuration.Config:
    try:
        return configuration.load(getattr(args, "config", None))
    except configuration.ConfigError as exc:
        raise CommandError(str(exc)) from None


def open_services(args: argparse.Namespace) -> Services:
    return Services.open(load_config(args))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def number(kind: type = float, minimum: float | None = None,
           maximum: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` reading a number as the web UI does (``numbers.parse_number``):
    finite, of ``kind``, within bounds (``type=float`` took "nan" and "inf")."""
    def read(text: str) -> Any:
        try:
            return parse_number(text, kind, name="value", minimum=minimum, maximum=maximum)
        except NumberError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None
    return read


def domain_name(text: str) -> str:
    """An argparse ``type`` reading a domain as the web UI stores and compares it
    (``addresses.normalise_domain``: lower case, A-labels); anything no domain can be
    called is refused rather than matching nothing."""
    try:
        return normalise_domain(text)
    except AddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def on_off(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("on", "yes", "true", "1"):
        return True
    if lowered in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")


def _config_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --config given before the command is not overwritten by a missing one.
    parent.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="configuration file")
    return parent


CONFIG_PARENT = _config_parent()


def add_command(subparsers: Any, name: str, help: str, **kwargs: Any
                ) -> argparse.ArgumentParser:
    """A subcommand that accepts ``--config FILE`` wherever it is written."""
    return subparsers.add_parser(name, help=help, description=help, parents=[CONFIG_PARENT],
                                 **kwargs)
