"""A gateway stopped (systemd stop, an update restarting it) while clients talk to it.

It stops as Postfix's smtpd does under 'postfix reload', not as a before-queue proxy under
'postfix stop': new clients are refused at once, sessions that were promised nothing get
421, and a message past its final dot, which the internal host may have taken already,
gets its reply first (cut off, its client sent it again: a duplicate).  The wait is
bounded by [delivery] reply_deadline, so neither a stop nor an update's restart waits
for ever on an internal host that does not answer."""

from __future__ import annotations

import asyncio
import re
import signal
import smtplib
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from portcullis.config import REPLY_DEADLINE_LIMIT
from portcullis.smtp.server import SHUTDOWN_MARGIN
from portcullis.update.restart import RESTART_TIMEOUT
from tests.support.faultproxy import FaultProxy
from tests.support.gateway import Gateway, free_port

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_UNIT = ROOT / "roles/mailfilter/templates/portcullis-gateway.service.j2"
RECIPIENT = "bob@example.com"
# Longer than the 30 s a stopping gateway used to wait before it exited regardless.
SLOW_REPLY = 33.0


class SlowToAnswer:
    """An internal host that takes each message at once and answers its final dot only
    ``delay`` seconds later: it has the message all that time."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[bytes] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        self.arrived.set()
        await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok"


def internal_host(host: SlowToAnswer) -> Controller:
    controller = Controller(host, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


def protecting_example_com(tmp_path: Path, mail_host: str, *, reply_deadline: float,
                           settings: str = "") -> Gateway:
    gw = Gateway(tmp_path / "gw", settings=settings)
    gw.add_config(f"[delivery]\nreply_deadline = {reply_deadline}\n")
    gw.cli("domain", "add", "example.com", "--mail-host", mail_host)
    return gw.start()


def message(subject: str) -> bytes:
    return (f"From: a@remote.test\r\nTo: {RECIPIENT}\r\nSubject: {subject}\r\n\r\n"
            "hello\r\n").encode()


def reply_to_final_dot(port: int, subject: str) -> tuple[int, bytes]:
    """Send one message; the reply to its final dot (0 if the connection was lost)."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=300)
    try:
        client.ehlo("client.test")
        client.mail("a@remote.test")
        client.rcpt(RECIPIENT)
        return client.data(message(subject))
    except smtplib.SMTPServerDisconnected as exc:
        return 0, str(exc).encode()
    finally:
        client.close()


def sending_later(port: int, subject: str) -> tuple[ThreadPoolExecutor, Future]:
    pool = ThreadPoolExecutor(1)
    return pool, pool.submit(reply_to_final_dot, port, subject)


class RawSession:
    """A client driven line by line, to hold a session in a chosen state."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.replies = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        """The last line of the next reply."""
        while True:
            line = self.replies.readline()
            if not line or line[3:4] != b"-":
                return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def idle(self) -> RawSession:
        assert self.command(b"EHLO idle.test").startswith(b"250")
        return self

    def sending(self) -> RawSession:
        """In DATA, part of the message sent, its final dot not."""
        assert self.command(b"EHLO sending.test").startswith(b"250")
        assert self.command(b"MAIL FROM:<c@remote.test>").startswith(b"250")
        assert self.command(f"RCPT TO:<{RECIPIENT}>".encode()).startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")
        self.sock.sendall(b"Subject: unfinished\r\n\r\nthe first lines\r\n")
        return self

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


def test_a_stop_answers_the_message_past_its_final_dot_and_tells_the_others_421(tmp_path):
    """SIGTERM while the internal host holds a message it answers only after SLOW_REPLY:
    that client gets its 250 and the message is there once (the gateway exited after
    30 s, the client heard nothing, and its retry was a duplicate); an idle session and
    one still sending its message get 421 at once (they heard nothing for those 30 s,
    then lost the connection); a new client is refused; the gateway then exits 0."""
    host = SlowToAnswer(SLOW_REPLY)
    controller = internal_host(host)
    gw = protecting_example_com(tmp_path, f"127.0.0.1:{controller.port}",
                                reply_deadline=SLOW_REPLY + 60)
    idle, sending = RawSession(gw.port).idle(), RawSession(gw.port).sending()
    pool, answered = sending_later(gw.port, "past its final dot")
    try:
        assert host.arrived.wait(60), gw.stderr()
        gw.process.send_signal(signal.SIGTERM)
        assert idle.reply() == b"421 4.3.2 Service shutting down\r\n"
        assert sending.reply() == b"421 4.3.2 Service shutting down\r\n"
        # The listeners were closed before the 421s were said.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.port), timeout=5).close()
        code, text = answered.result(timeout=SLOW_REPLY + 60)
        assert code == 250, (code, text, gw.stderr())
        assert gw.process.wait(30) == 0, gw.stderr()
        assert [re.search(rb"Subject: (.*)\r\n", m)[1] for m in host.messages] == [
            b"past its final dot"]
    finally:
        idle.close()
        sending.close()
        pool.shutdown(wait=False, cancel_futures=True)
        gw.stop()
        controller.stop()


def test_a_stop_waits_for_a_silent_internal_host_no_longer_than_the_reply_deadline(
        tmp_path):
    """The internal host has the message and never answers: the client gets 451 at
    reply_deadline and every worker (two, under the supervisor) exits soon after, so a
    stop, or an update's restart, is bounded; an idle session is not waited for."""
    host = SlowToAnswer(0)
    controller = internal_host(host)
    proxy = FaultProxy(("127.0.0.1", controller.port))
    proxy.set_mode("hang_before_reply")
    gw = protecting_example_com(tmp_path, proxy.address, reply_deadline=3,
                                settings="workers = 2\n")
    idle = RawSession(gw.port).idle()
    pool, answered = sending_later(gw.port, "never answered")
    try:
        assert proxy.wait_hung(1, timeout=30), gw.stderr()
        stopped = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert idle.reply() == b"421 4.3.2 Service shutting down\r\n"
        code, text = answered.result(timeout=60)
        assert code == 451 and b"4.4.1" in text, (code, text)
        assert gw.process.wait(60) == 0, gw.stderr()
        assert time.monotonic() - stopped < 3 + SHUTDOWN_MARGIN + 20
    finally:
        idle.close()
        pool.shutdown(wait=False, cancel_futures=True)
        gw.stop()
        proxy.close()
        controller.stop()


def test_systemd_gives_the_gateway_the_longest_stop_it_may_take():
    """TimeoutStopSec covers the longest reply_deadline allowed plus SHUTDOWN_MARGIN (it
    was 45 s: systemd killed a gateway still answering a message)."""
    unit = GATEWAY_UNIT.read_text()
    seconds = re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.MULTILINE)
    assert seconds is not None, unit
    assert int(seconds[1]) >= REPLY_DEADLINE_LIMIT + SHUTDOWN_MARGIN
    # An update's restart waits for that stop, and the gateway's start after it.
    assert int(seconds[1]) + 120 <= RESTART_TIMEOUT
