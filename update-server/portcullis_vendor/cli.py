"""``portcullis-vendor``: the vendor's update server.

    keygen      a new Ed25519 signing key (NAME.key, NAME.pub)
    trust-root  a trust root file listing signing keys (for new appliances and rotations)
    build       an unsigned bundle: app (wheel), clamav (signatures), config (for one
                appliance of an inventory: --inventory, --appliance), trust-root
    sign        add signatures to a bundle
    push        send a signed bundle to the appliances of an inventory, in parallel
    status      ask every appliance what it runs

Passphrases come from the environment, never the command line (which others can read):
``PORTCULLIS_VENDOR_PASSPHRASE`` for signing keys, ``PORTCULLIS_VENDOR_SSH_PASSPHRASE`` for
the SSH login key.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portcullis import __version__
from portcullis.printable import print_table
from portcullis.update import keys
from portcullis.update.bundle import BOUND_TARGETS, BundleRejected, HealthCheck, sign_bundle
from portcullis_vendor import build
from portcullis_vendor.inventory import InventoryError, load_inventory

SIGNING_PASSPHRASE = "PORTCULLIS_VENDOR_PASSPHRASE"  # noqa: S105 - a variable name
SSH_PASSPHRASE = "PORTCULLIS_VENDOR_SSH_PASSPHRASE"  # noqa: S105 - a variable name


class VendorError(Exception):
    """A user-facing failure: printed as ``portcullis-vendor: message``, exit status 2."""


def _passphrase() -> bytes | None:
    value = os.environ.get(SIGNING_PASSPHRASE)
    return value.encode() if value else None


def cmd_keygen(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    private, public = directory / f"{args.name}.key", directory / f"{args.name}.pub"
    if private.exists() or public.exists():
        raise VendorError(f"{private} or {public} exists already; not overwritten")
    key = keys.generate_signing_key()
    keys.save_private_key(key, private, _passphrase())
    trusted = keys.TrustedKey(keys.key_id(key.public_key()), key.public_key(), args.name)
    public.write_text(json.dumps(trusted.record(), indent=2, sort_keys=True) + "\n")
    print(f"key {trusted.id}: private {private} (keep it offline), public {public}")
    return 0


def cmd_trust_root(args: argparse.Namespace) -> int:
    try:
        root = keys.make_trust_root([keys.load_public_key(Path(p)) for p in args.key],
                                    args.threshold, args.version)
    except (keys.KeyFileError, keys.TrustRootError) as exc:
        raise VendorError(str(exc)) from None
    Path(args.out).write_bytes(root.to_bytes())
    print(f"trust root version {root.version}: {', '.join(root.key_ids)} "
          f"(threshold {root.threshold}) -> {args.out}")
    return 0


def _audience(args: argparse.Namespace) -> str | None:
    """The fingerprint of the appliance ``--appliance`` names: the host key push checks
    (the inventory's known_hosts), so the bundle installs on that appliance only."""
    if not args.appliance:
        if args.inventory:
            raise VendorError("--inventory without --appliance: name the appliance the "
                              "bundle is for")
        if args.target in BOUND_TARGETS:
            raise VendorError(f"a {args.target} bundle is for one appliance: name it with "
                              "--inventory FILE --appliance NAME")
        return None
    if not args.inventory:
        raise VendorError("--appliance needs --inventory (where the appliance and its host "
                          "key are known)")
    from portcullis_vendor import push

    inventory, (appliance,) = _selected(args, [args.appliance])
    try:
        return push.appliance_fingerprint(appliance, _known_hosts(args, inventory))
    except ValueError as exc:
        raise VendorError(str(exc)) from None


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    expires = build.expiry(args.expires_in, args.expires)
    audience = _audience(args)
    check = HealthCheck(tuple(shlex.split(args.health_check)), args.health_timeout) \
        if args.health_check else None
    if args.target == "app":
        if args.files:
            raise VendorError("app bundles take --source or --wheel, not file arguments")
        manifest = build.app_bundle(out, expires=expires,
                                    source=Path(args.source) if args.source else None,
                                    wheels=tuple(Path(w) for w in args.wheel or ()),
                                    version=args.version, health_check=check,
                                    description=args.description, audience=audience,
                                    lock=Path(args.lock) if args.lock else None)
    elif args.target == "trust-root":
        if not args.trust_root:
            raise VendorError("a trust-root bundle needs --trust-root FILE")
        manifest = build.trust_root_bundle(out, Path(args.trust_root), expires=expires,
                                           description=args.description, audience=audience)
    else:
        if not args.version or not args.files:
            raise VendorError(f"a {args.target} bundle needs --version and files")
        files = {Path(f).name: Path(f) for f in args.files}
        manifest = build.bundle_from_files(out, args.target, args.version, files,
                                           expires=expires, health_check=check,
                                           description=args.description, audience=audience)
    audience_text = f" for {args.appliance} ({audience})" if audience else ""
    print(f"built {out}: {manifest.target} {manifest.version}{audience_text}, "
          f"{len(manifest.files)} file(s), "
          f"expires {manifest.expires:%Y-%m-%d %H:%M} UTC (unsigned: run portcullis-vendor "
          "sign)")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        signing_keys = [keys.load_private_key(Path(k), _passphrase()) for k in args.key]
        signed = sign_bundle(Path(args.bundle), signing_keys)
    except keys.KeyFileError as exc:
        raise VendorError(str(exc)) from None
    except BundleRejected as exc:
        raise VendorError(f"{args.bundle}: {exc}") from None
    except OSError as exc:
        raise VendorError(f"{args.bundle}: {exc.strerror}") from None
    print(f"{args.bundle}: signed by {', '.join(signed)}")
    return 0


def _known_hosts(args: argparse.Namespace, inventory: Any) -> Path:
    """The appliances' host keys: ``--known-hosts``, else the inventory's."""
    known = Path(args.known_hosts or inventory.known_hosts)
    if not known.is_file():
        raise VendorError(f"{known}: no such known_hosts file (the appliances' host keys: "
                          "without them no appliance is trusted)")
    return known


def _ssh_settings(args: argparse.Namespace, inventory: Any) -> Any:
    from portcullis_vendor import push

    try:
        identity = push.load_identity(Path(args.identity), os.environ.get(SSH_PASSPHRASE))
    except ValueError as exc:
        raise VendorError(str(exc)) from None
    return push.SshSettings(identity, _known_hosts(args, inventory), args.connect_timeout)


def _selected(args: argparse.Namespace, only: Sequence[str] | None = None) -> Any:
    """The inventory and its appliances named by ``only`` (default ``--only``; none: all)."""
    only = args.only if only is None else only
    try:
        inventory = load_inventory(Path(args.inventory))
    except InventoryError as exc:
        raise VendorError(str(exc)) from None
    appliances = [a for a in inventory.appliances if not only or a.name in only]
    missing = set(only or ()) - {a.name for a in appliances}
    if missing:
        raise VendorError(f"not in the inventory: {', '.join(sorted(missing))}")
    return inventory, appliances


def cmd_push(args: argparse.Namespace) -> int:
    from portcullis_vendor import push

    bundle = Path(args.bundle)
    if not bundle.is_file():
        raise VendorError(f"{bundle}: no such bundle")
    inventory, appliances = _selected(args)
    ssh = _ssh_settings(args, inventory)
    progress = None if args.quiet else push.printer(sys.stderr)
    results = push.push_all(appliances, bundle, ssh, args.parallel, progress)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print_table(("appliance", "address", "result", "version", "previous", "reason"),
                    [(r.appliance, r.address, r.result, r.version or "-", r.previous or "-",
                      r.reason) for r in results])
        counts = {name: sum(r.result == name for r in results) for name in push.RESULTS}
        print(", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return 0 if all(r.result == "applied" for r in results) else 1


def cmd_status(args: argparse.Namespace) -> int:
    from portcullis_vendor import push

    inventory, appliances = _selected(args)
    results = push.status_all(appliances, _ssh_settings(args, inventory), args.parallel)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2, default=str))
        return 0 if all(r.answered for r in results) else 1
    rows = []
    for r in results:
        versions = r.report.get("versions", {})
        last = (r.report.get("recent") or [{}])[0]
        if not r.reachable:
            summary = f"unreachable: {r.reason}"
        elif r.reason:  # it answered, but not with a status
            summary = r.reason
        else:
            summary = f"{last.get('outcome', '-')} {last.get('version') or ''}".strip()
        rows.append((r.appliance, r.address, versions.get("app") or "-",
                     versions.get("clamav") or "-", versions.get("config") or "-",
                     versions.get("trust-root") or "-", summary))
    print_table(("appliance", "address", "app", "clamav", "config", "trust root",
                 "last update"), rows)
    return 0 if all(r.answered for r in results) else 1


