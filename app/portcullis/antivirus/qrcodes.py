"""QR codes in images: the link of a "scan to keep your mailbox" phishing mail, drawn as
a picture so that no text filter sees it.  What the codes say joins the message's links,
and so meets the URI blocklists.

Images are hostile input decoded by C libraries (Pillow's decoders, zbar), so they are
decoded in a helper process of their own, as Postfix keeps risky work out of the parts
that hold mail: it runs ``python -m portcullis.antivirus.qrcodes``, reads one image at a
time (a 4-byte length, then the bytes) and answers with the codes' texts as JSON (a
4-byte length first).  A helper that crashes, exceeds its memory limit or takes longer
than TIMEOUT is killed; the image counts as holding no code, and the next image gets a
fresh helper.  Images with more than MAX_PIXELS are not decoded (a decompression bomb);
big ones are scanned shrunk to SCAN_PIXELS (a code a phone reads stays readable).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO

log = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000         # an image bigger than this is a bomb, not a picture
SCAN_PIXELS = 4_000_000         # what a big image is shrunk to before it is scanned
MIN_SIDE = 21                   # the smallest QR code (version 1) is 21 modules square
MAX_BYTES = 16 * 1024 * 1024    # bytes of one image sent to the helper
MAX_ANSWER = 64 * 1024          # bytes of one answer read back
MAX_CODES = 16                  # codes read from one image
TIMEOUT = 3.0                   # seconds one image may take (a 4 MP scan takes 0.3 s)
WAIT = 2.0                      # seconds an image waits for the helper, busy with another
MEMORY = 1024 * 1024 * 1024     # the helper's address space
_FRAME = struct.Struct(">I")


class Scanner:
    """The parent's side: ``codes(image)`` asks the helper process (started when first
    needed, again after it failed) for the QR codes in one image.  Thread-safe: images
    are scanned one at a time."""

    def __init__(self, timeout: float = TIMEOUT, command: list[str] | None = None) -> None:
        self.timeout = timeout
        self.command = command or [sys.executable, "-m", __name__]
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._unavailable = False

    def codes(self, image: bytes) -> list[str]:
        """The texts of the QR codes in ``image``; none when the helper is busy with other
        messages' images for longer than WAIT (QR codes are a hint, not worth holding a
        message's other checks up)."""
        if self._unavailable or len(image) > MAX_BYTES:
            return []
        if not self._lock.acquire(timeout=WAIT):
            log.info("QR code helper busy: an image left unread")
            return []
        try:
            return self._ask(image)
        except (OSError, ValueError, _Failed) as exc:
            log.warning("QR code helper failed on an image (%s): restarted for the next", exc)
            self._stop()
            return []
        finally:
            self._lock.release()

    @property
    def helper(self) -> int | None:
        """The helper's process id, while it runs."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ask(self, image: bytes) -> list[str]:
        process = self._started()
        if process is None:
            return []
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(_FRAME.pack(len(image)) + image)
        process.stdin.flush()
        deadline = time.monotonic() + self.timeout
        (size,) = _FRAME.unpack(_read(process.stdout, _FRAME.size, deadline))
        if size > MAX_ANSWER:
            raise _Failed(f"an answer of {size} bytes")
        answer = json.loads(_read(process.stdout, size, deadline))
        if not isinstance(answer, list):
            raise _Failed("an answer that is not a list")
        return [str(text) for text in answer[:MAX_CODES]]

    def _started(self) -> subprocess.Popen[bytes] | None:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, close_fds=True,
            env={key: value for key, value in os.environ.items()
                 if key in ("PATH", "PYTHONPATH", "LANG")})
        assert self._process.stdout is not None
        ready = _read(self._process.stdout, 1, time.monotonic() + 30)
        if ready != b"+":                      # zbar missing: say so once, scan nothing
            log.warning("QR codes in images are not read: the zbar library is missing")
            self._unavailable = True
            self._stop()
            return None
        return self._process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
            self._process = None


class _Failed(Exception):
    """The helper died, hung or answered nonsense."""


def _read(stream: IO[bytes], size: int, deadline: float) -> bytes:
    """Exactly ``size`` bytes from the helper's output before ``deadline``."""
    fd = stream.fileno()
    out = bytearray()
    while len(out) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _Failed("no answer in time")
        chunk = os.read(fd, size - len(out))
        if not chunk:
            raise _Failed("it ended")
        out += chunk
    return bytes(out)


_shared: Scanner | None = None
_shared_lock = threading.Lock()


def scanner() -> Scanner:
    """This process's scanner (one helper per gateway process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Scanner()
        return _shared


# -- the helper process ------------------------------------------------------------------

def _decode(image: bytes) -> list[str]:
    from PIL import Image
    from pyzbar import pyzbar

    with Image.open(io.BytesIO(image)) as picture:
        width, height = picture.size              # from the header: nothing decoded yet
        if min(width, height) < MIN_SIDE or width * height > MAX_PIXELS:
            return []
        picture.draft("L", (width, height))       # JPEG: decode straight to grey
        grey = picture.convert("L")
    if width * height > SCAN_PIXELS:
        scale = (SCAN_PIXELS / (width * height)) ** 0.5
        grey = grey.resize((max(1, int(width * scale)), max(1, int(height * scale))))
    found = pyzbar.decode(grey, symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [_text(code.data) for code in found[:MAX_CODES]]


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _serve() -> None:
    """Answer images on standard input until it closes."""
    # The gateway's unit forbids setting limits (its system call filter): there, its own
    # sandbox and the pixel bound stand in.
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    out = sys.stdout.buffer
    try:
        from PIL import Image
        from pyzbar import pyzbar  # noqa: F401 - fails here when libzbar is missing
    except (ImportError, OSError):
        out.write(b"-")
        out.flush()
        return
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS           # (and _decode looks no further past it)
    out.write(b"+")
    out.flush()
    source = sys.stdin.buffer
    while header := source.read(_FRAME.size):
        if len(header) < _FRAME.size:
            return
        image = source.read(_FRAME.unpack(header)[0])
        try:
            codes = _decode(image)
        except Exception:  # noqa: BLE001 - any undecodable image holds no code
            codes = []
        answer = json.dumps(codes).encode()
        out.write(_FRAME.pack(len(answer)) + answer)
        out.flush()


if __name__ == "__main__":
    _serve()
