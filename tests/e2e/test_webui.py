"""The web administration end to end, in headless Debian Chromium, against a real gateway
and a real Postfix internal mail host in a network namespace.

An administrator sets the first password with the setup code, protects a domain, pastes
its valid addresses, black-lists a sender, sees that sender's message rejected, finds it
in the archive and releases it to the internal host; the traffic charts show it.  A
domain administrator cannot see or change another domain, a form posted without its
CSRF token is refused, and a subject holding ``<script>`` is shown as text.

Then the panels other parts feed: MTAs earn a place on Top Spammers / Top Legitimate
through the gateway; the update agent installs a signed ClamAV bundle and refuses others,
and Server admin shows the database files and every attempt; a harvester and a greylisted
newcomer appear on Defenses, where they are unblocked and forgotten; a domain
administrator's reports count only their own domain.  Screenshots of the main pages go to
``tests/artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.support import process
from tests.support.clamd import Clamd
from tests.support.dirs import daemon_dir
from tests.support.gateway import Gateway
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix, swaks
from tests.support.web import ARTIFACTS, WebUI, chromium

from portcullis.update import transfer

pytestmark = pytest.mark.webui

PASSWORD = "correct horse battery staple"
XSS_SUBJECT = "<script>alert('pwned')</script> Cheap watches"
# Loopback sources for MTAs that earn a place in the reports, each in a /24 of its own so
# one's record never colours the other's (reputation also scores the network).
SPAMMER, LEGITIMATE = "127.0.50.50", "127.0.51.51"
# Where update pushes come from: inside and outside the default vendor netblocks.
VENDOR_HOST, OUTSIDER_HOST = "207.219.44.10", "198.51.100.66"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Appliance:
    gateway: Gateway
    web: WebUI
    internal: Postfix
    internal_ip: str
    outside: Netns
    gateway_ip: str          # the gateway's address as the outside host sees it
    clamd: Clamd

    def send(self, sender: str, recipient: str, subject: str) -> tuple[int, str]:
        return swaks(self.outside, "--server", f"{self.gateway_ip}:{self.gateway.port}",
                     "--from", sender, "--to", recipient, "--helo", "mta.outside.test",
                     "--header", f"Subject: {subject}", "--body", "Hello from outside.")


@contextlib.contextmanager
def smtp_from(appliance: Appliance, client: str) -> Iterator[smtplib.SMTP]:
    """An SMTP connection to the gateway from a loopback address of the test's choosing;
    QUIT at the end, which is when the gateway's reputation engine records it."""
    session = smtplib.SMTP("127.0.0.1", appliance.gateway.port, timeout=60,
                           local_hostname=f"mta-{client.replace('.', '-')}.test",
                           source_address=(client, 0))
    try:
        session.ehlo()
        yield session
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            session.quit()


