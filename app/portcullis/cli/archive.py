"""``portcullis archive search|show|release|purge``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime

from portcullis.archive.archive import MAX_SEARCH
from portcullis.archive.release import release
from portcullis.cli.common import (
    CommandError,
    add_command,
    open_services,
    print_json,
    print_table,
)
from portcullis.housekeeping import purge_archive
from portcullis.policy import Verdict
from portcullis.printable import printable


def register(subparsers: argparse._SubParsersAction) -> None:
    archive = add_command(subparsers, "archive", "the message archive")
    sub = archive.add_subparsers(dest="action", metavar="ACTION", required=True)

    search = add_command(sub, "search", "find archived messages (newest first)")
    search.add_argument("--since", type=_when, metavar="TIME",
                        help="ISO date/time, or an age like 2h, 3d")
    search.add_argument("--until", type=_when, metavar="TIME")
    for name in ("--sender", "--recipient", "--subject", "--client-ip"):
        search.add_argument(name, type=_text, default="")
    search.add_argument("--verdict", choices=[v.value for v in Verdict], default="")
    search.add_argument("--limit", type=_page_size, default=50,
                        help=f"how many (at most {MAX_SEARCH}; --offset for the next ones)")
    search.add_argument("--offset", type=_count, default=0,
                        help="skip this many of the newest matches")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=search_messages)

    show = add_command(sub, "show", "show one message and why it got its verdict")
    show.add_argument("id", type=_text)
    show.add_argument("--raw", action="store_true", help="print the stored message itself")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_message)

    rel = add_command(sub, "release", "deliver an archived message to its recipients")
    rel.add_argument("id", type=_text)
    rel.add_argument("--again", action="store_true",
                     help="deliver another copy to recipients that have it already")
    rel.set_defaults(func=release_message)

    purge = add_command(sub, "purge", "remove messages older than the retention now")
    purge.set_defaults(func=purge_messages)


def _when(text: str) -> float:
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    try:
        if text[:-1].isdigit() and text[-1:] in units:
            return time.time() - int(text[:-1]) * units[text[-1]]
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):       # 0001-01-01, an age of 400 digits
        raise argparse.ArgumentTypeError(f"{text!r}: use ISO time (2026-11-29T10:00) or an age"
                                         " (30m, 2h, 3d, 1w)") from None


def _text(text: str) -> str:
    """An argument as text: bytes that are not UTF-8 (kept by Python as surrogates)
    cannot be searched for, and the store refused them with a traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r}: not UTF-8 text") from None
    return text


def _count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number of 0 or more")
    return number


def _page_size(text: str) -> int:
    """A search's size: a larger one was cut to the largest without a word."""
    number = _count(text)
    if not 1 <= number <= MAX_SEARCH:
        raise argparse.ArgumentTypeError(f"{text}: from 1 to {MAX_SEARCH} (--offset pages on)")
    return number


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def search_messages(args: argparse.Namespace) -> int:
    services = open_services(args)
    found = services.archive.search(since=args.since, until=args.until, sender=args.sender,
                                    recipient=args.recipient, subject=args.subject,
                                    verdict=args.verdict, client_ip=args.client_ip,
                                    limit=args.limit, offset=args.offset)
    if args.json:
        print_json([m.to_json() for m in found])
        return 0
    print_table(["id", "received", "verdict", "score", "client", "sender", "recipients",
                 "subject"],
                [(m.id, _stamp(m.received), m.verdict, f"{m.score:.1f}", m.client_ip,
                  m.mail_from or "<>", ",".join(m.recipients), m.subject[:60])
                 for m in found])
    return 0


def show_message(args: argparse.Namespace) -> int:
    services = open_services(args)
    message = services.archive.get(args.id)
    if message is None:
        raise CommandError(f"no archived message {args.id}")
    if args.raw:
        sys.stdout.buffer.write(services.archive.read_body(message))
        return 0
    if args.json:
        print_json(message.to_json())
        return 0
    fields = [
        ("id", message.id),
        ("received", f"{_stamp(message.received)} ({message.direction})"),
        ("client", f"{message.client_ip} \"{message.helo}\""),
        ("sender", message.mail_from or "<>"),
        ("recipients", ", ".join(message.recipients)),
        ("subject", message.subject),
        ("verdict", f"{message.verdict} {message.reason}".rstrip()),
        ("score", f"{message.score:.2f}"),
        ("delivery", message.delivery),
    ]
    if message.released:
        fields.append(("released", _stamp(message.released)))
    for label, value in fields:
        print(f"{label + ':':<12}{printable(value)}")
    print_table(["symbol", "score", "reason"],
                [(s.name, f"{s.score:+.2f}", s.reason) for s in message.symbols])
    return 0


def release_message(args: argparse.Namespace) -> int:
    services = open_services(args)
    result = asyncio.run(release(services, args.id, released_by="cli", again=args.again))
    print(f"{args.id}: {result.describe()}")
    return 0 if result.ok else 1


def purge_messages(args: argparse.Namespace) -> int:
    print(purge_archive(open_services(args)))
    return 0
