"""``portcullis firewall apply|check|check-netblocks|status|block|unblock|monitor`` and
``portcullis tarpit``."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

from portcullis import addresses, firewall, logsetup
from portcullis.cli.common import (
    CommandError,
    add_command,
    load_config,
    number,
    print_json,
    print_table,
)
from portcullis.firewall import FirewallError, FirewallStatus, control


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

    netblocks = add_command(sub, "check-netblocks", "validate vendor netblocks by the rule "
                                                    "the firewall, sshd and the update agent "
                                                    "share (the ssh role runs it)")
    netblocks.add_argument("netblocks", nargs="+", metavar="NETWORK")
    netblocks.set_defaults(func=check_netblocks)

    show = add_command(sub, "status", "counters, blocked SSH sources and scanners")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_errors(show_status))

    block = add_command(sub, "block", "block a source address from SSH")
    block.add_argument("address")
    block.add_argument("--minutes", type=number(float, maximum=control.MAX_BLOCK_MINUTES),
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
    # Given all of these, the tarpit reads no configuration at all (its service account
    # need not be able to read portcullis.toml); any left out come from [firewall].
    tarpit.add_argument("--port", type=number(int, 1, 65535),
                        help="listen port ([firewall] tarpit_port)")
    tarpit.add_argument("--per-source", type=number(int, 1), metavar="N",
                        help="connections one source may hold ([firewall] tarpit_per_source)")
    tarpit.add_argument("--max-connections", type=number(int, 1), metavar="N",
                        help="connections held in all ([firewall] tarpit_max_connections)")
    tarpit.add_argument("--trickle-seconds", type=number(float, 0), metavar="S",
                        help="one byte this often ([firewall] tarpit_trickle_seconds)")
    tarpit.add_argument("--hold-minutes", type=number(float, 0), metavar="M",
                        help="close held connections after ([firewall] tarpit_hold_minutes)")
    tarpit.add_argument("--log-level", default=None, help="debug, info, warning ([log] level)")
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


def check_netblocks(args: argparse.Namespace) -> int:
    for text in args.netblocks:
        addresses.vendor_network(text)   # AddressError: exit status 1 with the reason
    print(f"vendor netblocks are valid: {', '.join(args.netblocks)}")
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
    for title, shown, total in (
            ("Blocked from SSH", current.ssh_blocked, current.ssh_blocked_total),
            ("Scanners (sent to the tarpit)", current.scanners, current.scanners_total)):
        print(f"\n{title}")
        print_table(["source", "expires in"], [(e.address, _duration(e.expires)) for e in shown])
        if total > len(shown):   # the status lists the ones with most time left
            print(f"... and {total - len(shown)} more")
    print("\nVendor netblocks: " + (", ".join(current.vendor_netblocks) or "(none)"))
    if current.black_list_total:
        print(f"Black list dropped: {current.black_list_total} networks")


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
    from portcullis.firewall.tarpit import Tarpit, run

    options = {"port": args.port, "per_source": args.per_source,
               "max_connections": args.max_connections,
               "trickle_seconds": args.trickle_seconds, "hold_minutes": args.hold_minutes}
    level = args.log_level
    if any(value is None for value in options.values()) or level is None:
        config = load_config(args)
        settings = config.firewall
        defaults = {"port": settings.tarpit_port, "per_source": settings.tarpit_per_source,
                    "max_connections": settings.tarpit_max_connections,
                    "trickle_seconds": settings.tarpit_trickle_seconds,
                    "hold_minutes": settings.tarpit_hold_minutes}
        options = {k: defaults[k] if v is None else v for k, v in options.items()}
        level = level or config.log.level
    logsetup.configure(level)
    if not 1 <= options["port"] <= 65535:
        raise CommandError(f"tarpit port must be between 1 and 65535, not {options['port']}")
    try:
        tarpit = Tarpit(int(options["port"]), per_source=int(options["per_source"]),
                        max_connections=int(options["max_connections"]),
                        trickle_seconds=float(options["trickle_seconds"]),
                        hold_seconds=float(options["hold_minutes"]) * 60)
    except ValueError as exc:
        raise CommandError(f"tarpit: {exc}") from None
    try:
        return run(tarpit)
    except OSError as exc:
        raise CommandError(f"tarpit: cannot listen on port {options['port']}: "
                           f"{exc.strerror or exc}") from None