def clean_message(sender: str, recipient: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
    msg.set_content("Minutes of Tuesday's meeting are attached to the shared folder.\n")
    return msg


def in_parallel(count: int, work) -> list:
    """``work(n)`` for n in range(count) on a few threads: each call is one connection."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(work, range(count)))


@pytest.fixture(scope="module")
def appliance(root_required, tmp_path_factory):
    with network() as net, contextlib.ExitStack() as stack:
        inner_ns, inner_ip, _ = net.host("inner")
        outside_ns, _outside_ip, outside_root_ip = net.host("outside")
        internal = Postfix.mailbox_server(
            daemon_dir("internal-mx"), inner_ns, inner_ip,
            domains=["example.com", "other.org", "north.example"],
            users=["alice@example.com", "bob@example.com", "carol@other.org",
                   "nina@north.example"]).start()
        stack.callback(internal.stop)
        clamd = Clamd(daemon_dir("webui-clamd")).start()
        stack.callback(clamd.stop)
        gateway = Gateway(tmp_path_factory.mktemp("webui-e2e"), listen=[outside_root_ip],
                          clamav=clamd.gateway_config())
        stack.callback(gateway.stop)
        gateway.start()
        web = WebUI(gateway).start()
        stack.callback(web.stop)
        yield Appliance(gateway, web, internal, inner_ip, outside_ns, outside_root_ip, clamd)


class UpdateAgent:
    """The appliance's update agent as sshd and systemd run it: root's installer behind
    ``systemd-socket-activate`` (as the ``portcullis-update-install.socket`` unit does),
    and ``portcullis-update-agent receive`` taking a pushed bundle on stdin with
    ``SSH_CLIENT`` saying where the push came from (sshd's forced command).  The vendor's
    side is ``portcullis-vendor`` (keys, trust root, build, sign)."""

    def __init__(self, root: Path, appliance: Appliance) -> None:
        self.root = root
        self.keys = root / "keys"
        self.keys.mkdir()
        self.vendor("keygen", "--name", "k1", "--dir", str(self.keys))
        self.vendor("trust-root", "--key", str(self.keys / "k1.pub"), "--out",
                    str(root / "trust.json"))
        self.socket = root / "run" / "install.sock"
        self.socket.parent.mkdir()
        self.config = root / "agent.toml"
        self.config.write_text(
            "[agent]\n"
            f'portcullis_config = "{appliance.gateway.config_path}"\n'
            f'trust_root = "{root / "trust.json"}"\n'
            f'state_dir = "{root / "state"}"\nspool_dir = "{root / "spool"}"\n'
            f'installer_socket = "{self.socket}"\n'
            f'clamav_database_dir = "{appliance.clamd.db_dir}"\n'
            f'clamd_socket = "{appliance.clamd.socket}"\n'
            "services = []\n")
        self.log = root / "installer.log"
        self.installer = subprocess.Popen(
            ["systemd-socket-activate", "--inetd", "--accept", "--listen", str(self.socket),
             "-E", f"PATH={VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
             str(VENV_BIN / "portcullis-update-agent"), "--config", str(self.config),
             "install"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"))
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert time.monotonic() < deadline and self.installer.poll() is None, \
                self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        process.stop(self.installer)

    @staticmethod
    def vendor(*args: str) -> None:
        subprocess.run([str(VENV_BIN / "portcullis-vendor"), *args], check=True,
                       capture_output=True, timeout=60)

    def signature_bundle(self, version: str, files: dict[str, bytes]) -> Path:
        """A ClamAV signature bundle, built and signed by the vendor's key k1."""
        payload = self.root / f"payload-{version}"
        payload.mkdir()
        for name, content in files.items():
            (payload / name).write_bytes(content)
        bundle = self.root / f"clamav-{version}.bundle"
        self.vendor("build", "--target", "clamav", "--version", version, "--out", str(bundle),
                    *[str(payload / name) for name in files])
        self.vendor("sign", "--key", str(self.keys / "k1.key"), str(bundle))
        return bundle

    def push(self, bundle: Path, client: str) -> dict:
        """Hand ``bundle`` to the agent as a push from ``client`` would; its result line."""
        data = bundle.read_bytes()
        result = subprocess.run(
            [str(VENV_BIN / "portcullis-update-agent"), "receive"],
            input=transfer.header(len(data)) + data, capture_output=True, timeout=120,
            env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "SSH_CLIENT": f"{client} 40022 22",
                 "PORTCULLIS_UPDATE_CONFIG": str(self.config)}, check=False)
        found = transfer.parse_result(result.stdout.decode())
        assert found is not None, (result.stdout, result.stderr, self.log.read_text())
        return found


@pytest.fixture(scope="module")
def update_agent(appliance):
    agent = UpdateAgent(daemon_dir("webui-update-agent"), appliance)
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def new_page(browser, appliance):
    context = browser.new_context(base_url=appliance.web.base,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    return page


def log_in(page, username, password=PASSWORD):
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")


def flash(page) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webui-{name}.png"), full_page=True)


def test_first_start_sets_the_super_administrator_password_with_the_setup_code(
        appliance, browser):
    assert appliance.gateway.cli_json("user", "list") == []
    page = new_page(browser, appliance)
    page.goto("/")
    assert page.url.endswith("/setup")
    shot(page, "setup")
    page.fill("input[name=code]", "WRONG-CODE-0000")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    assert "setup code is wrong" in page.inner_text("main")
    page.fill("input[name=code]", appliance.web.setup_code())
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    assert page.locator("h1").inner_text() == "Dashboard"
    page.click("header button:has-text('Log out')")
    page.wait_for_url("**/login")
    log_in(page, "admin", "a wrong password!")
    assert "Wrong user name or password" in page.inner_text("main")
    shot(page, "login")
    log_in(page, "admin")
    page.wait_for_url("**/")
    page.context.close()


def test_admin_blocks_a_sender_and_releases_its_rejected_message(appliance, browser):
    page = new_page(browser, appliance)
    log_in(page, "admin")

    # Protect a domain whose mail goes to the internal Postfix.
    page.click("nav.menu >> text=Domains")
    page.fill("#add-domain input[name=name]", "example.com")
    page.fill("#add-domain input[name=mail_host]", f"{appliance.internal_ip}:25")
    page.click("#add-domain button[type=submit]")
    page.wait_for_url("**/domains/example.com")
    assert "Domain example.com added." in flash(page)

    # Paste valid addresses: a bad line stores nothing and is named ...
    page.fill("#paste-addresses textarea", "Alice <alice@example.com>\nno address here\n")
    page.click("#paste-addresses button[type=submit]")
    assert "line 2" in page.inner_text("#import-errors")
    assert page.locator("#address-list").count() == 0
    # ... a clean paste (names and brackets stripped, comments skipped) is stored.
    page.fill("#paste-addresses textarea",
              '"Alice Example" <alice@example.com>\n# staff\nBob Builder <bob@example.com>\n')
    page.click("#paste-addresses button[type=submit]")
    assert "2 address(es) added" in flash(page)
    assert page.locator("#address-list td").all_inner_texts()[::2] == [
        "alice@example.com", "bob@example.com"]
    shot(page, "domain")

    # Black-list a sender's domain.
    page.click("nav.menu >> text=Black/White lists")
    page.fill("#black-list input[name=entry]", "junk.example")
    page.click("#black-list button[type=submit]")
    assert "junk.example added to the black list." in flash(page)
    shot(page, "lists")

    # Mail from it is rejected at the gateway; other mail is delivered.
    status, transcript = appliance.send("promo@junk.example", "alice@example.com",
                                        XSS_SUBJECT)
    assert status != 0 and "550 5.7.1 Black list" in transcript, transcript
    status, transcript = appliance.send("friend@partner.example", "bob@example.com",
                                        "Quarterly report")
    assert status == 0, transcript
    assert appliance.internal.wait_for("bob@example.com")
    assert appliance.internal.messages("alice@example.com") == []

    # Find the rejected message in the archive.
    page.click("nav.menu >> text=Archive")
    page.fill("#archive-search input[name=sender]", "junk.example")
    page.select_option("#archive-search select[name=verdict]", "reject")
    page.click("#archive-search button[type=submit]")
    rows = page.locator("#archive-results tbody tr")
    assert rows.count() == 1
    assert rows.locator("td.subject").inner_text() == XSS_SUBJECT
    shot(page, "archive")
    rows.locator("td.subject a").click()
    page.wait_for_selector("#message-subject")
    # The hostile subject is text, not markup: no script element, no alert.
    assert page.inner_text("#message-subject") == XSS_SUBJECT
    assert page.locator("main script").count() == 0 and page.dialogs == []
    assert "BLACKLIST" in page.inner_text("#symbols")
    assert "Black list: sender promo@junk.example" in page.inner_text("#symbols")
    assert page.locator("#parts tbody tr").count() >= 1
    shot(page, "message")

    # Release it: it reaches the internal host's maildir.
    page.click("#release button")
    assert "Released: delivered to alice@example.com" in flash(page)
    delivered = appliance.internal.wait_for("alice@example.com")
    assert delivered and delivered[0]["Subject"] == XSS_SUBJECT
    assert delivered[0]["X-Portcullis-Released"].split()[2] == "admin;"
    assert "released by admin" in page.inner_text("#message-delivery")

    # The dashboard's charts show the traffic (the gateway writes counters every 5 s).
    deadline = time.monotonic() + 30
    while True:
        page.goto("/")
        totals = {v: int(page.inner_text(f"#total-{v}")) for v in ("accept", "reject")}
        if (totals["accept"] and totals["reject"]) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert totals["accept"] >= 1 and totals["reject"] >= 1
    assert page.locator("#traffic svg.chart rect.bar-reject").count() >= 1
    assert page.locator("#traffic svg.chart rect.bar-accept").count() >= 1
    assert page.locator("#traffic svg.chart").is_visible()
    assert page.inner_text("#sessions")     # the gateway's live figures are there
    run_dir = appliance.gateway.state_dir / "run"
    assert "not running" not in page.inner_text("#sessions"), (
        [(p.name, p.read_text()) for p in run_dir.glob("*")], time.time(),
        appliance.gateway.stderr())
    shot(page, "dashboard")
    for name, path in [("dashboard-7d", "/?range=7d"), ("reports", "/reports"),
                       ("log", "/log"), ("settings", "/settings"), ("server", "/server"),
                       ("users", "/users"), ("relays", "/relays"), ("domains", "/domains")]:
        page.goto(path)
        assert page.locator("h1").count() == 1 and "Error" not in page.locator("h1").inner_text()
        shot(page, name)
    page.goto("/log")
    assert "Rejected Black list" in page.inner_text("#log-lines")
    page.context.close()


def test_form_post_without_csrf_token_is_refused(appliance, browser):
    page = new_page(browser, appliance)
    log_in(page, "admin")
    page.goto("/lists")
    # A real form post from the browser, with the token field taken out.
    page.evaluate("""() => {
        const form = document.querySelector('#black-list form');
        form.querySelector('[name=csrf_token]').remove();
        form.querySelector('[name=entry]').value = 'no-token.example';
        form.submit();
    }""")
    page.wait_for_load_state()
    assert "did not come from this site" in page.inner_text("#error-text")
    entries = [e["entry"] for e in appliance.gateway.cli_json("list", "black", "show")]
    assert "no-token.example" not in entries
    shot(page, "csrf-refused")
    page.context.close()


def test_domain_administrator_cannot_see_or_change_another_domain(appliance, browser):
    gw = appliance.gateway
    gw.cli("domain", "add", "other.org", "--mail-host", f"{appliance.internal_ip}:25")
    _status, transcript = appliance.send("promo@junk.example", "carol@other.org",
                                        "For carol only")
    assert "550 5.7.1" in transcript, transcript

    # The super administrator creates the domain administrator in the Users page.
    admin = new_page(browser, appliance)
    log_in(admin, "admin")
    admin.goto("/users")
    admin.fill("#add-user input[name=name]", "dora")
    admin.select_option("#add-user select[name=role]", "domain")
    admin.select_option("#add-user select[name=domains]", ["example.com"])
    admin.fill("#add-user input[name=password]", PASSWORD)
    admin.fill("#add-user input[name=password2]", PASSWORD)
    admin.click("#add-user button[type=submit]")
    assert "User dora added." in flash(admin)
    admin.context.close()

    page = new_page(browser, appliance)
    log_in(page, "dora")
    page.wait_for_url("**/")
    menu = page.locator("nav.menu a").all_inner_texts()
    assert "Settings" not in menu and "Black/White lists" not in menu
    shot(page, "domain-admin-dashboard")
    page.goto("/domains")
    assert page.locator("#domain-list tbody tr td:first-child").all_inner_texts() == [
        "example.com"]

    # Direct URLs of another domain, its message and the global pages are refused.
    carol = gw.archive(recipient="carol@other.org")[0]["id"]
    for path in ("/domains/other.org", f"/archive/{carol}", "/lists", "/settings", "/users"):
        response = page.goto(path)
        assert response.status == 403, path
    shot(page, "domain-admin-refused")
    page.goto("/archive")
    assert "For carol only" not in page.inner_text("main")

    # A form post aimed at another domain, with dora's valid token, is refused too.
    page.goto("/domains/example.com")
    with page.expect_navigation():
        page.evaluate("""() => {
            const form = document.querySelector('#domain-settings');
            form.action = '/domains/other.org';
            form.querySelector('[name=mail_host]').value = '203.0.113.66';
            form.submit();
        }""")
    assert "You do not manage this domain." in page.inner_text("#error-text")
    # ... and so is Release of another domain's message, posted from dora's own message.
    alices = gw.archive(recipient="alice@example.com")[0]["id"]
    page.goto(f"/archive/{alices}")
    with page.expect_navigation():
        page.evaluate(f"""() => {{
            const form = document.querySelector('#release');
            form.action = '/archive/{carol}/release';
            form.submit();
        }}""")
    assert "not for a domain you manage" in page.inner_text("#error-text")
    domains = {d["name"]: d for d in gw.cli_json("domain", "list")}
    assert domains["other.org"]["mail_host"] == f"{appliance.internal_ip}:25"
    assert appliance.internal.messages("carol@other.org") == []
    page.context.close()


def test_reports_name_the_mtas_that_earned_top_spammer_and_top_legitimate(appliance, browser):
    """Top Spammers: 50 or more connections, 95% or more unwanted; Top Legitimate: over
    50 connections, 95% or more accepted.  A connection counts once, when it closes, so
    each MTA opens a connection per attempt (several at a time)."""

    def guess(n: int) -> list[int]:
        # A dictionary attack: recipients that do not exist (invalid: unwanted).
        with smtp_from(appliance, SPAMMER) as session:
            session.mail(f"offers{n}@bulk.example")
            return [session.rcpt(f"{name}@example.com")[0] for name in ("info", "sales")]

    def deliver(n: int) -> dict:
        # Clean mail to a real mailbox, accepted below the Tag threshold.
        with smtp_from(appliance, LEGITIMATE) as session:
            return session.send_message(clean_message(
                "billing@supplier.example", "bob@example.com", f"Invoice {n:03d}"))

    assert in_parallel(51, deliver) == [{}] * 51
    assert in_parallel(50, guess) == [[550, 550]] * 50

    page = new_page(browser, appliance)
    log_in(page, "admin")
    page.goto("/reports")
    spammers, legitimate = page.locator("#top-spammers"), page.locator("#top-legitimate")
    # Both charts draw a bar per MTA, labelled with its address ...
    assert SPAMMER in spammers.locator("svg.chart").text_content()
    assert LEGITIMATE in legitimate.locator("svg.chart").text_content()
    assert spammers.locator("svg.chart rect.bar").count() == 1
    assert legitimate.locator("svg.chart rect.bar").count() == 1
    # ... and the tables give the figures that put it there.
    spam_row = spammers.locator("tbody tr").filter(has_text=SPAMMER)
    good_row = legitimate.locator("tbody tr").filter(has_text=LEGITIMATE)
    assert spam_row.locator("td.connections").inner_text() == "50"
    assert "100%" in spam_row.inner_text()
    assert good_row.locator("td.connections").inner_text() == "51"
    assert "100%" in good_row.inner_text()
    # Each is on its own list only; the MTA the other tests sent from has too few.
    assert LEGITIMATE not in spammers.inner_text() and SPAMMER not in legitimate.inner_text()
    assert appliance.gateway_ip not in spammers.inner_text() + legitimate.inner_text()
    shot(page, "reports-top")
    # `portcullis report` lists the same MTAs (the same functions behind both).
    assert [s["address"] for s in appliance.gateway.cli_json("report", "top-spammers")] \
        == [SPAMMER]
    assert [s["address"] for s in appliance.gateway.cli_json("report", "top-legitimate")] \
        == [LEGITIMATE]
    page.context.close()


def test_server_admin_shows_clamav_databases_and_every_update_attempt(appliance, browser,
                                                                       update_agent):
    # The vendor pushes new ClamAV signatures: verified, installed, clamd reloaded.
    pushed = update_agent.signature_bundle("27100", {
        "portcullis-pushed.ndb": b"Portcullis.Test.Pushed-1:0:*:"
                                 + b"PORTCULLIS-PUSHED-SIGNATURE".hex().encode() + b"\n"})
    applied = update_agent.push(pushed, VENDOR_HOST)
    assert (applied["outcome"], applied["target"], applied["version"]) == (
        "applied", "clamav", "27100"), applied
    # The same bundle replayed is refused (anti-rollback); so is a push from elsewhere.
    replayed = update_agent.push(pushed, VENDOR_HOST)
    assert replayed["outcome"] == "rejected", replayed
    outsider = update_agent.push(pushed, OUTSIDER_HOST)
    assert outsider["outcome"] == "rejected", outsider
    assert (appliance.clamd.db_dir / "portcullis-pushed.ndb").exists()

    page = new_page(browser, appliance)
    log_in(page, "admin")
    page.goto("/server")
    clamav = page.locator("#clamav")
    assert "answering" in clamav.locator("table.clamav-status").inner_text()
    assert "ClamAV 1." in clamav.inner_text()
    # The database files as a table: the pushed file is there, with its signature count.
    files = {row.locator("td").nth(0).inner_text(): row.locator("td").all_inner_texts()
             for row in clamav.locator("table.clamav-databases tbody tr").all()}
    assert set(files) == {"portcullis-test.hdb", "portcullis-test-worm-test-zippwd-26.ndb",
                          "portcullis-pushed.ndb"}, files
    assert files["portcullis-pushed.ndb"][1].startswith("other")
    assert files["portcullis-pushed.ndb"][3] == "1"
    assert "=" not in clamav.inner_text()            # no raw key=value dump

    # Every attempt, newest first, with who pushed what and why it was refused.
    rows = page.locator("#update-history table.update-history tbody tr")
    assert rows.count() == 3
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
    outside, replay, first = cells
    assert outside[1] == OUTSIDER_HOST and outside[3] == "rejected"
    assert "outside the vendor netblocks" in outside[4]
    assert replay[1] == VENDOR_HOST and replay[2].startswith("clamav 27100")
    assert replay[3] == "rejected" and replay[4] == replayed["reason"]
    assert first[1] == VENDOR_HOST and first[2].startswith("clamav 27100")
    assert first[3] == "applied" and first[5] == ",".join(applied["signed_by"])
    # The agent's own history command shows the same attempts (one function behind both).
    agent_history = subprocess.run(
        [str(VENV_BIN / "portcullis-update-agent"), "--config", str(update_agent.config),
         "history", "--json"], capture_output=True, text=True, check=True).stdout
    assert [a["outcome"] for a in json.loads(agent_history)] == [
        "rejected", "rejected", "applied"]

    # Update now: freshclam is asked and clamd reloads.
    page.click("#clamav button[type=submit]")
    page.wait_for_url("**/server")
    assert "ClamAV signature update requested" in flash(page)
    assert "clamd: RELOADING" in flash(page)
    shot(page, "server-updates")
    page.context.close()


def post_from(page, action: str, fields: dict[str, str]) -> None:
    """Post a form to ``action`` from the page, with the page's own CSRF token (what a
    tampered form would send); waits for the answer."""
    with page.expect_navigation():
        page.evaluate("""([action, fields]) => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = action;
            const token = document.querySelector('input[name=csrf_token]').value;
            for (const [name, value] of Object.entries({...fields, csrf_token: token})) {
                const input = document.createElement('input');
                input.name = name;
                input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""", [action, fields])


def rcpt_until(appliance: Appliance, client: str, recipients: Iterator[str],
               code: int) -> tuple[list[int], str]:
    """RCPTs from ``client`` until one is answered ``code`` (a setting just changed takes
    effect within a second); the codes before it and that reply's text."""
    codes: list[int] = []
    with smtp_from(appliance, client) as session:
        session.mail("newsletter@partner.example")
        for recipient in recipients:
            reply, text = session.rcpt(recipient)
            if reply == code:
                return codes, text.decode()
            codes.append(reply)
            if reply == 250:
                session.rset()
                session.mail("newsletter@partner.example")
            time.sleep(0.1)
    raise AssertionError(f"no {code} from the gateway: {codes}")


def test_greylist_and_harvest_views_show_and_correct_what_the_defenses_remember(
        appliance, browser):
    gw = appliance.gateway
    harvester, newcomer = "127.0.70.70", "127.0.60.60"
    try:
        # A client guessing addresses is blocked after 3 invalid recipients ...
        gw.cli("settings", "set", "harvest_threshold", "3")
        guesses = (f"guess{n}@example.com" for n in range(40))
        refused, text = rcpt_until(appliance, harvester, guesses, 451)
        assert "address harvesting" in text and set(refused) == {550}
        # ... and a first-time sender is greylisted, for each recipient.
        gw.cli("settings", "set", "greylisting", "on")
        rcpt_until(appliance, newcomer, iter(["alice@example.com"] * 40), 451)
        rcpt_until(appliance, newcomer, iter(["carol@other.org"]), 451)

        # The super administrator sees both, with the client networks and recipients.
        page = new_page(browser, appliance)
        log_in(page, "admin")
        page.click("nav.menu >> text=Defenses")
        greylist = {tuple(row.locator("td").all_inner_texts()[:3])
                    for row in page.locator("#greylist-entries tbody tr").all()}
        assert greylist == {("127.0.60.0/24", "newsletter@partner.example", "alice@example.com"),
                            ("127.0.60.0/24", "newsletter@partner.example", "carol@other.org")}
        assert "waiting for a retry" in page.inner_text("#greylist-entries")
        harvest_row = page.locator("#harvest-clients tbody tr").filter(has_text=harvester)
        assert harvest_row.locator("td").nth(1).inner_text() == "3"
        assert "not blocked" not in harvest_row.inner_text()
        shot(page, "greylist-harvest")

        # A domain administrator sees the greylisting of mail to their own domain only,
        # no harvest counts (kept per client, for every domain), and cannot correct them.
        dora = new_page(browser, appliance)
        log_in(dora, "dora")
        dora.click("nav.menu >> text=Defenses")
        assert [row.locator("td").nth(2).inner_text() for row in
                dora.locator("#greylist-entries tbody tr").all()] == ["alice@example.com"]
        assert dora.locator("#harvest").count() == 0
        assert dora.locator("form[action^='/defenses/']").count() == 0
        shot(dora, "greylist-domain-admin")
        for action, fields in (("/defenses/harvest/unblock", {"ip": harvester}),
                               ("/defenses/greylist/forget", {"client": "all"})):
            post_from(dora, action, fields)
            assert "Only the super administrator" in dora.inner_text("#error-text")
            dora.goto("/defenses")
        dora.context.close()
        assert [c["client"] for c in gw.cli_json("harvest", "show")] == [harvester]

        # Unblock: the same function as `portcullis harvest unblock`; the client is served.
        harvest_row.locator("button").click()
        assert f"{harvester} unblocked" in flash(page)
        assert gw.cli_json("harvest", "show") == []
        with smtp_from(appliance, harvester) as session:
            session.mail("newsletter@partner.example")
            code, text = session.rcpt("bob@example.com")
        # (greylisted now, as any first-time sender: no longer refused as a harvester)
        assert (code, text.decode()) == (451, "4.7.1 Greylisted, please try again later")

        # Forget the newcomer's network: its senders are greylisted anew.
        page.locator("#greylist-entries tbody tr").filter(has_text="alice@example.com") \
            .locator("button").click()
        assert "greylist entries of 127.0.60.0/24 forgotten" in flash(page)
        assert gw.cli_json("greylist", "show", "--client", newcomer)["entries"] == []
        page.context.close()
    finally:
        gw.cli("settings", "set", "harvest_threshold", "0", "greylisting", "off")


def report_totals(page) -> dict[str, int]:
    page.goto("/reports")
    return {v: int(page.inner_text(f"#report-total-{v}"))
            for v in ("accept", "tag", "reject", "tempfail")}


def test_domain_administrator_reports_count_only_their_own_domains(appliance, browser):
    gw = appliance.gateway
    gw.cli("domain", "add", "north.example", "--mail-host", f"{appliance.internal_ip}:25")
    gw.cli("user", "add", "nina", "--role", "domain", "--domain", "north.example",
           "--password-stdin", input=PASSWORD + "\n")
    nina = new_page(browser, appliance)
    log_in(nina, "nina")
    assert report_totals(nina) == {"accept": 0, "tag": 0, "reject": 0, "tempfail": 0}
    assert "north.example" in nina.inner_text("#report-scope")
    admin = new_page(browser, appliance)
    log_in(admin, "admin")
    admin_before = report_totals(admin)

    def send(recipient: str, n: int) -> dict:
        with smtp_from(appliance, "127.0.80.80") as session:
            try:
                return session.send_message(clean_message(
                    "orders@customer.example", recipient, f"Order {n}"))
            except smtplib.SMTPRecipientsRefused as refused:
                return {r: code for r, (code, _) in refused.recipients.items()}

    # Other domains' mail first: the gateway writes its counters all at once, so once
    # north.example's figures are in, everything sent before them is in too.
    assert in_parallel(4, lambda n: send("carol@other.org", n)) == [{}] * 4
    assert in_parallel(3, lambda n: send("nina@north.example", n)) == [{}] * 3
    assert in_parallel(2, lambda n: send(f"nobody{n}@north.example", n)) == [
        {"nobody0@north.example": 550}, {"nobody1@north.example": 550}]
    expected = {"accept": 3, "tag": 0, "reject": 2, "tempfail": 0}
    deadline = time.monotonic() + 30
    while (totals := report_totals(nina)) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert totals == expected
    assert nina.locator("#traffic-report svg.chart rect.bar-accept").count() == 1
    assert nina.locator("#top-spammers, #top-legitimate").count() == 0
    shot(nina, "reports-domain-admin")
    # The same figures on the dashboard; the super administrator's include the others.
    nina.goto("/")
    assert int(nina.inner_text("#total-accept")) == 3
    assert int(nina.inner_text("#total-reject")) == 2
    # (at least: traffic of earlier tests may have been written meanwhile)
    admin_after = report_totals(admin)
    assert admin_after["accept"] - admin_before["accept"] >= 4 + 3
    assert admin_after["reject"] - admin_before["reject"] >= 2
    nina.context.close()
    admin.context.close()


def test_a_paste_longer_than_one_may_hold_is_refused_whole_saying_what_to_do(appliance,
                                                                            browser):
    gateway = appliance.gateway
    # Run alone, there is no super administrator yet, and /login would ask for the setup.
    gateway.cli("user", "add", "paste-root", "--role", "super", "--password-stdin",
                input=PASSWORD + "\n")
    gateway.cli("domain", "add", "paste.example", "--mail-host", "192.0.2.9")
    gateway.cli("user", "add", "paster", "--role", "domain", "--domain", "paste.example",
                "--password-stdin", input=PASSWORD + "\n")
    page = new_page(browser, appliance)
    log_in(page, "paster")
    page.goto("/domains/paste.example")
    assert "At most 100,000 lines" in page.inner_text("#paste-limit")
    # 100,001 lines, which the browser sends joined by CRLF (one line end each).
    page.evaluate("n => { document.querySelector('#paste-addresses textarea').value ="
                  " Array.from({length: n}, (_, i) => `user${i}@paste.example`).join('\\n') }",
                  100_001)
    page.click("#paste-addresses button[type=submit]")
    page.wait_for_url("**/domains/paste.example/addresses")
    error = page.inner_text("#domain-error")
    assert "Nothing was stored: the list has 100,001 lines" in error
    assert "portcullis valid import paste.example FILE" in error
    assert gateway.cli("valid", "list", "paste.example").stdout.split() == []
