"""Booting the image under qemu (UEFI with OVMF): `make vm` and the image test.

KVM is used where it really runs guests; on machines where /dev/kvm exists but guests die
with an internal error (nested virtualisation), a short probe falls back to TCG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder import paths
from builder.progress import BuildError

FIRMWARE_CANDIDATES = [
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
]
QEMU = "qemu-system-x86_64"
# Inside an isolated VM (restrict=on) this address reaches chosen ports on the host's
# loopback, one relay process per connection.  (qemu refuses guest forwards on the gateway
# address 10.0.2.2 itself; 10.0.2.2 is reachable only without isolation.)
GUEST_FORWARD_ADDRESS = "10.0.2.100"


def firmware() -> tuple[Path, Path]:
    for code, variables in FIRMWARE_CANDIDATES:
        if code.exists() and variables.exists():
            return code, variables
    raise BuildError("no OVMF UEFI firmware found: install the Debian package ovmf")


def accelerator() -> str:
    """kvm if a guest actually runs under it (OVMF reaches its boot manager), else tcg."""
    chosen = os.environ.get("PORTCULLIS_VM_ACCEL", "auto")
    if chosen in ("kvm", "tcg"):
        return chosen
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    code, template = firmware()
    scratch = paths.CACHE / "kvm-probe-vars.fd"
    shutil.copyfile(template, scratch)
    command = [QEMU, "-accel", "kvm", "-machine", "q35", "-m", "256", "-display", "none",
               "-nodefaults", "-serial", "stdio", "-no-reboot", *_pflash(code, scratch)]
    try:
        output = subprocess.run(command, capture_output=True, timeout=12, check=False).stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or b""
    return "kvm" if b"BdsDxe" in output else "tcg"


def _pflash(code: Path, variables: Path) -> list[str]:
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]


@dataclass
class VmSpec:
    disk: Path
    disk_format: str
    variables: Path                      # a writable copy of OVMF's variable store
    forwards: dict[int, int]             # guest port -> host loopback port
    # GUEST_FORWARD_ADDRESS:port inside the VM -> 127.0.0.1:port on the host
    guest_forwards: dict[int, int] = field(default_factory=dict)
    serial: Path | None = None           # None: serial console on this terminal
    memory: str = "2048"
    cpus: int = 2
    accel: str = "tcg"
    isolated: bool = True                # restrict=on: no traffic leaves the VM but forwards

    def command(self) -> list[str]:
        code, _ = firmware()
        netdev = ["user", "id=net0"]
        if self.isolated:
            netdev.append("restrict=on")
        netdev += [f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in
                   sorted(self.forwards.items())]
        relay = Path(__file__).with_name("relay.py")
        netdev += [f"guestfwd=tcp:{GUEST_FORWARD_ADDRESS}:{guest}"
                   f"-cmd:/usr/bin/python3 {relay} {host}"
                   for guest, host in sorted(self.guest_forwards.items())]
        serial = ["-serial", f"file:{self.serial}"] if self.serial else ["-serial", "mon:stdio"]
        return [QEMU, "-accel", self.accel, "-machine", "q35", "-cpu", "max" if self.accel ==
                "tcg" else "host", "-smp", str(self.cpus), "-m", self.memory,
                "-display", "none", "-nodefaults", "-no-reboot", *serial,
                *_pflash(code, self.variables),
                "-drive", f"if=virtio,format={self.disk_format},file={self.disk},discard=unmap",
                "-netdev", ",".join(netdev), "-device", "virtio-net-pci,netdev=net0",
                "-device", "virtio-rng-pci"]


class Vm:
    """A running VM; stop() ends exactly the qemu process it started."""

    def __init__(self, spec: VmSpec) -> None:
        self.spec = spec
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Vm:
        log = (self.spec.serial.with_suffix(".qemu.log").open("wb")
               if self.spec.serial else subprocess.DEVNULL)
        self.process = subprocess.Popen(self.spec.command(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def serial_text(self) -> str:
        if not self.spec.serial or not self.spec.serial.exists():
            return ""
        return self.spec.serial.read_text(errors="replace")

    def __enter__(self) -> Vm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def built_image() -> Path:
    image = paths.OUT_DIR / f"{paths.image_name(paths.portcullis_version())}.raw"
    if not image.exists():
        raise BuildError(f"{image} does not exist: run make image first")
    return image


def overlay(base: Path, target: Path, size: str = "8G") -> None:
    """A qcow2 that writes go to, backed by the untouched built image (and larger than it,
    so the root file system grows on first boot as it would on a real disk)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base),
                    str(target), size], check=True)


def run_interactive(args: argparse.Namespace) -> None:
    """`make vm`: the image on a persistent overlay, serial console on this terminal."""
    if shutil.which(QEMU) is None:
        raise BuildError(f"{QEMU} not found: install the Debian packages qemu-system-x86 and ovmf")
    image = built_image()
    state = paths.CACHE / "vm"
    state.mkdir(parents=True, exist_ok=True)
    disk = state / f"{image.stem}.qcow2"
    variables = state / f"{image.stem}.vars.fd"
    if not disk.exists() or disk.stat().st_mtime < image.stat().st_mtime:
        disk.unlink(missing_ok=True)
        overlay(image, disk)
        shutil.copyfile(firmware()[1], variables)
    spec = VmSpec(disk=disk, disk_format="qcow2", variables=variables,
                  forwards={22: args.ssh_port, 25: args.smtp_port, 80: args.http_port},
                  memory=args.memory, accel=accelerator(), isolated=not args.open_network)
    print(f"make vm: {image.name} ({spec.accel}); state in {state}")
    print(f"  SMTP  127.0.0.1:{args.smtp_port} -> 25   web http://127.0.0.1:{args.http_port}/ -> 80"
          f"   SSH 127.0.0.1:{args.ssh_port} -> 22")
    print("  the serial console follows; quit with Ctrl-A X")
    subprocess.run(spec.command(), check=False)
