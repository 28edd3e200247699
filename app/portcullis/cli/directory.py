"""``portcullis domain|relay|list|valid``: the protected domains, relays, B/W lists and
valid addresses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from portcullis.cli.common import (
    CommandError,
    add_command,
    on_off,
    open_services,
    print_json,
    print_table,
)
from portcullis.directory import bwlists, domains, relays, valid_addresses


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_domain(subparsers)
    _register_relay(subparsers)
    _register_list(subparsers)
    _register_valid(subparsers)


# -- domain ---------------------------------------------------------------------------------

def _register_domain(subparsers: argparse._SubParsersAction) -> None:
    domain = add_command(subparsers, "domain", "protected domains")
    sub = domain.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = add_command(sub, "add", "protect a domain")
    add.add_argument("name")
    add.add_argument("--mail-host", required=True, metavar="HOST[:PORT]",
                     help="the internal mail server for this domain")
    _switch_options(add)
    add.set_defaults(func=domain_add)

    show = add_command(sub, "list", "list protected domains")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=domain_list)

    change = add_command(sub, "set", "change a domain's settings")
    change.add_argument("name")
    change.add_argument("--mail-host", metavar="HOST[:PORT]")
    _switch_options(change)
    change.set_defaults(func=domain_set)

    remove = add_command(sub, "remove", "stop protecting a domain")
    remove.add_argument("name")
    remove.set_defaults(func=domain_remove)


def _switch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filtering", type=on_off, metavar="on|off",
                        help="filter this domain's mail (default on)")
    parser.add_argument("--smtp-validation", type=on_off, metavar="on|off",
                        help="ask the internal host whether recipients exist (default on)")
    parser.add_argument("--reject-non-validated", type=on_off, metavar="on|off",
                        help="refuse recipients that cannot be validated (default on)")


def _switches(args: argparse.Namespace) -> dict[str, bool | None]:
    return {name: getattr(args, name) for name in domains.SWITCHES}


def domain_add(args: argparse.Namespace) -> int:
    services = open_services(args)
    switches = {k: v for k, v in _switches(args).items() if v is not None}
    domain = domains.add_domain(services.store, args.name, args.mail_host, **switches)
    print(f"domain {domain.name} added (mail host {domain.mail_host})")
    _warn_unvalidated(domain, services)
    return 0


def domain_list(args: argparse.Namespace) -> int:
    services = open_services(args)
    found = domains.list_domains(services.store)
    counts = {d.name: valid_addresses.count_addresses(services.store, d.name) for d in found}
    if args.json:
        print_json([d.to_json() | {"valid_addresses": counts[d.name]} for d in found])
        return 0
    print_table(["domain", "mail host", "filtering", "smtp validation", "reject non-validated",
                 "valid addresses"],
                [(d.name, d.mail_host, _yn(d.filtering), _yn(d.smtp_validation),
                  _yn(d.reject_non_validated), counts[d.name]) for d in found])
    return 0


def domain_set(args: argparse.Namespace) -> int:
    services = open_services(args)
    domain = domains.update_domain(services.store, args.name, args.mail_host, **_switches(args))
    print(f"domain {domain.name} updated")
    _warn_unvalidated(domain, services)
    return 0


def domain_remove(args: argparse.Namespace) -> int:
    services = open_services(args)
    domains.remove_domain(services.store, args.name)
    print(f"domain {args.name} removed")
    return 0


def _warn_unvalidated(domain: domains.Domain, services: object) -> None:
    if valid_addresses.defers_all_mail(services.store, domain):  # type: ignore[attr-defined]
        print(f"warning: {domain.name} validates recipients by its valid-address list alone,"
              " and the list is empty: all its mail is deferred (451) until an address is"
              " added or SMTP validation is turned on", file=sys.stderr)


def _yn(value: bool) -> str:
    return "on" if value else "off"


# -- relay ----------------------------------------------------------------------------------

def _register_relay(subparsers: argparse._SubParsersAction) -> None:
    relay = add_command(subparsers, "relay", "networks allowed to send outbound mail")
    sub = relay.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = add_command(sub, "add", "allow a network to relay")
    add.add_argument("network", metavar="IP/CIDR")
    add.add_argument("--note", default="")
    add.set_defaults(func=relay_add)
    show = add_command(sub, "list", "list relays")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=relay_list)
    remove = add_command(sub, "remove", "stop a network relaying")
    remove.add_argument("network", metavar="IP/CIDR")
    remove.set_defaults(func=relay_remove)


def relay_add(args: argparse.Namespace) -> int:
    network = relays.add_relay(open_services(args).store, args.network, args.note)
    print(f"relay {network} added")
    return 0


def relay_list(args: argparse.Namespace) -> int:
    rows = relays.list_relays(open_services(args).store)
    if args.json:
        print_json(rows)
    else:
        print_table(["network", "note"], [(r["network"], r["note"]) for r in rows])
    return 0


def relay_remove(args: argparse.Namespace) -> int:
    relays.remove_relay(open_services(args).store, args.network)
    print(f"relay {args.network} removed")
    return 0


# -- black / white lists ----------------------------------------------------------------------

def _register_list(subparsers: argparse._SubParsersAction) -> None:
    lists = add_command(subparsers, "list", "the global black and white lists")
    kinds = lists.add_subparsers(dest="kind", metavar="black|white", required=True)
    for kind in bwlists.KINDS:
        parser = add_command(kinds, kind, f"the {kind} list")
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        add = add_command(sub, "add", f"add to the {kind} list")
        add.add_argument("entry", metavar="DOMAIN|ADDRESS|IP/CIDR")
        add.add_argument("--note", default="")
        add.set_defaults(func=list_add)
        remove = add_command(sub, "remove", f"remove from the {kind} list")
        remove.add_argument("entry", metavar="DOMAIN|ADDRESS|IP/CIDR")
        remove.set_defaults(func=list_remove)
        show = add_command(sub, "show", f"show the {kind} list")
        show.add_argument("--json", action="store_true")
        show.set_defaults(func=list_show)


def list_add(args: argparse.Namespace) -> int:
    entry = bwlists.add_entry(open_services(args).store, args.kind, args.entry, args.note)
    print(f"{entry.kind} {entry.text} added to the {args.kind} list")
    return 0


def list_remove(args: argparse.Namespace) -> int:
    bwlists.remove_entry(open_services(args).store, args.kind, args.entry)
    print(f"{args.entry} removed from the {args.kind} list")
    return 0


def list_show(args: argparse.Namespace) -> int:
    rows = bwlists.list_entries(open_services(args).store, args.kind)
    if args.json:
        print_json(rows)
    else:
        print_table(["entry", "note"], [(r["entry"], r["note"]) for r in rows])
    return 0


# -- valid addresses --------------------------------------------------------------------------

def _register_valid(subparsers: argparse._SubParsersAction) -> None:
    valid = add_command(subparsers, "valid", "valid addresses of protected domains")
    sub = valid.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = add_command(sub, "import", "add addresses from a file (one per line; - for stdin)")
    imp.add_argument("domain")
    imp.add_argument("file", type=Path)
    imp.add_argument("--replace", action="store_true",
                     help="replace the domain's list instead of adding to it")
    imp.set_defaults(func=valid_import)
    show = add_command(sub, "list", "list a domain's valid addresses")
    show.add_argument("domain")
    show.set_defaults(func=valid_list)
    remove = add_command(sub, "remove", "remove one valid address")
    remove.add_argument("address")
    remove.set_defaults(func=valid_remove)


def valid_import(args: argparse.Namespace) -> int:
    services = open_services(args)
    try:
        text = sys.stdin.read() if str(args.file) == "-" else \
            args.file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CommandError(f"{args.file}: {exc.strerror}") from None
    result = valid_addresses.import_addresses(services.store, args.domain, text,
                                              replace=args.replace)
    for error in result.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if result.refused_lines:
        raise CommandError(f"{result.refused_lines} line(s) refused; nothing imported. Remove"
                           " proper names: addresses must look like user@domain.com")
    if result.errors:
        raise CommandError("nothing imported")
    print(f"{result.added} address(es) added, {result.unchanged} already present")
    return 0


def valid_list(args: argparse.Namespace) -> int:
    for address in valid_addresses.list_addresses(open_services(args).store, args.domain):
        print(address)
    return 0


def valid_remove(args: argparse.Namespace) -> int:
    if not valid_addresses.remove_address(open_services(args).store, args.address):
        raise CommandError(f"{args.address} is not a valid address of any domain")
    print(f"{args.address} removed")
    return 0
