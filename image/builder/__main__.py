"""Command line of the image builder: build, vm, flash, lock."""

from __future__ import annotations

import argparse
import sys

from builder.progress import BuildError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m builder",
                                     description="Portcullis appliance image")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build image/out/portcullis-<version>.{raw,qcow2,vmdk}")
    vm = sub.add_parser("vm", help="boot the image under qemu, ports forwarded to loopback")
    vm.add_argument("--ssh-port", type=int, default=2222)
    vm.add_argument("--smtp-port", type=int, default=2525)
    vm.add_argument("--http-port", type=int, default=8080)
    vm.add_argument("--memory", default="2048")
    vm.add_argument("--open-network", action="store_true",
                    help="let the VM reach the outside (default: isolated, forwards only)")
    flash = sub.add_parser("flash", help="write the raw image to a disk, with safety checks")
    flash.add_argument("device", nargs="?", default="")
    flash.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sub.add_parser("lock", help="write requirements.lock and image/build-tools.lock (run with "
                                 "the dev venv's Python)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from builder.build import build
            build()
        elif args.command == "vm":
            from builder.qemu import run_interactive
            run_interactive(args)
        elif args.command == "flash":
            from builder.flash import flash as write
            write(args.device, assume_yes=args.yes)
        elif args.command == "lock":
            from builder import lock
            pins = lock.generate()
            print(f"make lock: {len(pins)} pins in {lock.LOCK}")
            pins = lock.generate_build_tools()
            print(f"make lock: {len(pins)} pins in {lock.BUILD_TOOLS_LOCK}")
    except BuildError as exc:
        print(f"make {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
