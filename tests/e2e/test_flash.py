"""`make flash`, for real: the built image written to a block device (a loop device over a
file, the nearest thing to a USB stick or a disk a test can own), read back, and every
refusal tried on a device that holds something worth keeping."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.support import appliance

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

MIB = 1024 * 1024
# What a disk holds before the test: flashing it must either replace all of it or none.
KEEP = b"the administrator's data, not to be overwritten\n" * 1000


def run_flash(device: str, *extra: str, stdin: int | None = subprocess.DEVNULL,
              ) -> subprocess.CompletedProcess[str]:
    """`make flash DEV=...`, as the Makefile runs it."""
    return subprocess.run(["make", "-s", "flash", f"DEV={device}", *extra], cwd=appliance.REPO,
                          stdin=stdin, capture_output=True, text=True, timeout=600, check=False)


@contextmanager
def loop_disk(path: Path, size: int) -> Iterator[str]:
    """A whole-disk block device over ``path`` (partitions scanned), detached afterwards."""
    with path.open("wb") as file:
        file.write(KEEP)
        file.truncate(size)
    device = subprocess.run(["losetup", "--find", "--show", "--partscan", str(path)],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


@contextmanager
def mounted(device: str, mount: Path) -> Iterator[None]:
    """``device`` mounted read-only on ``mount`` for the time of the block."""
    mount.mkdir()
    subprocess.run(["mount", "-o", "ro", device, str(mount)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def digest(path: str | Path, length: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        while length > 0 and (chunk := stream.read(min(4 * MIB, length))):
            sha.update(chunk)
            length -= len(chunk)
    return sha.hexdigest()


def probe(partition: str) -> str:
    """The file system type on a partition, read from the device itself (no udev here)."""
    return subprocess.run(["blkid", "--probe", "--output", "value", "--match-tag", "TYPE",
                           partition], capture_output=True, text=True, check=False).stdout.strip()


def untouched(device: str) -> bool:
    with open(device, "rb") as stream:
        return stream.read(len(KEEP)) == KEEP


@pytest.fixture(scope="module")
def image(build) -> Path:
    return appliance.qemu.built_image()


@pytest.fixture(scope="module")
def flashed(image, tmp_path_factory) -> Iterator[tuple[str, subprocess.CompletedProcess[str]]]:
    """A disk larger than the image, flashed once for the tests that need one."""
    with loop_disk(tmp_path_factory.mktemp("flashed") / "disk",
                   image.stat().st_size + 64 * MIB) as device:
        result = run_flash(device, "FLASH_ARGS=--yes")
        subprocess.run(["partx", "--update", device], check=False)
        yield device, result


def test_flash_writes_the_image_and_the_disk_reads_back_as_it(image, flashed):
    device, result = flashed
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{device} is ready" in result.stdout
    # Read back here too, independently of the tool's own verification.
    size = image.stat().st_size
    assert digest(device, size) == digest(image, size)
    # The kernel finds the image's partitions on the disk: the ESP and the root.
    assert [probe(f"{device}p{n}") for n in (1, 2)] == ["vfat", "ext4"]


def test_flash_refuses_a_partition(flashed):
    device, _ = flashed
    result = run_flash(f"{device}p2", "FLASH_ARGS=--yes")
    assert result.returncode != 0
    assert "is a partition; give the whole disk" in result.stderr


def test_flash_refuses_a_disk_whose_partition_is_mounted(image, flashed, tmp_path):
    device, _ = flashed
    mount = tmp_path / "mnt"
    with mounted(f"{device}p2", mount):
        result = run_flash(device, "FLASH_ARGS=--yes")
    assert result.returncode != 0
    assert "is in use" in result.stderr and f"mounted at {mount}" in result.stderr
    assert digest(device, 4 * MIB) == digest(image, 4 * MIB)


def test_flash_refuses_a_disk_with_a_file_system_mounted_on_the_whole_disk(image, tmp_path):
    with loop_disk(tmp_path / "disk", image.stat().st_size + 64 * MIB) as device:
        subprocess.run(["mkfs.ext4", "-q", "-F", device], check=True)
        mount = tmp_path / "mnt"
        head = digest(device, 4 * MIB)
        with mounted(device, mount):
            result = run_flash(device, "FLASH_ARGS=--yes")
        assert result.returncode != 0
        assert "is in use" in result.stderr and f"mounted at {mount}" in result.stderr
        assert digest(device, 4 * MIB) == head


def test_flash_refuses_a_disk_smaller_than_the_image(image, tmp_path):
    with loop_disk(tmp_path / "disk", 256 * MIB) as device:
        result = run_flash(device, "FLASH_ARGS=--yes")
        assert result.returncode != 0
        assert "the image needs" in result.stderr
        assert untouched(device)


def test_flash_without_confirmation_writes_nothing(image, tmp_path):
    with loop_disk(tmp_path / "disk", image.stat().st_size + 64 * MIB) as device:
        result = run_flash(device)              # no terminal to ask on, no --yes
        assert result.returncode != 0
        assert "without confirmation" in result.stderr
        assert untouched(device)


def test_flash_asks_for_the_device_again_and_a_wrong_answer_writes_nothing(image, tmp_path):
    with loop_disk(tmp_path / "disk", image.stat().st_size + 64 * MIB) as device:
        controller, terminal = os.openpty()
        try:
            os.write(controller, b"/dev/sda\n")     # the administrator names another disk
            result = run_flash(device, stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)
        assert result.returncode != 0
        assert f"Type {device} to confirm" in result.stdout
        assert "not confirmed; nothing was written" in result.stderr
        assert untouched(device)
