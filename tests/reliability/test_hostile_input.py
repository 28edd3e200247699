"""Hostile input through the real gateway to a real internal host: the published SMTP
smuggling payloads, 8-bit and NUL bytes in headers, megabyte header lines, 50 MB over the
size limit, absurdly nested MIME.  No crash, no hang, a clear 5xx where refused, and never
a second message smuggled past the gateway."""

from __future__ import annotations

import socket
import time
import uuid
from email.message import Message
from email.parser import BytesHeaderParser

import pytest

from tests.reliability.conftest import RECIPIENT, make_gateway, rss_peak_kib

pytestmark = pytest.mark.reliability

SIZE_LIMIT = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(world, tmp_path_factory):
    gw = make_gateway(world, tmp_path_factory.mktemp("hostile") / "gw",
                      smtp=f"max_message_size = {SIZE_LIMIT}\n").start()
    try:
        yield gw
    finally:
        gw.stop()


def session(gw, payload: bytes, timeout: float = 120) -> bytes:
    """Send the bytes as they are (then QUIT) and return all the gateway said."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.recv(1000)
        sock.sendall(payload + b"QUIT\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def replies(answer: bytes) -> list[bytes]:
    return [line for line in answer.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]


def verdict(answer: bytes) -> bytes:
    """The reply to the message itself: the first one after the 354."""
    found = replies(answer)
    starts = [i for i, line in enumerate(found) if line.startswith(b"354")]
    assert starts and len(found) > starts[0] + 1, found
    return found[starts[0] + 1]


def envelope(rcpt: str = RECIPIENT) -> bytes:
    return (b"EHLO hostile.test\r\nMAIL FROM:<a@remote.test>\r\n"
            + f"RCPT TO:<{rcpt}>\r\n".encode() + b"DATA\r\n")


def with_subject(internal, address: str, subject: str, wait: float = 3.0) -> list[Message]:
    """Delivered messages with this subject, headers only: hostile bodies (5000 nested
    parts) are more than Python's own full parser survives, and the test needs none."""
    local, _, domain = address.partition("@")
    maildir = internal.mail_dir / domain / local
    deadline = time.monotonic() + wait
    while True:
        found = []
        for path in [*maildir.glob("new/*"), *maildir.glob("cur/*")]:
            headers = BytesHeaderParser().parsebytes(path.read_bytes())
            if subject in str(headers["Subject"]):
                found.append(headers)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def assert_alive(gw) -> None:
    assert gw.process.poll() is None, gw.stderr()[-2000:]
    answer = session(gw, b"NOOP\r\n")
    assert replies(answer)[0].startswith(b"250")


# Published end-of-data variants (SEC Consult, "SMTP Smuggling", 2023, and the follow-up
# tooling): each tries to make a receiver see a second message inside the first.
SMUGGLING_ENDS = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n",
                  b"\r.\n", b"\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"]


@pytest.mark.parametrize("end", SMUGGLING_ENDS, ids=[repr(e)[2:-1] for e in SMUGGLING_ENDS])
def test_published_smuggling_payload_never_yields_a_second_message(world, gateway, end):
    carrier, smuggled = f"carrier {uuid.uuid4().hex[:8]}", f"smuggled {uuid.uuid4().hex[:8]}"
    payload = (envelope() + f"Subject: {carrier}\r\nFrom: a@remote.test\r\n\r\nhello".encode()
               + end + b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<alice@example.com>\r\n"
               b"DATA\r\n" + f"Subject: {smuggled}\r\n\r\nwire the money\r\n".encode()
               + b"\r\n.\r\n")
    codes = [r[:1] for r in replies(session(gateway, payload))]
    # EHLO, MAIL, RCPT, DATA(354), then one verdict for the one message, QUIT.
    assert codes[-2] in (b"2", b"5") and codes[-1] == b"2", codes
    assert not with_subject(world.internal, "alice@example.com", smuggled, wait=1)
    for message in world.internal.messages(RECIPIENT):
        if carrier in str(message["Subject"]):
            assert smuggled in message.as_string()     # the payload stayed inside it
    assert_alive(gateway)


def test_eight_bit_and_nul_bytes_in_headers_are_delivered_or_refused_clearly(world, gateway):
    subject = f"8bit {uuid.uuid4().hex[:8]}"
    content = (f"Subject: {subject} caf".encode() + b"\xe9 \xff\xfe\r\n"
               b"From: \xc3\xa9l\xc3\xa8ve <a@remote.test>\r\nX-Nul: a\x00b\x00\r\n"
               b"X-Control: \x01\x02\x1b[31m\r\n\r\nbody \x00 with \x80\x81 bytes\r\n.\r\n")
    reply = verdict(session(gateway, envelope() + content))
    assert reply[:1] in (b"2", b"5"), reply
    if reply.startswith(b"250"):
        assert with_subject(world.internal, RECIPIENT, subject)
    assert_alive(gateway)


def test_a_one_megabyte_header_line_is_refused_with_5xx(world, gateway):
    subject = f"long header {uuid.uuid4().hex[:8]}"
    content = (f"Subject: {subject}\r\nX-Long: ".encode() + b"a" * (1024 * 1024)
               + b"\r\n\r\nbody\r\n.\r\n")
    reply = verdict(session(gateway, envelope() + content))
    assert reply.startswith(b"5"), reply
    assert not with_subject(world.internal, RECIPIENT, subject, wait=1)
    assert_alive(gateway)


