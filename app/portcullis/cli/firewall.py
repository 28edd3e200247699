"""``portcullis firewall apply|check|status|block|unblock|monitor`` and ``portcullis tarpit``."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

from portcullis import firewall, logsetup
from portcullis.cli.common import CommandError, add_command, load_config, print_json, print_table
from portcullis.firewall import FirewallError, FirewallStatus


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(subparsers, "firewall", "the nftables firewall")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    apply = add_command(sub, "apply", "load the ruleset with this site's values (root)")
    apply.add_argument("--ruleset", type=Path, metavar="FILE",
                       help="ruleset file (default: [firewall] ruleset)")
    apply.add_argument("--print", action="store_true", help="also print the loaded ruleset")
    apply.set_defaults(func=_errors(apply_ruleset))

    check = add_command(sub, "check", "validate the ruleset with this site's values "
                                      "(no root needed, changes nothing)")
    check.add_argument("--ruleset", type=Path, metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the rendered ruleset")
    check.set_defaults(func=_errors(check_ruleset))

    show = add_command(sub, "status", "counters, blocked SSH sources and scanners")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_errors(show_status))

    block = add_command(sub, "block", "block a source address from SSH")
    block.add_argument("address")
    block.add_argument("--minutes", type=float,
                       help="how long (default: [firewall] ssh_block_minutes)")
    block.set_defaults(func=_errors(block_source))

    unblock = add_command(sub, "unblock", "lift a block on a source address")
    unblock.add_argument("address")
    unblock.set_defaults(func=_errors(unblock_source))

    push = add_command(sub, "push-black-list", "drop the IP black list's sources at the "
                                               "firewall now (through the monitor)")
    push.set_defaults(func=_errors(push_black_list))

    monitor = add_command(sub, "monitor", "log scan attempts, serve the control socket, "
                                          "push the IP black list (needs CAP_NET_ADMIN)")
    monitor.set_defaults(func=_errors(run_monitor))

    tarpit = add_command(subparsers, "tarpit", "hold scanners' connections (redirected by "
                                               "the firewall)")
    tarpit.set_defaults(func=_errors(run_tarpit))


def _errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except FirewallError as exc:
            raise CommandError(str(exc)) from None
    return wrapper


def apply_ruleset(args: argparse.Namespace) -> int:
    config = load_config(args)
    text = firewall.apply(config, args.ruleset)
    if args.print:
        print(text, end="")
    print(f"firewall loaded from {args.ruleset or config.firewall.ruleset}")
    return 0


def check_ruleset(args: argparse.Namespace) -> int:
    config = load_config(args)
    text = firewall.check(config, args.ruleset)
    if args.print:
        print(text, end="")
    print(f"ruleset {args.ruleset or config.firewall.ruleset} is valid")
    return 0


def show_status(args: argparse.Namespace) -> int:
    current = firewall.status(load_config(args))
    if args.json:
        print_json(current.to_dict())
        return 0
    _print_status(current)
    return 0


def _print_status(current: FirewallStatus) -> None:
    if not current.loaded:
        print("firewall: not loaded (run portcullis firewall apply)")
        return
    print("Counters")
    print_table(["counter", "packets", "bytes"],
                [(c.name, c.packets, c.bytes) for c in current.counters])
    print("\nBlocked from SSH")
    print_table(["source", "expires in"],
                [(e.address, _duration(e.expires)) for e in current.ssh_blocked])
    print("\nScanners (sent to the tarpit)")
    print_table(["source", "expires in"],
                [(e.address, _duration(e.expires)) for e in current.scanners])
    print("\nVendor netblocks: " + (", ".join(current.vendor_netblocks) or "(none)"))
    if current.black_list:
        print(f"Black list dropped: {len(current.black_list)} networks")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else \
        f"{seconds // 86400}d"


def block_source(args: argparse.Namespace) -> int:
    entry = firewall.block(load_config(args), args.address, args.minutes)
    print(f"{entry.address} blocked from SSH for {_duration(entry.expires)}")
    return 0


def unblock_source(args: argparse.Namespace) -> int:
    removed = firewall.unblock(load_config(args), args.address)
    print(f"{args.address} unblocked (removed from {', '.join(removed)})")
    return 0


def push_black_list(args: argparse.Namespace) -> int:
    count = firewall.push_black_list(load_config(args))
    if count is None:
        print("not pushed: [firewall] drop_black_list is off")
    else:
        print(f"black list pushed: {count} networks dropped at the firewall")
    return 0


def run_monitor(args: argparse.Namespace) -> int:
    from portcullis.firewall.monitor import Monitor, run
    from portcullis.store import open_store

    config = load_config(args)
    logsetup.configure(config.log.level)
    return run(Monitor(config, firewall.LocalFirewall(config),
                       store_opener=lambda: open_store(config.store.dir, config.store.url)))


def run_tarpit(args: argparse.Namespace) -> int:
    from portcullis.firewall.ruleset import SiteValues
    from portcullis.firewall.tarpit import Tarpit, run

    config = load_config(args)
    logsetup.configure(config.log.level)
    settings = config.firewall
    SiteValues.from_config(settings)          # the same validation as the ruleset's
    try:
        tarpit = Tarpit(settings.tarpit_port, per_source=settings.tarpit_per_source,
                        max_connections=settings.tarpit_max_connections,
                        trickle_seconds=settings.tarpit_trickle_seconds,
                        hold_seconds=settings.tarpit_hold_minutes * 60)
    except ValueError as exc:
        raise CommandError(f"[firewall] {exc}") from None
    return run(tarpit)
