"""`make flash DEV=/dev/sdX`: write the raw image to a disk, refusing anything risky.

Refused: no device, not a whole-disk block device, a disk with anything mounted or used as
swap or by LVM/RAID/dm, the disk the running system lives on, a disk smaller than the image,
an image whose SHA-256 does not match its sums file.  Then it asks for the device name to be
typed again (or takes --yes), writes, flushes, and reads the disk back to verify.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

from builder import paths
from builder.outputs import sha256
from builder.progress import BuildError
from builder.qemu import built_image

CHUNK = 4 * 1024 * 1024


def _sysfs_name(device: Path) -> str:
    info = os.stat(device)
    if not stat.S_ISBLK(info.st_mode):
        raise BuildError(f"{device} is not a block device")
    link = Path(f"/sys/dev/block/{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}").resolve()
    if (link / "partition").exists():
        raise BuildError(f"{device} is a partition; give the whole disk (e.g. /dev/sdb)")
    return link.name


def _disk_of(major_minor: str) -> str | None:
    link = Path(f"/sys/dev/block/{major_minor}").resolve()
    if not link.exists():
        return None
    return link.parent.name if (link / "partition").exists() else link.name


def _members(disk: str) -> set[str]:
    """The disk and its partitions, as kernel names."""
    base = Path("/sys/block") / disk
    return {disk, *(p.name for p in base.iterdir() if (p / "partition").exists())}


def _in_use(disk: str) -> list[str]:
    reasons = []
    members = _members(disk)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        owner = _disk_of(fields[2])
        if owner == disk:
            reasons.append(f"mounted at {fields[4]}")
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        if Path(line.split()[0]).name in members:
            reasons.append(f"swap on {line.split()[0]}")
    for member in members:
        holders = Path("/sys/class/block") / member / "holders"
        if holders.exists() and any(holders.iterdir()):
            reasons.append(f"{member} is used by " + ", ".join(h.name for h in holders.iterdir()))
    return reasons


def _system_disk() -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return _disk_of(fields[2])
    return None


def check_target(device: Path, image_size: int) -> str:
    """Every safety check; returns a description of the disk for the confirmation."""
    if not device.exists():
        raise BuildError(f"{device} does not exist")
    disk = _sysfs_name(device)
    if disk == _system_disk():
        raise BuildError(f"{device} holds the running system's root file system")
    reasons = _in_use(disk)
    if reasons:
        raise BuildError(f"{device} is in use: " + "; ".join(reasons))
    size = int((Path("/sys/block") / disk / "size").read_text()) * 512
    if size < image_size:
        raise BuildError(f"{device} has {size / 1e9:.1f} GB, "
                         f"the image needs {image_size / 1e9:.1f} GB")
    model = (Path("/sys/block") / disk / "device/model")
    name = model.read_text().strip() if model.exists() else "unknown model"
    return f"{device} ({name}, {size / 1e9:.1f} GB)"


def check_image(image: Path) -> None:
    sums = image.with_name(image.name.removesuffix(".raw") + ".SHA256SUMS")
    if not sums.exists():
        raise BuildError(f"{sums} is missing: rebuild with make image")
    expected = {name: digest for digest, name in
                (line.split(None, 1) for line in sums.read_text().splitlines() if line)}
    if expected.get(image.name) != sha256(image):
        raise BuildError(f"{image} does not match {sums.name}: rebuild with make image")


def flash(device_text: str, *, assume_yes: bool = False) -> None:
    if not device_text:
        raise BuildError("name the disk to overwrite: make flash DEV=/dev/sdX")
    if os.geteuid() != 0:
        raise BuildError("must run as root to write a disk")
    image = built_image()
    device = Path(device_text)
    print(f"make flash: checking {image.name} against its SHA-256 sum...")
    check_image(image)
    description = check_target(device, image.stat().st_size)
    print(f"make flash: about to ERASE {description} and write {image.name}")
    if not assume_yes:
        if not sys.stdin.isatty():
            raise BuildError("refusing to overwrite a disk without confirmation "
                             "(run in a terminal, or pass --yes)")
        answer = input(f"Type {device} to confirm: ").strip()
        if answer != str(device):
            raise BuildError("not confirmed; nothing was written")
    written = _write(image, device)
    print("make flash: verifying...")
    if _digest(device, written) != sha256(image):
        raise BuildError(f"verification failed: {device} does not read back as {image.name}")
    print(f"make flash: {device} is ready ({paths.image_name(paths.portcullis_version())}); "
          "static network settings go in portcullis/network.conf on its EFI partition")


def _write(image: Path, device: Path) -> int:
    total = image.stat().st_size
    done = 0
    with image.open("rb") as source, open(device, "r+b", buffering=0) as target:
        while chunk := source.read(CHUNK):
            target.write(chunk)
            done += len(chunk)
            print(f"\r    {done * 100 // total:3d}%  {done / 1e9:.2f} / {total / 1e9:.2f} GB",
                  end="", flush=True)
        os.fsync(target.fileno())
    print()
    return total


def _digest(device: Path, length: int) -> str:
    digest = hashlib.sha256()
    with open(device, "rb") as stream:
        remaining = length
        while remaining:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()
