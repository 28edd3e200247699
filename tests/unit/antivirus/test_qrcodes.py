"""QR codes in pictures: read in a helper process, their links added to the message's."""

from __future__ import annotations

import io
import logging
import os
import signal
import struct
import sys
import zlib

import pytest
from PIL import Image

from portcullis.antivirus import qrcodes
from portcullis.antivirus.archives import Limits, inventory
from portcullis.mime import parse_message
from tests.support.attachments import mail, qr_image, zip_of

pytestmark = pytest.mark.antivirus

LINK = "https://login.phish.example.net/o365?user=alice"


@pytest.fixture
def logged(caplog):
    """What the QR module logs (attached to its own logger: the gateway's log set-up,
    run by other tests, stops records from reaching the root logger)."""
    qrcodes.log.addHandler(caplog.handler)
    qrcodes.log.setLevel(logging.INFO)
    yield caplog
    qrcodes.log.removeHandler(caplog.handler)
    qrcodes.log.setLevel(logging.NOTSET)


@pytest.fixture
def scanner():
    scanner = qrcodes.Scanner()
    yield scanner
    scanner.close()


@pytest.mark.parametrize("kind", ["png", "jpeg", "gif", "bmp", "webp"])
def test_a_qr_code_is_read_from_every_common_picture_format(scanner, kind):
    assert scanner.codes(qr_image(LINK, kind=kind)) == [LINK]


def test_the_links_in_qr_codes_join_the_messages_links_wherever_the_picture_is():
    message = mail("x", attachments=[("scan.png", qr_image(LINK)),
                                      ("photos.zip", zip_of({"b.jpg": qr_image(
                                          "https://other.example.org/", kind="jpeg")}))])
    found = inventory(parse_message(message))
    assert found.links == [LINK, "https://other.example.org/"]
    assert [(f.shown, f.detected) for f in found.files] == [
        ("scan.png", "png"), ("photos.zip", "zip"), ("photos.zip > b.jpg", "jpeg")]


def test_a_big_photograph_of_a_code_is_shrunk_and_still_read(scanner):
    big = qr_image(LINK, scale=110)                 # about 5,000 pixels square: 25 MP
    assert Image.open(io.BytesIO(big)).size[0] > 4000
    assert scanner.codes(big) == [LINK]


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("image", [
    _png_header(100_000, 100_000),                 # a bomb: 10 gigapixels claimed
    _png_header(10, 10),                           # too small to hold a code
    b"\x89PNG\r\n\x1a\n" + os.urandom(5000),      # noise after the signature
    qr_image(LINK)[:300],                          # cut short
], ids=["bomb", "tiny", "noise", "cut short"])
def test_hostile_pictures_hold_no_code_and_the_helper_survives(scanner, image):
    assert scanner.codes(image) == []
    assert scanner.codes(qr_image(LINK)) == [LINK]


def test_a_helper_that_dies_or_hangs_is_replaced(scanner):
    assert scanner.codes(qr_image(LINK)) == [LINK]
    first = scanner.helper
    os.kill(first, signal.SIGKILL)                 # as a crash in a decoder would
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)
    assert scanner.codes(qr_image(LINK)) == [LINK]    # read by a new helper
    second = scanner.helper
    assert second not in (None, first)
    scanner.timeout = 0.5
    os.kill(second, signal.SIGSTOP)                # hung
    assert scanner.codes(qr_image(LINK)) == []
    scanner.timeout = qrcodes.TIMEOUT
    assert scanner.codes(qr_image(LINK)) == [LINK]
    assert scanner.helper not in (None, second)


def test_a_helper_that_dies_on_an_image_costs_that_image_only(logged):
    dying = qrcodes.Scanner(command=[sys.executable, "-c", "import sys; print('+', end='',"
                                     " flush=True); sys.stdin.buffer.read(8); sys.exit(1)"])
    assert dying.codes(qr_image(LINK)) == []
    assert "QR code helper failed on an image (it ended)" in logged.text
    assert dying.helper is None                    # a new one for the next image


def test_without_zbar_no_picture_is_scanned_and_nothing_fails(logged):
    missing = qrcodes.Scanner(command=[sys.executable, "-c", "print('-', end='')"])
    assert missing.codes(qr_image(LINK)) == []
    assert missing.codes(qr_image(LINK)) == []
    assert "zbar library is missing" in logged.text
    assert missing.helper is None


def test_only_so_many_pictures_of_a_message_are_scanned():
    pictures = [(f"{n}.png", qr_image(f"https://site{n}.example.net/")) for n in range(5)]
    found = inventory(parse_message(mail("x", attachments=pictures)), Limits(max_qr_images=3))
    assert found.links == [f"https://site{n}.example.net/" for n in range(3)]


def test_an_image_does_not_wait_long_for_a_helper_busy_with_other_messages(scanner,
                                                                          monkeypatch):
    monkeypatch.setattr(qrcodes, "WAIT", 0.2)
    with scanner._lock:                            # another message's image being read
        assert scanner.codes(qr_image(LINK)) == []
    assert scanner.codes(qr_image(LINK)) == [LINK]


def test_a_message_spends_only_so_long_on_its_pictures():
    pictures = [(f"{n}.png", qr_image(f"https://site{n}.example.net/")) for n in range(3)]
    found = inventory(parse_message(mail("x", attachments=pictures)),
                      Limits(max_qr_seconds=0.0))
    assert found.links == []