def test_a_header_section_over_its_limit_is_refused_with_552_before_it_is_read(
        world, gateway):
    """A million short header lines (8 MB, under the size limit) would cost the checks
    seconds and hundreds of MB; a long but sane header section still goes through."""
    subject = f"header flood {uuid.uuid4().hex[:8]}"
    flood = f"Subject: {subject}\r\n".encode() + b"X-A: b\r\n" * 1_000_000
    before = rss_peak_kib(gateway.process.pid)
    reply = verdict(session(gateway, envelope() + flood + b"\r\nbody\r\n.\r\n"))
    assert reply.startswith(b"552 5.3.4"), reply
    assert not with_subject(world.internal, RECIPIENT, subject, wait=1)
    assert rss_peak_kib(gateway.process.pid) - before < 64 * 1024   # the 8 MB, not 400 MB
    sane = f"long but sane {uuid.uuid4().hex[:8]}"
    headers = f"Subject: {sane}\r\n".encode() + b"X-Note: an ordinary header line\r\n" * 2000
    reply = verdict(session(gateway, envelope() + headers + b"\r\nbody\r\n.\r\n"))
    assert reply.startswith(b"250"), reply
    assert with_subject(world.internal, RECIPIENT, sane)
    assert_alive(gateway)


def test_a_message_of_more_lines_than_the_limit_is_refused_with_552_before_it_is_read(
        world, gateway):
    """1.2 million empty lines: the MIME parser would hold each as an object.  Bare CRs
    count, since they become line ends before parsing."""
    for flood in (b"\r\n" * 1_200_000, (b"\r" * 4000 + b"\r\n") * 300):
        subject = f"line flood {uuid.uuid4().hex[:8]}"
        before = rss_peak_kib(gateway.process.pid)
        reply = verdict(session(gateway, envelope() + f"Subject: {subject}\r\n\r\n".encode()
                                + flood + b".\r\n"))
        assert reply.startswith(b"552 5.3.4") and b"too many lines" in reply, reply
        assert not with_subject(world.internal, RECIPIENT, subject, wait=1)
        assert rss_peak_kib(gateway.process.pid) - before < 64 * 1024
    assert_alive(gateway)


@pytest.mark.parametrize("megabytes, shape", [(50, "lines"), (200, "one line")])
def test_messages_far_over_the_size_limit_are_refused_and_memory_stays_bounded(
        world, gateway, megabytes, shape):
    subject = f"huge {uuid.uuid4().hex[:8]}"
    chunk = (b"x" * 998 + b"\r\n") * 1000 if shape == "lines" else b"x" * 1_000_000
    answer = b""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=120) as sock:
        sock.recv(1000)
        sock.sendall(envelope() + f"Subject: {subject}\r\n\r\n".encode())
        try:
            for _ in range(megabytes):
                sock.sendall(chunk)
            sock.sendall(b"\r\n.\r\nQUIT\r\n")
        except OSError:
            pass          # the gateway may hang up on an endless line: that is its answer
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    reply = verdict(answer)
    # Many lines: the size limit (552); one endless line: refused as too long (500).
    assert reply.startswith(b"552" if shape == "lines" else b"500"), reply
    assert not with_subject(world.internal, RECIPIENT, subject, wait=1)
    # 50 MB were sent; the gateway must not have held them.
    assert rss_peak_kib(gateway.process.pid) < 150 * 1024
    assert_alive(gateway)


def nested_mime(depth: int, subject: str) -> bytes:
    parts = [f"Subject: {subject}\r\nFrom: a@remote.test\r\nMIME-Version: 1.0\r\n".encode()]
    for level in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'
                     f"--b{level}\r\n".encode())
    parts.append(b"Content-Type: text/plain\r\n\r\ninnermost\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n".encode())
    return b"".join(parts)


@pytest.mark.parametrize("depth", [50, 5000])
def test_deeply_nested_mime_is_judged_without_crash(world, gateway, depth):
    subject = f"nested {depth} {uuid.uuid4().hex[:8]}"
    reply = verdict(session(gateway, envelope() + nested_mime(depth, subject) + b".\r\n"))
    assert reply[:1] in (b"2", b"5"), reply
    if reply.startswith(b"250"):
        [delivered] = with_subject(world.internal, RECIPIENT, subject)
        assert "MIME_TOO_DEEP" in delivered["X-Spam-Status"]
    assert_alive(gateway)


def test_a_message_of_a_quarter_million_parts_is_refused_as_a_bomb_in_bounded_memory(
        world, gateway):
    """Tiny parts under the size and line limits: parsing them all held 130+ MB and
    seconds of the event loop; the parser stops counting, the walk calls it a bomb."""
    subject = f"part flood {uuid.uuid4().hex[:8]}"
    flood = (f"Subject: {subject}\r\nFrom: a@remote.test\r\nMIME-Version: 1.0\r\n"
             'Content-Type: multipart/mixed; boundary="b"\r\n\r\n').encode()
    flood += b"--b\r\n\r\nx\r\n" * 250_000 + b"--b--\r\n"
    before = rss_peak_kib(gateway.process.pid)
    reply = verdict(session(gateway, envelope() + flood + b".\r\n"))
    assert reply.startswith(b"5") and b"MIME parts" in reply, reply
    assert not with_subject(world.internal, RECIPIENT, subject, wait=1)
    assert rss_peak_kib(gateway.process.pid) - before < 64 * 1024
    assert_alive(gateway)
