"""``portcullis-update-agent``: the appliance side of signed push updates.

    receive   sshd's forced command for the vendor (bundle on stdin, or "status")
    install   root's installer, one bundle per socket connection (systemd starts it)
    verify    check a bundle file against this appliance without installing it
    status    versions per target, trusted keys
    history   every update attempt with its outcome (what the web UI shows)
    health    the default post-update check: do the services answer?
    check     validate the agent configuration (the update_agent role runs it)
    recover   at boot: undo an update cut off before its health check passed
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portcullis import __version__, logsetup
from portcullis import config as appliance_config
from portcullis.printable import print_table
from portcullis.store import StoreError, open_store
from portcullis.update import (
    agentconfig,
    health,
    history,
    hostkeys,
    installer,
    keys,
    receiver,
    transfer,
)
from portcullis.update.bundle import BundleRejected
from portcullis.update.releases import InstallError
from portcullis.update.state import StateError
from portcullis.update.targets import Outcome, recover, verify


class AgentError(Exception):
    """A user-facing failure: printed as ``portcullis-update-agent: message``, exit 1."""


def _agent_config(args: argparse.Namespace) -> agentconfig.AgentConfig:
    try:
        return agentconfig.load(args.config)
    except appliance_config.ConfigError as exc:
        raise AgentError(str(exc)) from None


def cmd_receive(args: argparse.Namespace) -> int:
    # Like every service that opens the shared store (UMask=0007): files it may create
    # there stay writable for the store's group.  sshd sessions start with 022.
    os.umask(0o007)
    env = dict(os.environ)
    request = receiver.ssh_command(env)
    try:
        config = agentconfig.load(args.config)
    except appliance_config.ConfigError as exc:
        sys.stdout.buffer.write(transfer.result_line(Outcome("failed", str(exc)).as_dict()))
        return 1
    if request == "status":
        # sshd's from= limits the key to the vendor's netblocks; the agent checks again,
        # as for receive: versions, keys and the history are not for anyone else
        client = receiver.client_address(env)
        if not receiver.from_vendor(client, config):
            print(f"portcullis-update-agent: client {client or 'unknown'} is outside the"
                  " vendor netblocks", file=sys.stderr)
            return 1
        print(json.dumps(receiver.status(config), sort_keys=True))
        return 0
    if request != "receive":
        print(f"portcullis-update-agent: unknown request {request[:40]!r} "
              "(receive or status)", file=sys.stderr)
        return 2
    return receiver.receive(config, sys.stdin.buffer, sys.stdout.buffer, env)


def cmd_install(args: argparse.Namespace) -> int:
    logsetup.configure("info")
    return installer.serve(_agent_config(args))


def cmd_verify(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    try:
        verified, _ = verify(config, Path(args.bundle))
    except BundleRejected as exc:
        print(f"rejected: {exc}")
        return 1
    except (keys.TrustRootError, StateError, hostkeys.HostKeyError) as exc:
        raise AgentError(str(exc)) from None
    manifest = verified.manifest
    audience = f" for this appliance ({manifest.audience})" if manifest.audience else ""
    print(f"ok: {manifest.target} {manifest.version}{audience}, signed by "
          f"{', '.join(verified.signed_by)}, expires {manifest.expires:%Y-%m-%d %H:%M} UTC, "
          f"{len(manifest.files)} file(s)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    report = receiver.status(_agent_config(args))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    for target, version in report["versions"].items():
        print(f"{target:<11} {version or '-'}")
    print(f"trusted keys: {', '.join(report['trusted_keys']) or '-'}"
          f" (threshold {report.get('threshold', '-')})")
    for problem in report["problems"]:
        print(f"problem: {problem}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    print(f"{agentconfig.config_path(args.config)} is valid; vendor netblocks: "
          f"{', '.join(config.netblocks)}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    try:
        note = recover(config, restart=False)  # before the services start: nothing to restart
    except (StateError, InstallError, OSError) as exc:
        raise AgentError(f"cannot undo an update that was cut off: {exc}") from None
    print(note or "no update was cut off")
    return 0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def cmd_history(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    try:
        appliance = appliance_config.load(config.portcullis_config)
        store = open_store(appliance.store.dir, appliance.store.url)
    except (appliance_config.ConfigError, StoreError) as exc:
        raise AgentError(str(exc)) from None
    try:
        attempts = history(store, args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([a.as_dict() for a in attempts], indent=2, sort_keys=True))
        return 0
    rows: list[Sequence[Any]] = [
        (_when(a.started), a.client, a.target or "-", a.version or "-", a.outcome, a.reason)
        for a in attempts]
    print_table(("started", "client", "target", "version", "outcome", "reason"), rows)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    try:
        config = appliance_config.load(args.portcullis_config)
    except appliance_config.ConfigError as exc:
        raise AgentError(str(exc)) from None
    problems = health.check_services(config, args.check or health.CHECKS)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"healthy (portcullis {__version__})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portcullis-update-agent",
                                     description="Portcullis update agent (appliance side)")
    parser.add_argument("--version", action="version",
                        version=f"portcullis-update-agent {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help=f"agent configuration (default: ${agentconfig.ENV_VAR} or "
                             f"{agentconfig.DEFAULT_PATH})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub = commands.add_parser("receive", help="take a pushed bundle on stdin (sshd forced "
                                              "command)")
    sub.set_defaults(func=cmd_receive)
    sub = commands.add_parser("install", help="root's installer: one bundle on stdin")
    sub.set_defaults(func=cmd_install)
    sub = commands.add_parser("verify", help="check a bundle file without installing it")
    sub.add_argument("bundle")
    sub.set_defaults(func=cmd_verify)
    sub = commands.add_parser("status", help="installed versions and trusted keys")
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(func=cmd_status)
    sub = commands.add_parser("history", help="update attempts and their outcomes")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(func=cmd_history)
    sub = commands.add_parser("health", help="probe the appliance's listeners")
    sub.add_argument("--check", action="append", choices=health.CHECKS,
                     help="what to probe (repeatable; default: all)")
    sub.add_argument("--portcullis-config", metavar="FILE",
                     help="appliance configuration (default: $PORTCULLIS_CONFIG or "
                          "/etc/portcullis/portcullis.toml)")
    sub.set_defaults(func=cmd_health)
    sub = commands.add_parser("check", help="validate the agent configuration")
    sub.set_defaults(func=cmd_check)
    sub = commands.add_parser("recover", help="undo an update cut off before its health "
                                              "check passed (at boot)")
    sub.set_defaults(func=cmd_recover)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger().setLevel(logging.INFO)
    try:
        return int(args.func(args) or 0)
    except AgentError as exc:
        print(f"portcullis-update-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
