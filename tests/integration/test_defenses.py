"""The defenses on the real mail path: a local DNS zone (dnsmasq) answers DNSBL, SPF, DKIM,
DMARC and URI blocklist queries on loopback; the gateway runs as a process; a real
Postfix is the protected internal host, and another real Postfix is the sending MTA that
must retry a greylisted message.  Clients on 127.0.0.0/8 (and ::1) let each test speak
from an address of its own.
"""

from __future__ import annotations

import contextlib
import datetime
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import dkim
import pytest

from tests.support.attachments import pdf_document, qr_image
from tests.support.dirs import daemon_dir
from tests.support.dns import Dnsmasq, silent_resolver
from tests.support.gateway import Gateway
from tests.support.mailauth import dkim_key
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix, swaks

pytestmark = [pytest.mark.defenses, pytest.mark.usefixtures("root_required")]

DOMAIN = "corp.test"
USERS = [f"{name}@{DOMAIN}" for name in
         ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")]
LISTED_V4, LISTED_V6, LISTED_WHITE = "127.0.0.2", "::1", "127.0.0.12"
HARVEST_THRESHOLD = 4
SETTLE = 1.5   # the gateway re-reads changed settings within a second


@dataclass
class Env:
    gateway: Gateway
    internal: Postfix
    zone: Dnsmasq
    sender_ns: Netns
    sender_ip: str
    sender_root: str
    dkim_key: bytes


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with network() as net, contextlib.ExitStack() as stack:
        internal_ns, internal_ip, _ = net.host("internal")
        sender_ns, sender_ip, sender_root = net.host("sender")
        internal = Postfix.mailbox_server(daemon_dir("internal"), internal_ns, internal_ip,
                                          [DOMAIN], USERS).start()
        stack.callback(internal.stop)

        private_key, public_key = dkim_key(2048)
        zone = Dnsmasq(daemon_dir("dns"), ["zen.spamhaus.org", "dbl.spamhaus.org", "spf.test",
                                           "partner.test", "signed.test", "elsewhere.test",
                                           DOMAIN])
        (zone.listing("zen.spamhaus.org", LISTED_V4)
             .listing("zen.spamhaus.org", LISTED_V6, "127.0.0.4")
             .listing("zen.spamhaus.org", LISTED_WHITE)
             .address("evil-shop.test.dbl.spamhaus.org", "127.0.1.2")
             # SPF: the MX host, an include and a fail-all.
             .txt("spf.test", "v=spf1 mx include:_spf.partner.test -all")
             .mx("spf.test", "mail.spf.test")
             .address("mail.spf.test", "127.0.0.6")
             .txt("_spf.partner.test", "v=spf1 ip4:127.0.0.10/32 ~all")
             # DKIM and DMARC: signed.test signs, sends only via its own DKIM (SPF -all).
             .txt("signed.test", "v=spf1 -all")
             .txt("sel1._domainkey.signed.test", f"v=DKIM1; k=rsa; p={public_key}")
             .txt("_dmarc.signed.test", "v=DMARC1; p=reject; adkim=r; aspf=r"))
        zone.start()
        stack.callback(zone.stop)

        gateway = Gateway(daemon_dir("gateway"), listen=["[::1]", sender_root],
                          dns_port=zone.port, dns_timeout=2.0, defenses={
                              "dnsbl_zones": ["zen.spamhaus.org name=spamhaus.org "
                                              "127.0.0.2-127.0.0.11=reject"],
                              "uribl_zones": ["dbl.spamhaus.org 127.0.1.2-127.0.1.99=4"],
                              "sender_authentication": True,
                              "harvest_threshold": HARVEST_THRESHOLD,
                              "greylist_delay": 6,
                          })
        gateway.cli("domain", "add", DOMAIN, "--mail-host", f"{internal_ip}:25")
        gateway.cli("list", "white", "add", LISTED_WHITE)
        gateway.start()
        stack.callback(gateway.stop)
        stack.callback(lambda: gateway.process and gateway.process.poll() is not None
                       and print("gateway exited:\n" + gateway.stderr()[-4000:]))
        yield Env(gateway, internal, zone, sender_ns, sender_ip, sender_root, private_key)


# -- helpers -------------------------------------------------------------------------------

@contextlib.contextmanager
def smtp_from(gateway: Gateway, client: str, helo: str = "client.example.net"
              ) -> Iterator[smtplib.SMTP]:
    """An SMTP session to the gateway from a loopback address of the test's choosing."""
    host = "::1" if ":" in client else "127.0.0.1"
    session = smtplib.SMTP(host, gateway.port, local_hostname=helo,
                           source_address=(client, 0), timeout=60)
    try:
        session.ehlo(helo)
        yield session
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            session.quit()


def message(sender: str, recipient: str, subject: str, body: str = "Hello.\n",
            from_header: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_header or sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.net")
    msg.set_content(body)
    return msg


def send(gateway: Gateway, client: str, sender: str, recipient: str, data: bytes,
         helo: str = "client.example.net") -> tuple[int, str]:
    """One transaction; returns the reply to the final dot (or to the refused RCPT)."""
    with smtp_from(gateway, client, helo) as session:
        session.mail(sender)
        code, text = session.rcpt(recipient)
        if code >= 400:
            return code, text.decode()
        code, text = session.data(data)
        return code, text.decode()


def archived(gateway: Gateway, subject: str) -> dict:
    found = gateway.archive(subject=subject)
    assert len(found) == 1, found
    return found[0]


def symbols(entry: dict) -> dict[str, dict]:
    return {s["name"]: s for s in entry["symbols"]}


def wait_subject(internal: Postfix, user: str, subject: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in internal.messages(user) if m["Subject"] == subject]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def set_settings(gateway: Gateway, **values: object) -> None:
    pairs = [str(x) for key, value in values.items() for x in (key, value)]
    gateway.cli("settings", "set", *pairs)
    time.sleep(SETTLE)


# -- DNSBL ---------------------------------------------------------------------------------

def test_listed_client_is_refused_at_rcpt_with_rbl_block(env: Env) -> None:
    with smtp_from(env.gateway, LISTED_V4) as session:
        session.mail("someone@elsewhere.test")
        code, text = session.rcpt(USERS[0])
    assert code == 550
    assert text.decode() == f"5.7.1 RBL Block: spamhaus.org {LISTED_V4}"
    assert any(f"Rejected RBL Block: spamhaus.org {LISTED_V4} {LISTED_V4}" in line
               for line in env.gateway.decision_log())
    assert env.internal.messages(USERS[0]) == []


def test_listed_ipv6_client_is_refused_by_its_nibble_name(env: Env) -> None:
    with smtp_from(env.gateway, LISTED_V6) as session:
        session.mail("someone@elsewhere.test")
        code, text = session.rcpt(USERS[0])
    assert (code, text.decode()) == (550, f"5.7.1 RBL Block: spamhaus.org {LISTED_V6}")
    nibbles = ".".join(reversed("0" * 31 + "1"))
    assert f"{nibbles}.zen.spamhaus.org" in env.zone.queries()


def test_unlisted_client_is_accepted_and_delivered(env: Env) -> None:
    msg = message("news@elsewhere.test", USERS[1], "unlisted client")
    code, _ = send(env.gateway, "127.0.0.3", "news@elsewhere.test", USERS[1], msg.as_bytes())
    assert code == 250
    delivered = env.internal.wait_for(USERS[1])
    assert [m["Subject"] for m in delivered] == ["unlisted client"]
    assert "3.0.0.127.zen.spamhaus.org" in env.zone.queries()
    assert not [name for name in symbols(archived(env.gateway, "unlisted client"))
                if name.startswith("DNSBL")]


def test_white_listed_client_is_accepted_though_listed(env: Env) -> None:
    msg = message("partner@elsewhere.test", USERS[2], "white listed but on a DNSBL")
    code, _ = send(env.gateway, LISTED_WHITE, "partner@elsewhere.test", USERS[2],
                   msg.as_bytes())
    assert code == 250
    entry = archived(env.gateway, "white listed but on a DNSBL")
    assert entry["verdict"] == "accept"
    assert {"WHITELIST", "DNSBL_SPAMHAUS_ORG"} <= set(symbols(entry))


def test_silent_resolver_fails_open_within_the_timeout(env: Env) -> None:
    with silent_resolver() as port:
        gateway = Gateway(daemon_dir("gateway-silent"), dns_port=port, dns_timeout=1.0,
                          defenses={"dnsbl_zones": ["zen.spamhaus.org name=spamhaus.org"],
                                    "sender_authentication": True})
        gateway.cli("domain", "add", DOMAIN, "--mail-host",
                    f"{env.internal.address}:25")
        gateway.start()
        try:
            msg = message("someone@spf.test", USERS[3], "resolver silent")
            # From the address the real zone lists: unanswered, it must not be refused.
            code, _ = send(gateway, LISTED_V4, "someone@spf.test", USERS[3], msg.as_bytes())
        finally:
            gateway.stop()
    assert code == 250
    assert [m["Subject"] for m in env.internal.wait_for(USERS[3])] == ["resolver silent"]
    found = symbols(archived(gateway, "resolver silent"))
    assert "no answer within 1 s" in found["DNSBL_UNAVAILABLE"]["reason"]
    assert found["SPF_TEMPERROR"]["score"] == 0


# -- harvest detection -----------------------------------------------------------------------

def test_harvesting_client_is_blocked_and_others_are_not(env: Env) -> None:
    harvester, neighbour = "127.0.0.4", "127.0.0.5"
    with smtp_from(env.gateway, harvester) as session:
        session.mail("guess@elsewhere.test")
        replies = [session.rcpt(f"guess{n}@{DOMAIN}")[0] for n in range(HARVEST_THRESHOLD)]
        assert replies == [550] * HARVEST_THRESHOLD
        # The rest of this session is refused, valid recipients included...
        code, text = session.rcpt(USERS[4])
    assert code == 451 and "address harvesting" in text.decode()
    # ... and so is the next connection.
    with smtp_from(env.gateway, harvester) as session:
        session.mail("guess@elsewhere.test")
        assert session.rcpt(USERS[4])[0] == 451
    msg = message("colleague@elsewhere.test", USERS[4], "neighbour unaffected")
    code, _ = send(env.gateway, neighbour, "colleague@elsewhere.test", USERS[4],
                   msg.as_bytes())
    assert code == 250
    assert [m["Subject"] for m in env.internal.wait_for(USERS[4])] == ["neighbour unaffected"]
    assert any("TempFailed Too many invalid recipients from 127.0.0.4" in line
               for line in env.gateway.decision_log())
    # The administrator sees the block and lifts it; the client is served again.
    blocked = {c["client"]: c for c in env.gateway.cli_json("harvest", "show")}
    assert blocked[harvester]["blocked"] and blocked[harvester]["invalid"] == HARVEST_THRESHOLD
    assert neighbour not in blocked
    env.gateway.cli("harvest", "unblock", harvester)
    with smtp_from(env.gateway, harvester) as session:
        session.mail("guess@elsewhere.test")
        assert session.rcpt(USERS[4])[0] == 250


def test_dnsbl_check_command_looks_an_address_up(env: Env) -> None:
    listed = env.gateway.cli_json("dnsbl", "check", LISTED_V4)
    assert [s["reason"] for s in listed["symbols"]] == [f"RBL Block: spamhaus.org {LISTED_V4}"]
    assert env.gateway.cli_json("dnsbl", "check", "127.0.0.3")["symbols"] == []


# -- greylisting ----------------------------------------------------------------------------

def _greylist_lines(gateway: Gateway, client: str) -> list[str]:
    return [line for line in gateway.decision_log() if f" {client} " in line]


def test_greylisting_tempfails_a_new_sender_until_it_retries_after_the_delay(env: Env) -> None:
    sending = Postfix.sending_mta(daemon_dir("sending"), env.sender_ns, env.sender_ip,
                                  f"[{env.sender_root}]:{env.gateway.port}",
                                  f"{env.sender_ip}/32").start()
    set_settings(env.gateway, greylisting="on")
    try:
        status, transcript = swaks(env.sender_ns, "--server", env.sender_ip, "--from",
                                   "first.contact@elsewhere.test", "--to", USERS[5],
                                   "--header", "Subject: greylisted first contact",
                                   "--helo", "sender.test")
        assert status == 0, transcript
        # First attempt: 451 Greylisted.
        deadline = time.monotonic() + 30
        while not _greylist_lines(env.gateway, env.sender_ip) and time.monotonic() < deadline:
            time.sleep(0.2)
        first = _greylist_lines(env.gateway, env.sender_ip)
        assert first and "TempFailed Greylisted" in first[0], first
        # An immediate retry, well before the delay, is refused again.
        sending.flush()
        while len(_greylist_lines(env.gateway, env.sender_ip)) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert env.internal.messages(USERS[5]) == []
        # The sending MTA keeps retrying; after the delay its retry passes.
        delivered = env.internal.wait_for(USERS[5], timeout=60)
    finally:
        set_settings(env.gateway, greylisting="off")
        sending.stop()
    assert [m["Subject"] for m in delivered] == ["greylisted first contact"]
    lines = _greylist_lines(env.gateway, env.sender_ip)
    early = [line for line in lines if "TempFailed Greylisted" in line]
    assert len(early) >= 2 and "Accepted" in lines[-1], lines
    passed = symbols(archived(env.gateway, "greylisted first contact"))["GREYLIST_PASSED"]
    waited = float(passed["reason"].split("retried after ")[1].split(" s")[0])
    assert waited >= 6, passed      # greylist_delay


def test_uncertain_message_is_tempfailed_until_resent(env: Env) -> None:
    # From a domain whose DMARC says reject, sent by a stranger: scores in the tag zone.
    client, sender = "127.0.0.9", "bulk@elsewhere.test"
    data = message(sender, USERS[6], "uncertain first try",
                   from_header="Signed <ceo@signed.test>").as_bytes()
    set_settings(env.gateway, greylist_tagged="on", greylist_delay=2)
    try:
        first = send(env.gateway, client, sender, USERS[6], data)
        time.sleep(2.5)
        second = send(env.gateway, client, sender, USERS[6], data)
    finally:
        set_settings(env.gateway, greylist_tagged="off", greylist_delay=6)
    assert first[0] == 451 and "Greylisted" in first[1], first
    assert second[0] == 250, second
    delivered = env.internal.wait_for(USERS[6])
    assert [m["Subject"] for m in delivered] == ["[SPAM?] uncertain first try"]


# -- SPF, DKIM, DMARC ----------------------------------------------------------------------

@pytest.mark.parametrize(("client", "expected"), [
    ("127.0.0.6", "SPF_PASS"),        # the domain's MX host
    ("127.0.0.10", "SPF_PASS"),       # through include:_spf.partner.test
    ("127.0.0.7", "SPF_FAIL"),        # -all
])
def test_spf_result_from_the_local_zone(env: Env, client: str, expected: str) -> None:
    subject = f"spf from {client}"
    msg = message("billing@spf.test", USERS[7], subject)
    code, _ = send(env.gateway, client, "billing@spf.test", USERS[7], msg.as_bytes())
    assert code == 250
    found = symbols(archived(env.gateway, subject))
    assert expected in found, found
    assert found[expected]["score"] == (-0.2 if expected == "SPF_PASS" else 3.5)
    delivered = wait_subject(env.internal, USERS[7], subject)
    assert expected in delivered[0]["X-Spam-Status"]


def _signed(env: Env, subject: str) -> bytes:
    msg = message("news@signed.test", USERS[8], subject, body="Signed news.\n")
    raw = msg.as_bytes().replace(b"\n", b"\r\n")
    signature = dkim.sign(raw, b"sel1", b"signed.test", env.dkim_key,
                          include_headers=[b"from", b"to", b"subject", b"date",
                                           b"message-id"])
    return signature + raw


def test_dkim_signed_message_is_verified_and_passes_dmarc(env: Env) -> None:
    # A sender's own "results" in our name would let it vouch for itself: removed.
    forged = b"Authentication-Results: gw.test; spf=pass smtp.mailfrom=news@signed.test\r\n"
    data = forged + _signed(env, "dkim signed")
    code, _ = send(env.gateway, "127.0.0.8", "news@signed.test", USERS[8], data)
    assert code == 250
    found = symbols(archived(env.gateway, "dkim signed"))
    assert "signed.test (s=sel1)" in found["DKIM_VALID"]["reason"]
    assert "SPF_FAIL" in found          # signed.test publishes -all ...
    assert "DMARC_PASS" in found        # ... but its aligned DKIM signature carries DMARC
    delivered = wait_subject(env.internal, USERS[8], "dkim signed")
    results = delivered[0].get_all("Authentication-Results")
    assert len(results) == 1, results
    assert " ".join(results[0].split()) == (
        'gw.test; spf=fail reason="signed.test: -all" smtp.mailfrom=news@signed.test; '
        "dkim=pass header.d=signed.test header.s=sel1; "
        "dmarc=pass (p=reject) header.from=signed.test")


def test_altered_signed_message_fails_dkim_and_dmarc(env: Env) -> None:
    data = _signed(env, "dkim altered").replace(b"Signed news.", b"Altered news.")
    code, _ = send(env.gateway, "127.0.0.8", "news@signed.test", USERS[8], data)
    assert code == 250
    found = symbols(archived(env.gateway, "dkim altered"))
    assert "DKIM_INVALID" in found and "DMARC_FAIL_REJECT" in found, found


# -- identity, URIs ------------------------------------------------------------------------

def test_own_domain_forged_from_outside_and_helo_as_us_score(env: Env) -> None:
    msg = message(f"ceo@{DOMAIN}", USERS[0], "urgent wire transfer")
    code, _ = send(env.gateway, "127.0.0.11", f"ceo@{DOMAIN}", USERS[0], msg.as_bytes(),
                   helo="gw.test")
    assert code == 250
    entry = archived(env.gateway, "urgent wire transfer")
    found = symbols(entry)
    assert {"FORGED_OWN_DOMAIN", "HELO_IS_OURS"} <= set(found), found
    assert entry["verdict"] == "tag"    # heuristics score; they never reject alone


def test_link_to_a_listed_domain_scores(env: Env) -> None:
    msg = message("deals@elsewhere.test", USERS[1], "cheap watches",
                  body="Buy now at http://www.evil-shop.test/offer or https://fine.test/\n")
    code, _ = send(env.gateway, "127.0.0.13", "deals@elsewhere.test", USERS[1],
                   msg.as_bytes())
    assert code == 250
    found = symbols(archived(env.gateway, "cheap watches"))
    assert found["URIBL_DBL_SPAMHAUS_ORG"]["score"] == 4
    assert "evil-shop.test" in found["URIBL_DBL_SPAMHAUS_ORG"]["reason"]
    assert "fine.test" not in found["URIBL_DBL_SPAMHAUS_ORG"]["reason"]


@pytest.mark.parametrize("where", ["links", "login_form"])
def test_the_link_in_an_attached_pdf_is_looked_up_too(env: Env, where: str) -> None:
    # A link annotation, or where the PDF's login form sends what is typed.
    subject = f"your statement ({where})"
    msg = message("billing@elsewhere.test", USERS[1], subject,
                  body="Please find your statement attached.\n")
    target = "https://www.evil-shop.test/login"
    document = pdf_document(links=(target,)) if where == "links" else \
        pdf_document(login_form=target)
    msg.add_attachment(document, maintype="application", subtype="pdf",
                       filename="Statement.pdf")
    code, _ = send(env.gateway, "127.0.0.13", "billing@elsewhere.test", USERS[1],
                   msg.as_bytes())
    assert code == 250
    found = symbols(archived(env.gateway, subject))
    assert "evil-shop.test" in found["URIBL_DBL_SPAMHAUS_ORG"]["reason"]
    if where == "login_form":
        assert "a PDF form asking for a password (sent to www.evil-shop.test)" in \
            found["ATTACHMENT_ACTIVE_CONTENT"]["reason"]


@pytest.mark.parametrize("where", ["inline", "pdf"])
def test_the_link_in_a_qr_code_picture_is_looked_up_too(env: Env, where: str) -> None:
    # "Scan to keep your mailbox": the link is only in the picture, shown inline or on
    # the page of an attached PDF.
    subject = f"mailbox quota ({where})"
    msg = message("it@elsewhere.test", USERS[1], subject,
                  body="Your mailbox is full. Scan the code below to keep your mail.\n")
    code_picture = qr_image("https://login.evil-shop.test/o365")
    if where == "inline":
        msg.add_alternative('<p>Scan the code to keep your mail:</p><img src="cid:code">',
                            subtype="html")
        msg.get_payload()[-1].add_related(code_picture, maintype="image", subtype="png",
                                          cid="<code>")
    else:
        msg.add_attachment(pdf_document(pictures=(("jpeg", code_picture),)),
                           maintype="application", subtype="pdf", filename="Quota.pdf")
    code, text = send(env.gateway, "127.0.0.13", "it@elsewhere.test", USERS[1],
                      msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    assert code == 250, text
    found = symbols(archived(env.gateway, subject))
    assert "evil-shop.test" in found["URIBL_DBL_SPAMHAUS_ORG"]["reason"]


def test_greylisted_recipients_are_no_errors_that_close_the_connection(env: Env) -> None:
    set_settings(env.gateway, greylisting="on")
    try:
        with smtp_from(env.gateway, "127.0.0.41") as session:
            session.mail("newsletter@elsewhere.test")
            codes = [session.rcpt(f"list{n}@{DOMAIN}")[0] for n in range(25)]
            codes += [session.rcpt(USERS[6])[0]]
    finally:
        set_settings(env.gateway, greylisting="off")
    assert set(codes) == {451}, codes       # greylisted, every one: no 421 (max_deferrals)


def test_maintenance_expires_greylist_and_harvest_entries(env: Env) -> None:
    lines = env.gateway.cli("maintenance").stdout.splitlines()
    assert any(line.startswith("greylist: ") for line in lines), lines
    assert any(line.startswith("harvest detection: ") for line in lines), lines
