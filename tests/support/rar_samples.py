"""What the RAR decoder tests pack: text, machine code and repeats of known shape, and
libarchive's reading of an archive (bsdtar), the independent check of what our packers
write."""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

from tests.support.attachments import executable

RAR_SAMPLES = Path(__file__).parent / "rar"
LINES = b"".join(b"%03d\n" % n for n in range(512))   # both members of WinRAR's solid samples


def text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnop", k=n % 9 + 2)) for n in range(300)]
    return b" ".join(rng.choice(words) for _ in range(size // 6))[:size]


def x86_code(size: int) -> bytes:
    """An executable's look: a PE header, then calls and jumps (E8, E9) between bytes."""
    rng = random.Random(size)
    body = bytearray(executable())
    while len(body) < size:
        body += bytes([rng.choice([0xE8, 0xE9])]) + rng.randrange(-5000, 5000).to_bytes(
            4, "little", signed=True) + bytes(rng.choices([0x90, 0x8B, 0x55], k=rng.randrange(4)))
    return bytes(body[:size])


def arm_code(size: int) -> bytes:
    rng = random.Random(size)
    return b"".join(rng.randrange(1 << 12).to_bytes(3, "little") + bytes([rng.choice([0xEB, 0xE5])])
                    for _ in range(size // 4))


def repeats() -> bytes:
    """Records that reuse the same few distances: old-distance and last-match codes."""
    rng = random.Random(7)
    return b"".join(b"rec:" + bytes([65 + n % 3]) * 6 + rng.randbytes(2) + b"rec:"
                    + bytes([65 + n % 3]) * 6 + rng.randbytes(1) for n in range(2000))


def by_bsdtar(archive: bytes, name: str) -> bytes:
    """Member ``name`` as libarchive extracts it from ``archive``."""
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "archive.rar"
        path.write_bytes(archive)
        return subprocess.run(["bsdtar", "-xOf", str(path), name], capture_output=True,
                              check=True).stdout
