"""The SMTP filter path end to end: real Postfix internal hosts, the real gateway."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway
from tests.support.postfix import Postfix

pytestmark = pytest.mark.gateway


def message(subject: str, sender: str = "news@sender.org", extra: str = "",
            body: str = "Hello there.\r\n") -> bytes:
    date = "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
    mid = f"Message-ID: <{uuid.uuid4()}@sender.org>\r\n"
    return (f"From: {sender}\r\nTo: someone\r\nSubject: {subject}\r\n{date}{mid}{extra}\r\n"
            f"{body}").encode()


def send(gw, sender: str, recipients: list[str], content: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=60) as client:
        return client.sendmail(sender, recipients, content)


def with_subject(postfix: Postfix, address: str, subject: str, count: int = 1,
                 timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in postfix.messages(address) if subject in str(m["Subject"])]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:8]}"


def test_valid_recipient_is_delivered_with_status_headers_and_archived(world, gateway):
    subject = unique("valid")
    assert send(gateway, "news@sender.org", ["bob@example.com"], message(subject)) == {}
    delivered = with_subject(world.internal, "bob@example.com", subject)
    assert len(delivered) == 1
    assert delivered[0]["X-Spam-Status"].startswith("No, score=")
    assert any("(Portcullis)" in r for r in delivered[0].get_all("Received"))
    [entry] = gateway.archive(subject=subject)
    assert entry["verdict"] == "accept" and entry["recipients"] == ["bob@example.com"]
    assert entry["delivery"].startswith("250")
    assert any("Accepted 127.0.0.1" in line and subject in line
               for line in gateway.decision_log())


def test_a_bounce_keeps_its_null_sender_all_the_way(world, gateway):
    subject = unique("bounce")
    assert send(gateway, "<>", ["bob@example.com"],
                message(subject, sender="MAILER-DAEMON@sender.org")) == {}
    [delivered] = with_subject(world.internal, "bob@example.com", subject)
    assert delivered["Return-Path"] == "<>"
    assert "smtp.mailfrom" not in delivered.get("Authentication-Results", "")
    assert "from=<>," in world.internal.log()
    [entry] = gateway.archive(subject=subject)
    assert entry["mail_from"] == ""


def test_unknown_recipient_is_refused_at_rcpt_by_list_validation(world, gateway):
    gateway.cli("domain", "set", "example.com", "--smtp-validation", "off")
    gateway.cli("valid", "import", "example.com", "-", input="Alice <alice@example.com>\n")
    time.sleep(1.1)   # the gateway re-reads the directory at most once a second
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("news@sender.org")
        code, text = client.rcpt("bob@example.com")      # exists on the host, not listed
        assert code == 550 and b"5.1.1" in text
        assert client.rcpt("alice@example.com")[0] == 250


def test_unknown_recipient_is_refused_by_callout_and_remembered(world, gateway):
    rejections_before = world.internal.log().count("to=<nobody@example.com>")
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("news@sender.org")
            code, text = client.rcpt("nobody@example.com")
            assert code == 550 and b"5.1.1" in text
    # The second refusal came from the negative cache: the host was asked only once.
    time.sleep(0.5)
    assert world.internal.log().count("to=<nobody@example.com>") == rejections_before + 1
    assert any("Rejected" in line and "nobody@example.com" in line
               for line in gateway.decision_log())


def test_a_refusal_about_the_sender_or_size_does_not_make_the_recipient_unknown(world,
                                                                                 gateway):
    refusing = world.internal.configured(smtpd_sender_restrictions="check_sender_access"
                                         " inline:{ blocked.test=REJECT }",
                                         message_size_limit=str(5 * 1024 * 1024))
    with refusing, smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("spoofer@blocked.test")
        code, text = client.rcpt("bob@example.com")
        assert code == 554 and b"5.7.1" in text     # the host's sender rule, at RCPT
        client.rset()
        client.mail("news@sender.org", ["SIZE=10000000"])
        code, text = client.rcpt("bob@example.com")
        assert code == 552 and b"5.3.4" in text     # the host's size limit, at MAIL
    subject = unique("still known")
    assert send(gateway, "news@sender.org", ["bob@example.com"], message(subject)) == {}
    assert with_subject(world.internal, "bob@example.com", subject)


def test_relay_attempt_is_denied(gateway):
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("spammer@sender.org")
        code, text = client.rcpt("victim@elsewhere.org")
    assert code == 554 and b"relay denied" in text


def test_sender_specified_routing_through_a_protected_domain_is_a_relay_attempt(world,
                                                                                gateway):
    routed = ["bob%victim.test@example.com", "victim.test!bob@example.com",
              '"bob@victim.test"@example.com']
    before = world.internal.log()
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("spammer@sender.org")
        for address in routed:
            code, text = client.docmd("RCPT", f"TO:<{address}>")
            assert code == 554 and b"sender-specified routing" in text, address
        assert client.rcpt("bob@example.com")[0] == 250     # the plain address still is
    time.sleep(0.5)
    assert "victim.test" not in world.internal.log()[len(before):]


def test_a_client_that_keeps_getting_refused_is_disconnected(world, gateway):
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("prober@sender.org")
        for n in range(20):   # [smtp] max_errors
            assert client.docmd("RCPT", f"TO:<user{n}@probe-{n}.test>")[0] == 554
        code, text = client.docmd("RCPT", "TO:<bob@example.com>")
        assert (code, text) == (421, b"4.7.0 Too many errors; closing the connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    time.sleep(6)     # the traffic counters are written every few seconds
    with sqlite3.connect(gateway.state_dir / "portcullis.db") as db:
        domains = {row[0] for row in db.execute("SELECT domain FROM traffic")}
    assert not any(d.startswith("probe-") for d in domains)   # not one row per relay try


def test_a_client_that_only_idles_is_disconnected_and_delivering_resets_the_count(
        world, gateway):
    junk = ["NOOP", "RSET", "VRFY bob", "HELP", "EXPN staff", "EHLO again.test"]
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()                                    # the first of 100 ([smtp])
        for n in range(60):
            assert client.docmd(junk[n % len(junk)])[0] < 500 or n % len(junk) == 4
        client.sendmail("news@sender.org", ["bob@example.com"], message(unique("idle")))
        for n in range(100):                             # the count starts again
            assert client.docmd(junk[n % len(junk)])[0] < 500 or n % len(junk) == 4
        assert client.docmd("NOOP") == (
            421, b"4.7.0 Too many commands without mail; closing the connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_auth_is_neither_offered_nor_taken_after_starttls(tmp_path):
    import base64
    import ssl

    from portcullis.tlscert import make_self_signed
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed("gw.test", cert, key)
    gw = Gateway(tmp_path / "auth", settings=f'tls_certificate = "{cert}"\n'
                                             f'tls_key = "{key}"\n').start()
    try:
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.starttls(context=ssl._create_unverified_context())
            client.ehlo("sender.test")
            assert not client.has_extn("auth")
            login = base64.b64encode(b"\0admin\0admin").decode()
            assert client.docmd("AUTH", f"PLAIN {login}") == (
                503, b"5.5.1 Error: authentication not enabled")
            assert client.docmd("AUTH", "LOGIN")[0] == 503
    finally:
        gw.stop()


def test_no_relay_by_default_not_even_from_loopback(gateway):
    assert gateway.cli("relay", "list").stdout.strip().endswith("(none)")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(gateway, "alice@example.com", ["friend@remote.test"], message("out"))


def test_recipients_for_two_internal_hosts_get_452_and_come_back_separately(world, gateway):
    subject = unique("two hosts")
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("news@sender.org")
        assert client.rcpt("bob@example.com")[0] == 250
        code, text = client.rcpt("dave@example.net")
        assert code == 452 and b"4.5.3" in text
        assert client.data(message(subject))[0] == 250
        client.mail("news@sender.org")          # the client's retry, as an MTA does it
        assert client.rcpt("dave@example.net")[0] == 250
        assert client.data(message(subject))[0] == 250
    assert len(with_subject(world.internal, "bob@example.com", subject)) == 1
    assert len(with_subject(world.internal2, "dave@example.net", subject)) == 1


def test_tagged_message_gets_the_subject_prefix_and_spam_flag(world, gateway):
    gateway.cli("settings", "set", "tag_threshold", "1", "reject_threshold", "50")
    time.sleep(1.1)
    subject = unique("maybe")
    content = f"From: x@sender.org\r\nSubject: {subject}\r\n\r\nno date, no id\r\n".encode()
    send(gateway, "x@sender.org", ["alice@example.com"], content)
    [delivered] = with_subject(world.internal, "alice@example.com", subject)
    assert delivered["Subject"] == f"[SPAM?] {subject}"
    assert delivered["X-Spam-Flag"] == "YES"
    assert gateway.archive(subject=subject)[0]["verdict"] == "tag"


def test_black_listed_sender_domain_is_rejected_and_white_listed_accepted(world, gateway):
    gateway.cli("list", "black", "add", "pushysender.com")
    gateway.cli("list", "white", "add", "onewaysender.com")
    gateway.cli("settings", "set", "tag_threshold", "0.1", "reject_threshold", "0.2")
    time.sleep(1.1)
    black = unique("black")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gateway, "offers@mail.pushysender.com", ["bob@example.com"], message(black))
    assert refused.value.smtp_code == 550
    assert b"Black list" in refused.value.smtp_error
    white = unique("white")
    # Scores above the (absurdly low) reject threshold, but the sender is white-listed.
    send(gateway, "letters@onewaysender.com", ["bob@example.com"],
         f"Subject: {white}\r\n\r\nno headers to speak of\r\n".encode())
    assert len(with_subject(world.internal, "bob@example.com", white)) == 1
    assert not with_subject(world.internal, "bob@example.com", black, timeout=1)
    [entry] = gateway.archive(subject=black)
    assert entry["verdict"] == "reject"
    # Archived with the reply it got (written with the message, not after it).
    assert entry["delivery"] == f"550 {refused.value.smtp_error.decode()}"


def test_concurrency_cap_answers_421(world, tmp_path):
    gw = Gateway(tmp_path / "capped", settings="max_sessions = 3\nmax_sessions_per_ip = 2\n")
    gw.start()
    held = []
    try:
        # Two from one address fill the per-IP cap; a third from it is turned away.
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", gw.port)))
            assert held[-1].recv(100).startswith(b"220")
        with socket.create_connection(("127.0.0.1", gw.port)) as extra:
            assert extra.recv(100).startswith(b"421 4.7.0")
        # A different source address gets the last global slot, then the cap is reached.
        held.append(socket.create_connection((gw.addresses[0], gw.port),
                                             source_address=("127.0.0.2", 0)))
        assert held[-1].recv(100).startswith(b"220")
        with socket.create_connection(("127.0.0.1", gw.port),
                                      source_address=("127.0.0.3", 0)) as extra:
            assert extra.recv(100).startswith(b"421 4.3.2")
        for sock in held:
            sock.close()
        time.sleep(0.3)
        with smtplib.SMTP("127.0.0.1", gw.port) as client:   # capacity is given back
            assert client.noop()[0] == 250
    finally:
        for sock in held:
            sock.close()
        gw.stop()


def raw_session(gw, lines: bytes) -> bytes:
    """Send bytes as they are (pipelined, ending with QUIT) and return everything the
    gateway answered until it closed the connection."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        sock.recv(1000)
        sock.sendall(lines)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def smuggle(gw, end: bytes) -> tuple[bytes, str, str]:
    first, smuggled = unique("carrier"), unique("smuggled")
    payload = (b"EHLO attacker.test\r\nMAIL FROM:<a@sender.org>\r\n"
               b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
               + message(first).rstrip(b"\r\n") + end
               + b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
               + f"Subject: {smuggled}\r\n\r\nwire the money\r\n".encode()
               + b"\r\n.\r\nQUIT\r\n")
    return raw_session(gw, payload), first, smuggled


