"""PIPELINING (RFC 2920): command groups against the real gateway and a real Postfix."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

import pytest

from portcullis.tlscert import make_self_signed
from tests.integration.test_gateway import (
    message,
    raw_session,
    sending_mta,
    unique,
    with_subject,
)
from tests.support.gateway import Gateway

pytestmark = pytest.mark.gateway

REFUSED = b"".join(f"RCPT TO:<u{n}@probe-{n}.test>\r\n".encode() for n in range(20))


@pytest.mark.parametrize(("before", "after", "expected"), [
    # [smtp] max_errors (20) refused recipients: the next RCPT gets 421.
    (b"MAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\n" + REFUSED,
     b"RCPT TO:<alice@example.com>\r\n", [b"250", b"250"] + [b"554"] * 20 + [b"421"]),
    # [smtp] max_junk_commands (100, EHLO the first): the next one gets 421.
    (b"NOOP\r\n" * 99, b"NOOP\r\nMAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\n",
     [b"250"] * 99 + [b"421"]),
])
def test_nothing_a_group_sends_after_a_421_is_acted_on(world, gateway, before, after,
                                                        expected):
    """The group goes on after the command that got 421 (a client that pipelines its
    message without waiting for 354): the connection is closing, so the message must not
    be delivered, nor anything else answered."""
    subject = unique("after 421")
    group = (b"EHLO client.test\r\n" + before + after + b"DATA\r\n" + message(subject)
             + b".\r\nQUIT\r\n")
    answer = raw_session(gateway, group)
    codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert not with_subject(world.internal, "bob@example.com", subject, timeout=3)
    assert codes == [b"250", *expected], answer


def test_pipelining_is_offered_and_a_postfix_sender_sends_its_commands_in_one_group(
        world, gateway):
    """Postfix, as the Internet's MTAs, groups MAIL, every RCPT and DATA when PIPELINING
    is offered; each recipient still gets its own answer (one is unknown here)."""
    mta = sending_mta(world, gateway, debug_peer_list=world.sender_root_ip)
    try:
        subject = unique("pipelined")
        sender = f"friend-{subject.split()[1]}@sender.org"       # its MAIL FROM in the log
        with smtplib.SMTP(world.sender_ip, 25) as client:
            client.sendmail(sender, ["bob@example.com", "nobody@example.com",
                                     "alice@example.com"], message(subject))
        for rcpt in ("bob@example.com", "alice@example.com"):
            assert len(with_subject(world.internal, rcpt, subject, timeout=30)) == 1
        deadline = time.monotonic() + 10
        while "nobody@example.com" not in mta.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Postfix's peer debug log: "> ip[ip]:port: COMMAND" as sent, "< ...: reply" as
        # read, in the order it did each.
        ip = world.sender_root_ip
        peer = f"{ip}[{ip}]:{gateway.port}: "
        talk = [(line.split(peer, 1)[0][-2], line.split(peer, 1)[1])
                for line in mta.log().splitlines() if peer in line]
        start = next(i for i, (_, text) in enumerate(talk)
                     if text.startswith(f"MAIL FROM:<{sender}>"))
        group, replies = talk[start:start + 5], talk[start + 5:start + 10]
        assert [d for d, _ in group] == [">"] * 5, talk          # sent before any reply
        assert [t.split(":")[0] for _, t in group] == ["MAIL FROM", "RCPT TO", "RCPT TO",
                                                       "RCPT TO", "DATA"]
        answers = {t.split("<")[1].rstrip(">"): r[:3] for (_, t), (_, r)
                   in zip(group[1:4], replies[1:4], strict=True)}
        assert answers == {"alice@example.com": "250", "bob@example.com": "250",
                           "nobody@example.com": "550"}
        assert [r[:3] for _, r in replies[::4]] == ["250", "354"]
    finally:
        mta.configure(debug_peer_list="")


def test_commands_sent_with_starttls_are_dropped_not_run_inside_tls(tmp_path):
    """RFC 3207 5 / RFC 2920 3.1: STARTTLS ends a group; a command injected after it in the
    same packet (CVE-2011-0411) must not run as if it came over TLS."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed("gw.test", cert, key)
    gw = Gateway(tmp_path / "tls", settings=f'tls_certificate = "{cert}"\n'
                                            f'tls_key = "{key}"\n')
    gw.start()
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
            plain = sock.makefile("rb")
            plain.readline()
            sock.sendall(b"EHLO c.test\r\n")
            while not plain.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@sender.org>\r\n")
            assert plain.readline().startswith(b"220 ")
            with ssl._create_unverified_context().wrap_socket(sock) as tls:
                secure = tls.makefile("rb")
                tls.sendall(b"EHLO c.test\r\n")
                assert secure.readline().startswith(b"250-"), "the injected MAIL ran"
                while not secure.readline().startswith(b"250 "):
                    pass
                tls.sendall(b"MAIL FROM:<a@sender.org>\r\n")
                assert secure.readline().startswith(b"250 ")
    finally:
        gw.stop()
