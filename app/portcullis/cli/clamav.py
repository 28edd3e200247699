"""``portcullis clamav status|update``: the virus scanner's state, and "update now"."""

from __future__ import annotations

import argparse
from datetime import datetime

from portcullis.antivirus import UpdateFailed, status, update_now
from portcullis.cli.common import CommandError, add_command, load_config, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    clamav = add_command(subparsers, "clamav", "the ClamAV virus scanner")
    sub = clamav.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = add_command(sub, "status", "is clamd answering, which signatures are loaded")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_status)
    update = add_command(sub, "update", "check for new signatures now and reload clamd")
    update.add_argument("--json", action="store_true")
    update.set_defaults(func=run_update)


def show_status(args: argparse.Namespace) -> int:
    """Exit status 0 when clamd answers, 1 when it does not (for scripts and monitoring)."""
    result = status(load_config(args))
    if args.json:
        print_json(result.to_json())
        return 0 if result.reachable else 1
    print(f"clamd:      {'answering' if result.reachable else 'NOT ANSWERING'} at "
          f"{result.address}" + (f" ({result.error})" if result.error else ""))
    print(f"scanning:   {'enabled' if result.enabled else 'disabled'}")
    if result.reachable:
        print(f"engine:     ClamAV {result.engine}")
        loaded = f"daily {result.signature_version} of {result.signature_date}" \
            if result.signature_version else "no official signatures loaded"
        print(f"signatures: {loaded}")
    print(f"database:   {result.source}")
    print_table(["file", "kind", "version", "signatures", "built", "installed"],
                [(d.name, d.kind, d.version or "", d.signatures or "", d.built or "",
                  _stamp(d.modified)) for d in result.databases])
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0 if result.reachable else 1


def run_update(args: argparse.Namespace) -> int:
    try:
        outcome = update_now(load_config(args))
    except UpdateFailed as exc:
        raise CommandError(f"no update could be requested: {exc}") from None
    if args.json:
        print_json(outcome.to_json())
    else:
        print(f"freshclam: {outcome.freshclam}")
        print(f"clamd:     {'reloading its databases' if outcome.reloaded else 'not reloaded'}"
              f" ({outcome.reload})")
    return 0


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if when else ""