def _ssh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", required=True, help="TOML list of appliances")
    parser.add_argument("--identity", required=True, help="SSH private key to log in with")
    parser.add_argument("--known-hosts", help="appliance host keys (default: the inventory's)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="just this appliance (repeatable)")
    parser.add_argument("--parallel", type=int, default=8, help="appliances at a time")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    parser.add_argument("--json", action="store_true", help="machine-readable results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portcullis-vendor",
                                     description="Portcullis update server (vendor side)")
    parser.add_argument("--version", action="version", version=f"portcullis-vendor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub = commands.add_parser("keygen", help="create an Ed25519 signing key")
    sub.add_argument("--name", required=True, help="key name (files NAME.key, NAME.pub)")
    sub.add_argument("--dir", default=".", help="where to write them")
    sub.set_defaults(func=cmd_keygen)

    sub = commands.add_parser("trust-root", help="write a trust root listing public keys")
    sub.add_argument("--key", action="append", required=True, help="a .pub file (repeatable)")
    sub.add_argument("--threshold", type=int, default=1, help="signatures required")
    sub.add_argument("--version", type=int, default=1, help="must grow with every rotation")
    sub.add_argument("--out", required=True)
    sub.set_defaults(func=cmd_trust_root)

    sub = commands.add_parser("build", help="build an unsigned bundle")
    sub.add_argument("--target", required=True, choices=("app", "clamav", "config",
                                                          "trust-root"))
    sub.add_argument("--version", help="bundle version (app: taken from the wheel)")
    sub.add_argument("--source", help="app: source tree to build the wheel from")
    sub.add_argument("--wheel", action="append", help="app: a wheel to carry (repeatable)")
    sub.add_argument("--lock", help="app: the requirements.lock every dependency wheel must "
                                    "match (default: --source's)")
    sub.add_argument("--trust-root", help="trust-root: the new trust root file")
    sub.add_argument("--expires-in", type=float, metavar="DAYS", help="default 30 days")
    sub.add_argument("--expires", metavar="TIMESTAMP", help="absolute expiry (ISO 8601)")
    sub.add_argument("--health-check", metavar="COMMAND",
                     help="run after installing (default: the appliance's own check)")
    sub.add_argument("--health-timeout", type=float, default=60.0)
    sub.add_argument("--description", default="")
    sub.add_argument("--inventory", help="the inventory listing --appliance")
    sub.add_argument("--appliance", metavar="NAME",
                     help="the one appliance the bundle is for (required for config): it "
                          "is bound to the host key known_hosts pins for it")
    sub.add_argument("--known-hosts", help="appliance host keys (default: the inventory's)")
    sub.add_argument("--out", required=True)
    sub.add_argument("files", nargs="*", help="clamav/config: the files to carry")
    sub.set_defaults(func=cmd_build)

    sub = commands.add_parser("sign", help="sign a bundle")
    sub.add_argument("--key", action="append", required=True, help="private key (repeatable)")
    sub.add_argument("bundle")
    sub.set_defaults(func=cmd_sign)

    sub = commands.add_parser("push", help="push a signed bundle to appliances")
    _ssh_options(sub)
    sub.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub.add_argument("bundle")
    sub.set_defaults(func=cmd_push)

    sub = commands.add_parser("status", help="what every appliance runs")
    _ssh_options(sub)
    sub.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (VendorError, build.BuildError) as exc:
        print(f"portcullis-vendor: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"portcullis-vendor: {exc.name} is missing: install portcullis[vendor]",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