@pytest.mark.parametrize("end", [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r.\r"])
def test_smtp_smuggling_attempt_is_refused_and_archived(world, gateway, end):
    answer, first, smuggled = smuggle(gateway, end)
    assert b"554 5.7.1" in answer and b"smuggling" in answer
    time.sleep(1)
    assert not with_subject(world.internal, "alice@example.com", smuggled, timeout=0)
    assert not with_subject(world.internal, "bob@example.com", first, timeout=0)
    assert gateway.archive(subject=first)[0]["verdict"] == "reject"


@pytest.mark.parametrize("end", [b"\r\n.\n", b"\r\n.\r"])
def test_smuggling_with_a_stuffed_dot_stays_inside_the_first_message(world, gateway, end):
    # The dot starts a CRLF line, so SMTP transparency removes it before the gateway sees
    # the content; what remains can only ever be one message.
    answer, first, smuggled = smuggle(gateway, end)
    assert b"250 2.0.0" in answer
    [carrier] = with_subject(world.internal, "bob@example.com", first)
    assert smuggled in carrier.get_payload()
    assert not with_subject(world.internal, "alice@example.com", smuggled, timeout=1)


def test_bare_newlines_without_a_dot_line_are_normalised_and_delivered(world, gateway):
    subject = unique("bare lf")
    answer = raw_session(gateway, (
        b"EHLO sloppy.test\r\nMAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\n"
        b"DATA\r\n" + message(subject, body="one\ntwo\rthree\r\n") + b".\r\nQUIT\r\n"))
    assert b"250 2.0.0 Ok: queued" in answer
    [delivered] = with_subject(world.internal, "bob@example.com", subject)
    assert delivered.get_payload().replace("\r\n", "\n") == "one\ntwo\nthree\n"


def test_pipelined_commands_get_their_replies_in_order(gateway):
    answer = raw_session(gateway, b"EHLO client.test\r\nMAIL FROM:<a@sender.org>\r\n"
                                  b"RCPT TO:<bob@example.com>\r\nRCPT TO:<x@elsewhere.org>\r\n"
                                  b"RSET\r\nNOOP\r\nQUIT\r\n")
    codes = [line[:3] for line in answer.split(b"\r\n") if line[:3].isdigit()
             and line[3:4] == b" "]
    assert codes == [b"250", b"250", b"250", b"554", b"250", b"250", b"221"]


@pytest.mark.parametrize("path", [b"<", b"a@[ ", b"<a@[", b"<@[ "])
def test_paths_that_break_the_email_parser_are_syntax_errors(gateway, path):
    """Each of these crashed the email package's address parser (IndexError,
    UnboundLocalError, AttributeError): the client must hear a permanent "malformed
    address", not 451 (retried for ever)."""
    answer = raw_session(gateway, b"EHLO client.test\r\nMAIL FROM:" + path + b"\r\n"
                                  b"MAIL FROM:<a@sender.org>\r\nRCPT TO:" + path + b"\r\n"
                                  b"QUIT\r\n")
    codes = [line[:3] for line in answer.split(b"\r\n") if line[:3].isdigit()
             and line[3:4] == b" "]
    assert codes == [b"250", b"553", b"250", b"553", b"221"], answer


def test_data_unstuffs_leading_dots_and_ends_only_at_a_lone_dot_line(world, gateway):
    subject = unique("dots")
    answer = raw_session(gateway, b"EHLO c.test\r\nMAIL FROM:<a@sender.org>\r\n"
                                  b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
                                  + message(subject, body="..one\r\n. two\r\n...\r\n")
                                  + b".\r\nMAIL FROM:<a@sender.org>\r\nQUIT\r\n")
    codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert codes[-4:] == [b"354", b"250", b"250", b"221"], answer
    [delivered] = with_subject(world.internal, "bob@example.com", subject)
    assert delivered.get_payload().replace("\r\n", "\n") == ".one\n two\n..\n"


def test_a_dot_line_that_ends_an_over_long_line_does_not_end_the_data(world, gateway):
    """The line is refused (500) once the real end has come, and a lone dot that
    arrives as the tail of the long line is part of it, not the end of the message."""
    subject = unique("long line")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.recv(1000)
        sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@sender.org>\r\n"
                     b"RCPT TO:<bob@example.com>\r\nDATA\r\n" + message(subject)
                     + b"x" * 20000 + b".")
        time.sleep(0.5)                     # the gateway reads up to the dot
        sock.sendall(b"\r\nafter\r\n.\r\nNOOP\r\nQUIT\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert codes[-4:] == [b"354", b"500", b"250", b"221"], answer
    assert not with_subject(world.internal, "bob@example.com", subject, timeout=1)


def test_a_message_over_the_size_limit_is_read_to_its_end_then_refused(world, tmp_path):
    gw = Gateway(tmp_path / "small", settings="max_message_size = 100000\n")
    gw.cli("domain", "add", "example.com", "--mail-host", world.internal.address)
    gw.start()
    try:
        subject = unique("too big")
        answer = raw_session(gw, b"EHLO c.test\r\nMAIL FROM:<a@sender.org>\r\n"
                                 b"RCPT TO:<bob@example.com>\r\nDATA\r\n" + message(subject)
                                 + (b"z" * 998 + b"\r\n") * 200
                                 + b".\r\nNOOP\r\nQUIT\r\n")
        codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
        assert codes[-4:] == [b"354", b"552", b"250", b"221"], answer
        assert b"552 5.3.4" in answer
        assert not with_subject(world.internal, "bob@example.com", subject, timeout=1)
    finally:
        gw.stop()


def test_the_size_limit_counts_the_message_not_the_dots_added_by_stuffing(world, tmp_path):
    """RFC 1870's size, which SIZE is announced and declared in, leaves out the dots
    transparency doubles (as Postfix counts it): a message just at the limit, declared
    so at MAIL, is not refused at its end because some of its lines start with '.'."""
    limit = 4000
    gw = Gateway(tmp_path / "small", settings=f"max_message_size = {limit}\n")
    gw.cli("domain", "add", "example.com", "--mail-host", world.internal.address)
    gw.start()
    try:
        subject = unique("dotted at the limit")
        content = message(subject, body=".dotted line\r\n" * 20)
        content += b"x" * (limit - len(content) - 2) + b"\r\n"
        assert len(content) == limit
        # smtplib declares SIZE=len(content) and doubles each leading dot on the wire.
        assert send(gw, "news@sender.org", ["bob@example.com"], content) == {}
        assert len(with_subject(world.internal, "bob@example.com", subject)) == 1
    finally:
        gw.stop()


def test_oversized_message_is_refused_at_mail_from(gateway):
    answer = raw_session(gateway, b"EHLO client.test\r\n"
                                  b"MAIL FROM:<a@sender.org> SIZE=999999999\r\nQUIT\r\n")
    assert b"552" in answer


def test_archive_holds_every_message_and_release_delivers_a_rejected_one(world, gateway):
    gateway.cli("list", "black", "add", "pushysender.com")
    time.sleep(1.1)
    accepted, rejected = unique("kept"), unique("released")
    send(gateway, "a@sender.org", ["alice@example.com"], message(accepted))
    with pytest.raises(smtplib.SMTPDataError):
        send(gateway, "promo@pushysender.com", ["alice@example.com"],
             message(rejected, sender="promo@pushysender.com"))
    verdicts = {e["subject"]: e["verdict"] for e in gateway.archive()}
    assert verdicts[accepted] == "accept" and verdicts[rejected] == "reject"
    [entry] = gateway.archive(subject=rejected)
    shown = gateway.cli("archive", "show", entry["id"]).stdout
    assert "BLACKLIST" in shown and "pushysender.com" in shown
    assert not with_subject(world.internal, "alice@example.com", rejected, timeout=0)
    out = gateway.cli("archive", "release", entry["id"]).stdout
    assert "delivered to alice@example.com" in out
    [released] = with_subject(world.internal, "alice@example.com", rejected)
    assert released["X-Portcullis-Released"].startswith(entry["id"])
    assert gateway.archive(subject=rejected)[0]["released"] is not None
    # A second release (a double click, a second administrator) sends no second copy...
    again = gateway.cli("archive", "release", entry["id"], check=False)
    assert again.returncode != 0 and "already released to alice@example.com" in again.stderr
    assert len(with_subject(world.internal, "alice@example.com", rejected, count=2,
                            timeout=2)) == 1
    # ... unless asked to, nor does releasing a message the internal host took on arrival.
    out = gateway.cli("archive", "release", entry["id"], "--again").stdout
    assert "delivered to alice@example.com" in out
    assert len(with_subject(world.internal, "alice@example.com", rejected, count=2)) == 2
    [kept] = gateway.archive(subject=accepted)
    refused = gateway.cli("archive", "release", kept["id"], check=False)
    assert refused.returncode != 0 and "delivered when it arrived" in refused.stderr
    assert len(with_subject(world.internal, "alice@example.com", accepted, count=2,
                            timeout=2)) == 1


def test_internal_host_refusing_at_end_of_data_is_tempfailed_and_archived(world, gateway):
    with world.internal2.configured(smtpd_end_of_data_restrictions="defer"):
        subject = unique("deferred")
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(gateway, "a@sender.org", ["dave@example.net"], message(subject))
        assert deferred.value.smtp_code == 450 or deferred.value.smtp_code // 100 == 4
        [entry] = gateway.archive(subject=subject)
        assert entry["delivery"].startswith("4")
        assert any("TempFailed by internal host" in line for line in gateway.decision_log())


def sending_mta(world, gateway, **settings: str) -> Postfix:
    """The world's Internet MTA (Postfix), relaying to this gateway."""
    relayhost = f"[{world.sender_root_ip}]:{gateway.port}"
    if world.sending_mta is None:
        world.sending_mta = Postfix.sending_mta(
            world.internal.root.parent / f"sending-{uuid.uuid4().hex[:6]}", world.sender_ns,
            world.sender_ip, relayhost=relayhost,
            clients=f"{world.sender_root_ip}/32").start()
    world.sending_mta.configure(relayhost=relayhost, **settings)
    return world.sending_mta


def test_internal_host_down_gives_451_and_the_mail_arrives_after_the_retry(world, gateway):
    sending_mta(world, gateway)
    subject = unique("retried")
    world.internal.stop()
    try:
        with smtplib.SMTP(world.sender_ip, 25) as client:       # hand it to the Internet MTA
            client.sendmail("friend@sender.org", ["bob@example.com"], message(subject))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "451 4.4.1" not in world.sending_mta.log():
            time.sleep(0.2)
        assert "451 4.4.1" in world.sending_mta.log()         # told to come back later
        assert world.sending_mta.queue_size() == 1            # and it kept the message
    finally:
        world.internal.start()
    world.sending_mta.flush()
    assert len(with_subject(world.internal, "bob@example.com", subject, timeout=60)) == 1


def test_outbound_mail_from_a_relay_reaches_the_internet_and_records_the_pair(world, gateway):
    gateway.cli("relay", "add", f"{world.lan_ip}/32", "--note", "Exchange")
    time.sleep(1.1)
    subject = unique("outbound")
    script = (
        "import smtplib,sys\n"
        f"c = smtplib.SMTP('{world.lan_root_ip}', {gateway.port})\n"
        f"c.sendmail('Alice@example.com', ['friend@remote.test'], sys.stdin.buffer.read())\n"
        "c.quit()\n")
    world.lan.run("python3", "-c", script, input=message(subject, sender="alice@example.com"))
    assert len(with_subject(world.internet, "friend@remote.test", subject, timeout=30)) == 1, \
        world.outbound.log()[-3000:] + gateway.stderr()[-2000:]
    db = sqlite3.connect(gateway.state_dir / "portcullis.db")
    pairs = db.execute("SELECT sender, recipient, messages FROM outbound_pairs").fetchall()
    assert pairs == [("alice@example.com", "friend@remote.test", 1)]
    assert gateway.archive(subject=subject)[0]["direction"] == "outbound"


def test_tls_self_signed_makes_the_configured_certificate(tmp_path):
    gw = Gateway(tmp_path / "mk", settings=f'tls_certificate = "{tmp_path}/tls/cert.pem"\n'
                                           f'tls_key = "{tmp_path}/tls/key.pem"\n')
    assert "certificate for gw.test" in gw.cli("tls", "self-signed").stdout
    assert (tmp_path / "tls/key.pem").stat().st_mode & 0o777 == 0o600
    first = (tmp_path / "tls/cert.pem").read_bytes()
    assert "kept" in gw.cli("tls", "self-signed").stdout               # never overwritten
    assert (tmp_path / "tls/cert.pem").read_bytes() == first


def test_starttls_is_offered_and_mail_over_tls_is_delivered(world, tmp_path):
    import ssl

    from portcullis.tlscert import make_self_signed
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed("gw.test", cert, key)
    gw = Gateway(tmp_path / "tls", settings=f'tls_certificate = "{cert}"\n'
                                            f'tls_key = "{key}"\n')
    gw.cli("domain", "add", "example.com", "--mail-host", f"{world.lan_ip}:25")
    gw.start()
    try:
        subject = unique("over tls")
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.ehlo("sender.test")
            assert client.has_extn("starttls")
            client.starttls(context=ssl._create_unverified_context())
            client.ehlo("sender.test")
            assert not client.has_extn("starttls")          # offered once only
            client.sendmail("a@sender.org", ["bob@example.com"], message(subject))
        [delivered] = with_subject(world.internal, "bob@example.com", subject)
        assert any("(Portcullis) with ESMTPS" in " ".join(r.split())
                   for r in delivered.get_all("Received"))
        with smtplib.SMTP("127.0.0.1", gw.port) as client:   # plain SMTP still works
            client.sendmail("a@sender.org", ["bob@example.com"], message(unique("plain")))
    finally:
        gw.stop()


def test_an_unusable_certificate_stops_the_start_with_a_clear_error(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate")
    gw = Gateway(tmp_path / "badtls", settings=f'tls_certificate = "{tmp_path}/junk.pem"\n'
                                               f'tls_key = "{tmp_path}/junk.pem"\n')
    result = gw.cli("serve", check=False)
    assert result.returncode == 1
    assert "cannot use TLS certificate" in result.stderr and "Traceback" not in result.stderr


def test_a_thread_folds_the_store_log_back_while_mail_flows(world, gateway):
    """The event loop's commits only append to the store's log (no checkpoint, no fsync on
    the loop); the worker's checkpoint thread copies them into the database file.  A few
    messages are far below SQLite's own threshold (1000 pages), so without that thread
    the database file would not change at all."""
    database = gateway.state_dir / "portcullis.db"

    def stamp() -> tuple[int, int]:
        info = database.stat()
        return info.st_mtime_ns, info.st_size

    before, deadline = stamp(), time.monotonic() + 3
    while time.monotonic() < deadline:       # let the start-up writes settle first
        time.sleep(1.2)
        now = stamp()
        if now == before:
            break
        before = now
    subject = unique("checkpoint")
    for _ in range(3):
        send(gateway, "news@sender.org", ["bob@example.com"], message(subject))
    assert len(with_subject(world.internal, "bob@example.com", subject, count=3)) == 3
    deadline = time.monotonic() + 5
    while stamp() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stamp() != before


@contextlib.contextmanager
def bucher_example(world, gateway, **host_settings: str) -> Iterator[None]:
    """bücher.example, protected by the gateway, its mail for internal2, which knows the
    domain (as most hosts do) in A-labels only: dave@ and jöran@ there are
    dave@example.net."""
    with world.internal2.configured(virtual_alias_domains="xn--bcher-kva.example",
                                    virtual_alias_maps="inline:{ dave@xn--bcher-kva.example"
                                                       "=dave@example.net, "
                                                       "jöran@xn--bcher-kva.example"
                                                       "=dave@example.net }",
                                    **host_settings):
        gateway.cli("domain", "add", "bücher.example", "--mail-host", f"{world.lan2_ip}:25")
        time.sleep(1.1)
        yield


def test_what_needs_smtputf8_is_refused_for_an_internal_host_without_it(world, gateway):
    """RFC 6531: UTF-8 must not reach a server that did not offer SMTPUTF8.  A UTF-8 local
    part is refused at RCPT (553 5.6.7), an IDN domain goes in A-labels, and a message
    whose header is UTF-8 under SMTPUTF8 is refused after DATA (554 5.6.9); one with an
    ASCII header is delivered without the parameter."""
    with bucher_example(world, gateway, smtputf8_enable="no"):
        utf8_header, ascii_header = unique("Grüße"), unique("plain")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            assert client.mail("jörg@sender.org", ["SMTPUTF8"])[0] == 250
            code, text = client.rcpt("dave@example.net")
            assert (code, text[:5]) == (553, b"5.6.7"), text
            client.rset()
            client.mail("a@sender.org", ["SMTPUTF8"])
            assert client.rcpt("jürgen@example.net")[0] == 553
            assert client.rcpt("dave@example.net")[0] == 250
            code, text = client.data(message(utf8_header))
            assert (code, text[:5]) == (554, b"5.6.9"), text
            client.mail("a@sender.org", ["SMTPUTF8"])
            assert client.rcpt("dave@bücher.example")[0] == 250
            assert client.data(message(ascii_header))[0] == 250
        [delivered] = with_subject(world.internal2, "dave@example.net", ascii_header)
        assert delivered["X-Original-To"] == "dave@xn--bcher-kva.example"
        assert not with_subject(world.internal2, "dave@example.net", utf8_header.split()[1],
                                timeout=1)
        log = world.internal2.log()
        assert "jörg" not in log and "jürgen" not in log


def test_an_internal_host_closing_with_421_is_a_451_for_the_client_which_stays(world,
                                                                                gateway):
    """Postfix's access map action "421" replies and disconnects.  The gateway's own
    connection to the client stays open, so the client hears 451, not 421 (which says the
    connection is closing); what the closed connection had accepted is deferred too."""
    with world.internal.configured(smtpd_recipient_restrictions="check_recipient_access inline:{"
                                   " {alice@example.com=421 4.3.2 closing now} },"
                                   " reject_unlisted_recipient"):
        subject = unique("after 421")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("a@sender.org")
            assert client.rcpt("bob@example.com")[0] == 250
            code, text = client.rcpt("alice@example.com")
            assert code == 451 and b"closing now" in text, (code, text)
            assert client.data(message(subject))[0] == 451
            client.mail("a@sender.org")               # the client's retry, same connection
            assert client.rcpt("bob@example.com")[0] == 250
            assert client.data(message(subject))[0] == 250
        assert len(with_subject(world.internal, "bob@example.com", subject)) == 1


def test_utf8_addresses_and_header_reach_an_internal_host_offering_smtputf8(world, gateway):
    subject = unique("Grüße")
    content = message(subject, sender="jörg@sender.org")
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        assert client.sendmail("jörg@sender.org", ["bob@example.com"], content,
                               mail_options=["SMTPUTF8"]) == {}
    # compat32 shows a raw UTF-8 subject as unknown-8bit: look for its ASCII half.
    [delivered] = with_subject(world.internal, "bob@example.com", subject.split()[1])
    raw = delivered.as_bytes()
    assert b"Return-Path: <j\xc3\xb6rg@sender.org>" in raw
    ours = next(r for r in delivered.get_all("Received") if "(Portcullis)" in r)
    assert "with UTF8SMTP id" in " ".join(ours.split())                  # RFC 6531 3.7.3


def test_postmaster_is_left_to_the_internal_host_when_the_valid_list_lacks_it(world,
                                                                               gateway):
    """RFC 5321 4.5.1: postmaster must be taken for every domain served; a valid-address
    list imported from a directory seldom holds it, so the internal host decides."""
    gateway.cli("domain", "set", "example.com", "--smtp-validation", "off")
    gateway.cli("valid", "import", "example.com", "-", input="alice@example.com\n")
    with world.internal.configured(virtual_alias_maps="inline:{ postmaster@example.com"
                                                      "=bob@example.com }"):
        time.sleep(1.1)
        subject = unique("to postmaster")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("<>")
            assert client.rcpt("bob@example.com")[0] == 550        # not listed
            code, text = client.rcpt("PostMaster@example.com")
            assert code == 250, text
            assert client.data(message(subject))[0] == 250
        assert len(with_subject(world.internal, "bob@example.com", subject)) == 1


def test_a_client_gone_while_the_internal_host_answers_is_still_recorded(world, gateway):
    """The client's MTA gives up waiting after its dot (its own timeout, a crash); the
    internal host takes the message all the same.  The gateway finishes that exchange
    instead of cutting it off, and the archive and the log say it was delivered."""
    with world.internal2.configured(smtpd_end_of_data_restrictions="sleep 4"):
        subject = unique("client gone")
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
            sock.recv(1000)
            sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@sender.org>\r\n"
                         b"RCPT TO:<dave@example.net>\r\nDATA\r\n")
            time.sleep(0.5)
            sock.sendall(message(subject) + b".\r\n")
            time.sleep(1.5)                      # the checks are done, the host is busy
        assert len(with_subject(world.internal2, "dave@example.net", subject)) == 1
        deadline = time.monotonic() + 10
        while not (entry := gateway.archive(subject=subject)[0])["delivery"] \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert entry["delivery"].startswith("250"), entry
        assert any("Accepted" in line and subject in line for line in gateway.decision_log())


def test_an_idn_recipient_goes_in_a_labels_even_to_an_internal_host_with_smtputf8(world,
                                                                                   gateway):
    """The protected domain is bücher.example, configured on the internal host (as on
    most) as xn--bcher-kva.example; Postfix refuses the U-label form as a relay attempt
    even with SMTPUTF8, so the gateway sends the domain in A-labels, the same domain."""
    with bucher_example(world, gateway):
        subject = unique("idn")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("a@sender.org", ["SMTPUTF8"])
            code, text = client.rcpt("dave@bücher.example")
            assert code == 250, text
            assert client.data(message(subject))[0] == 250
        [delivered] = with_subject(world.internal2, "dave@example.net", subject)
        assert delivered["X-Original-To"] == "dave@xn--bcher-kva.example"


def test_an_idn_recipient_in_u_labels_is_found_in_the_valid_address_list(world, gateway):
    """Lists hold domains in A-labels; the client may write the U-label form."""
    with bucher_example(world, gateway):
        gateway.cli("domain", "set", "bücher.example", "--smtp-validation", "off")
        gateway.cli("valid", "import", "bücher.example", "-",
                    input="dave@bücher.example\nJöran <jöran@bücher.example>\n")
        time.sleep(1.1)
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("a@sender.org", ["SMTPUTF8"])
            assert client.rcpt("eve@bücher.example")[0] == 550           # not listed
            code, text = client.rcpt("Dave@Bücher.example")
            assert code == 250, text
            # A local part beyond ASCII (RFC 6531) could not be listed at all.
            code, text = client.rcpt("Jöran@bücher.example")
            assert code == 250, text


def test_postmaster_without_a_domain_goes_to_the_postmaster_of_the_gateways_domain(world,
                                                                                   gateway):
    """RFC 5321 4.5.1: RCPT TO:<postmaster> with no domain MUST be accepted.  It goes to
    postmaster@ the protected domain the gateway's hostname (gw.test) lies in, as Postfix
    appends $myorigin; while there is none, the client is asked to retry (451 4.3.5)."""
    with smtplib.SMTP("127.0.0.1", gateway.port) as client:
        client.ehlo()
        client.mail("<>")
        code, text = client.rcpt("Postmaster")
        assert (code, text[:5]) == (451, b"4.3.5"), text
    gateway.cli("domain", "add", "gw.test", "--mail-host", f"{world.lan_ip}:25")
    with world.internal.configured(virtual_alias_domains="gw.test",
                                   virtual_alias_maps="inline:{ postmaster@gw.test"
                                                      "=bob@example.com }"):
        time.sleep(1.1)
        subject = unique("bare postmaster")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("<>")
            code, text = client.rcpt("<Postmaster>")
            assert code == 250, text
            assert client.data(message(subject))[0] == 250
        [delivered] = with_subject(world.internal, "bob@example.com", subject)
        assert delivered["X-Original-To"] == "postmaster@gw.test"
        [entry] = gateway.archive(subject=subject)
        assert entry["recipients"] == ["postmaster@gw.test"]


def test_8bit_mail_for_an_internal_host_without_8bitmime_is_converted_or_refused(world,
                                                                                 gateway):
    """RFC 6152 3: an internal host that does not offer 8BITMIME (Postfix told to hide it)
    never gets 8-bit data.  An 8-bit text body goes as quoted-printable and reads the same;
    an 8-bit header has no 7-bit form, so that message is refused (554 5.6.3), not sent."""
    with world.internal2.configured(smtpd_discard_ehlo_keywords="8bitmime"):
        converted, refused = unique("converted"), unique("refused")
        text = "Grüße aus Köln, 3 € = gut.\r\n"
        body = message(converted, extra="MIME-Version: 1.0\r\nContent-Type: text/plain;"
                       " charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", body=text)
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            assert client.has_extn("8bitmime")
            assert client.sendmail("a@sender.org", ["dave@example.net"], body,
                                   mail_options=["BODY=8BITMIME"]) == {}
            client.mail("a@sender.org", ["BODY=8BITMIME"])
            client.rcpt("dave@example.net")
            code, reply = client.data(message(f"{refused} Grüße"))
            assert (code, reply[:5]) == (554, b"5.6.3"), reply
            assert b"8BITMIME" in reply
        [delivered] = with_subject(world.internal2, "dave@example.net", converted)
        assert delivered.as_bytes().isascii()
        assert delivered["Content-Transfer-Encoding"] == "quoted-printable"
        assert delivered.get_payload(decode=True).decode() == text.replace("\r\n", "\n")
        assert not with_subject(world.internal2, "dave@example.net", refused, timeout=1)
        [entry] = gateway.archive(subject=refused)
        assert entry["delivery"].startswith("554 5.6.3")


def test_an_idn_recipient_is_named_in_a_labels_in_the_received_header_too(world, gateway):
    """An ASCII message to dave@bücher.example goes to an internal host offering neither
    SMTPUTF8 nor 8BITMIME with the domain in A-labels; the gateway's own Received field
    names the recipient the same way, or it alone would put UTF-8 into the header (a
    message the host must not be given, refused as an 8-bit header field)."""
    with bucher_example(world, gateway, smtputf8_enable="no",
                        smtpd_discard_ehlo_keywords="8bitmime, smtputf8"):
        subject = unique("idn trace")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            client.mail("a@sender.org", ["SMTPUTF8"])
            assert client.rcpt("dave@bücher.example")[0] == 250
            code, text = client.data(message(subject))
            assert code == 250, text
        [delivered] = with_subject(world.internal2, "dave@example.net", subject)
        assert delivered.as_bytes().isascii()
        assert any("for <dave@xn--bcher-kva.example>" in r
                   for r in delivered.get_all("Received"))


def test_a_release_sends_the_mail_parameters_the_message_needs(world, gateway):
    """A released message goes out as it would have on arrival: a UTF-8 sender and
    header with SMTPUTF8 and an 8-bit body with BODY=8BITMIME to a host offering them,
    refused with the reason by a host without SMTPUTF8, converted for one without
    8BITMIME."""
    gateway.cli("list", "black", "add", "pushysender.com")
    time.sleep(1.1)
    try:
        utf8, legacy = unique("Grüße utf8"), unique("legacy")
        eight_bit = ("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n")
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.ehlo()
            for rcpt in ("bob@example.com", "dave@example.net"):
                client.mail("jörg@pushysender.com", ["SMTPUTF8", "BODY=8BITMIME"])
                assert client.rcpt(rcpt)[0] == 250
                code, _ = client.data(message(utf8, sender="jörg@pushysender.com",
                                              extra=eight_bit, body="Köln\r\n"))
                assert code == 550
            # Since the message came, dave's host lost SMTPUTF8 and 8BITMIME.
            world.internal2.configure(smtputf8_enable="no",
                                      smtpd_discard_ehlo_keywords="8bitmime")
            client.mail("promo@pushysender.com", ["BODY=8BITMIME"])
            assert client.rcpt("dave@example.net")[0] == 250
            assert client.data(message(legacy, extra=eight_bit, body="Köln\r\n"))[0] == 550
        to_bob, to_dave = sorted(gateway.archive(subject=utf8.split()[1]),
                                 key=lambda e: e["recipients"] != ["bob@example.com"])
        assert gateway.cli("archive", "release", to_bob["id"]).returncode == 0
        [released] = with_subject(world.internal, "bob@example.com", utf8.split()[1])
        raw = released.as_bytes()
        assert b"Return-Path: <j\xc3\xb6rg@pushysender.com>" in raw
        assert "UTF8SMTP" in " ".join(released["Received"].split())      # internal's own
        assert "Köln".encode() in raw                                    # 8-bit, unchanged
        refused = gateway.cli("archive", "release", to_dave["id"], check=False)
        assert refused.returncode != 0 and "5.6.7" in refused.stderr + refused.stdout
        assert "SMTPUTF8" in refused.stderr + refused.stdout
        [entry] = gateway.archive(subject=legacy)
        assert gateway.cli("archive", "release", entry["id"]).returncode == 0
        [converted] = with_subject(world.internal2, "dave@example.net", legacy)
        assert converted.as_bytes().isascii()
        assert converted.get_payload(decode=True) == "Köln\n".encode()
    finally:
        world.internal2.configure(smtputf8_enable="yes", smtpd_discard_ehlo_keywords="")



def test_the_idle_timeout_counts_from_the_last_command(world, tmp_path):
    """Each command, and each read of a message, gives the client the whole idle timeout
    again (a message may take far longer), and after a message the idle timeout of a
    command is back; silence for that long closes the connection with 421 4.4.2
    (aiosmtpd's rule, kept by the gateway's one-timer version, with Postfix's reply)."""
    gw = Gateway(tmp_path / "gw", listen=[world.lan_root_ip], settings="timeout = 1.5\n")
    gw.cli("domain", "add", "example.com", "--mail-host", f"{world.lan_ip}:25")
    gw.start()
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as conn:
            reader = conn.makefile("rb")
            assert reader.readline().startswith(b"220")
            conn.sendall(b"HELO client.sender.org\r\n")
            assert reader.readline().startswith(b"250")
            started = time.monotonic()
            for _ in range(4):                  # 4 s of talk, each pause under 1.5 s
                time.sleep(1.0)
                conn.sendall(b"NOOP\r\n")
                assert reader.readline().startswith(b"250")
            assert time.monotonic() - started > 3.5
            conn.sendall(b"MAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            for expected in (b"250", b"250", b"354"):
                assert reader.readline().startswith(expected)
            text = message(unique("idle"))
            for start in range(0, 120, 40):     # each read of a message: the idle timeout
                conn.sendall(text[start:start + 40])
                time.sleep(1.0)
            conn.sendall(text[120:] + b".\r\n")
            assert reader.readline().startswith(b"250")
            silent = time.monotonic()
            # Told why, as Postfix tells it, then closed by the gateway, not by us.
            assert reader.readline().startswith(b"421 4.4.2 ")
            assert reader.readline() == b""
            assert 1.0 < time.monotonic() - silent < 5.0
    finally:
        gw.stop()
