"""Reading an image's GPT and writing files into its ESP without mounting anything.

The build host's kernel may not mount FAT (no vfat, no loop partition scan); mtools works on
the image file at the partition's byte offset.
"""

from __future__ import annotations

import struct
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
ROOT_X86_64_TYPE = uuid.UUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")


class DiskError(Exception):
    pass


@dataclass(frozen=True)
class Partition:
    type: uuid.UUID
    first_lba: int
    last_lba: int
    name: str

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


def partitions(image: Path) -> list[Partition]:
    """The GPT partition entries of a raw disk image."""
    with image.open("rb") as disk:
        disk.seek(SECTOR)
        header = disk.read(92)
        if header[:8] != b"EFI PART":
            raise DiskError(f"{image}: no GPT header")
        entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        disk.seek(entries_lba * SECTOR)
        table = disk.read(count * entry_size)
    found = []
    for index in range(count):
        entry = table[index * entry_size:(index + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=entry[:16])
        if type_guid.int == 0:
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le").rstrip("\0")
        found.append(Partition(type_guid, first, last, name))
    return found


def esp(image: Path) -> Partition:
    for partition in partitions(image):
        if partition.type == ESP_TYPE:
            return partition
    raise DiskError(f"{image}: no EFI system partition")


def write_esp_file(image: Path, path_in_esp: str, content: str) -> None:
    """Put a file on the image's ESP (e.g. portcullis/network.conf), replacing it."""
    partition = esp(image)
    target = f"{image}@@{partition.offset}"
    source = image.with_name(image.name + ".esp-file")
    source.write_text(content)
    try:
        subprocess.run(["mcopy", "-o", "-i", target, str(source), f"::{path_in_esp}"],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise DiskError(f"mcopy into the ESP of {image} failed: {exc.stderr.strip()}") from None
    finally:
        source.unlink(missing_ok=True)


def read_esp_file(image: Path, path_in_esp: str) -> str:
    partition = esp(image)
    result = subprocess.run(["mtype", "-i", f"{image}@@{partition.offset}", f"::{path_in_esp}"],
                            check=True, capture_output=True, text=True)
    return result.stdout
