"""``portcullis settings show|set``: the runtime policy settings."""

from __future__ import annotations

import argparse

from portcullis.cli.common import add_command, load_config, print_json, print_table
from portcullis.directory.settings import SETTINGS, get_settings, set_settings
from portcullis.services import Services


def register(subparsers: argparse._SubParsersAction) -> None:
    settings = add_command(subparsers, "settings", "policy settings (thresholds, tag phrase, ...)")
    sub = settings.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = add_command(sub, "show", "show every setting")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_settings)
    change = add_command(sub, "set", "change settings: NAME VALUE [NAME VALUE ...]")
    change.add_argument("pairs", nargs="+", metavar="NAME VALUE")
    change.set_defaults(func=change_settings)


def show_settings(args: argparse.Namespace) -> int:
    config = load_config(args)
    values = get_settings(Services.open(config).store, config)
    if args.json:
        print_json(values)
    else:
        print_table(["setting", "value", "meaning"],
                    [(name, _shown(values[name]), s.help) for name, s in SETTINGS.items()])
    return 0


def _shown(value: object) -> str:
    """A value as ``settings set`` takes it back: on/off, a list comma-separated (wrapped)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        lines = [""]
        for item in value:  # wrapped between items only: a zone entry holds spaces
            if lines[-1] and len(lines[-1]) + len(item) > 48:
                lines[-1] += ","
                lines.append("")
            lines[-1] += f", {item}" if lines[-1] else item
        return "\n".join(lines) or "(none)"
    return str(value)


def change_settings(args: argparse.Namespace) -> int:
    if len(args.pairs) % 2:
        raise SystemExit("portcullis: settings set needs NAME VALUE pairs")
    config = load_config(args)
    changes = dict(zip(args.pairs[::2], args.pairs[1::2], strict=True))
    values = set_settings(Services.open(config).store, config, changes)
    for name in changes:
        print(f"{name} = {_shown(values[name])}")
    return 0
