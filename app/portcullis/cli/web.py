"""``portcullis web`` (run the web administration) and ``portcullis user`` (its accounts)."""

from __future__ import annotations

import argparse
import getpass
import sys

from portcullis import logsetup
from portcullis.accounts import users
from portcullis.accounts.passwords import PasswordError
from portcullis.cli.common import (
    CommandError,
    add_command,
    load_config,
    open_services,
    print_json,
    print_table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    web = add_command(subparsers, "web", "run the web administration (port 80 on the"
                      " appliance)")
    web.set_defaults(func=run_web)

    user = add_command(subparsers, "user", "administrator accounts of the web UI")
    sub = user.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = add_command(sub, "add", "create an administrator")
    add.add_argument("name")
    add.add_argument("--role", choices=users.ROLES, required=True,
                     help="super: everything; domain: only the domains given")
    add.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                     help="a domain this domain administrator manages (repeatable)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (else set it later with"
                          " 'portcullis user passwd')")
    add.set_defaults(func=user_add)

    passwd = add_command(sub, "passwd", "set a password (read from standard input)")
    passwd.add_argument("name")
    passwd.set_defaults(func=user_passwd)

    domains = add_command(sub, "domains", "set the domains of a domain administrator")
    domains.add_argument("name")
    domains.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                         required=True)
    domains.set_defaults(func=user_domains)

    show = add_command(sub, "list", "list administrators")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=user_list)

    remove = add_command(sub, "remove", "delete an administrator")
    remove.add_argument("name")
    remove.set_defaults(func=user_remove)


def run_web(args: argparse.Namespace) -> int:
    from portcullis.web.server import serve

    config = load_config(args)
    logsetup.configure(config.log.level)
    return serve(config)


def read_password() -> str:
    """The password from standard input: one line from a pipe, or asked twice on a tty."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if first != getpass.getpass("Repeat it: "):
            raise CommandError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise CommandError("no password on standard input")
    return line.rstrip("\r\n")


def user_add(args: argparse.Namespace) -> int:
    password = read_password() if args.password_stdin else None
    try:
        user = users.add_user(open_services(args).store, args.name, args.role, args.domain,
                              password=password)
    except (users.AccountError, PasswordError) as exc:
        raise CommandError(str(exc)) from None
    what = "super administrator" if user.is_super else \
        f"domain administrator of {', '.join(user.domains)}"
    print(f"user {user.name} added ({what})")
    if password is None:
        print(f"set a password with: portcullis user passwd {user.name}", file=sys.stderr)
    return 0


def user_passwd(args: argparse.Namespace) -> int:
    store = open_services(args).store
    if users.get_user(store, args.name) is None:
        raise CommandError(f"no user {args.name}")
    try:
        users.set_password(store, args.name, read_password())
    except (users.AccountError, PasswordError) as exc:
        raise CommandError(str(exc)) from None
    print(f"password of {args.name} set (their web sessions were ended)")
    return 0


def user_domains(args: argparse.Namespace) -> int:
    try:
        user = users.set_domains(open_services(args).store, args.name, args.domain)
    except users.AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"{user.name} manages {', '.join(user.domains)}")
    return 0


def user_list(args: argparse.Namespace) -> int:
    found = users.list_users(open_services(args).store)
    if args.json:
        print_json([u.to_json() for u in found])
        return 0
    print_table(["user", "role", "domains", "password"],
                [(u.name, u.role, "(all)" if u.is_super else ", ".join(u.domains),
                  "set" if u.has_password else "NOT SET")
                 for u in found])
    return 0


def user_remove(args: argparse.Namespace) -> int:
    try:
        users.remove_user(open_services(args).store, args.name)
    except users.AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"user {args.name} removed")
    return 0
