"""``portcullis tls self-signed``: make the STARTTLS certificate the configuration names."""

from __future__ import annotations

import argparse

from portcullis.cli.common import CommandError, add_command, load_config
from portcullis.tlscert import make_self_signed


def register(subparsers: argparse._SubParsersAction) -> None:
    tls = add_command(subparsers, "tls", "the STARTTLS certificate of the gateway")
    sub = tls.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = add_command(sub, "self-signed", "make a self-signed certificate at the "
                                           "[smtp] tls_certificate / tls_key paths")
    make.add_argument("--hostname", help="name in the certificate (default: [smtp] hostname)")
    make.add_argument("--force", action="store_true", help="replace existing files")
    make.set_defaults(func=self_signed)


def self_signed(args: argparse.Namespace) -> int:
    smtp = load_config(args).smtp
    if smtp.tls_certificate is None or smtp.tls_key is None:
        raise CommandError("[smtp] tls_certificate and tls_key are not set")
    if smtp.tls_certificate.exists() and not args.force:
        print(f"{smtp.tls_certificate} exists; kept (--force replaces it)")
        return 0
    make_self_signed(args.hostname or smtp.hostname, smtp.tls_certificate, smtp.tls_key)
    print(f"certificate for {args.hostname or smtp.hostname}: {smtp.tls_certificate}")
    return 0
