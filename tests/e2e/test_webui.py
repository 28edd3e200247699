"""The web administration end to end, in headless Debian Chromium, against a real gateway
and a real Postfix internal mail host in a network namespace.

An administrator sets the first password with the setup code, protects a domain, pastes
its valid addresses, black-lists a sender, sees that sender's message rejected, finds it
in the archive and releases it to the internal host; the traffic charts show it.  A
domain administrator cannot see or change another domain, a form posted without its
CSRF token is refused, and a subject holding ``<script>`` is shown as text.  Screenshots
of the main pages go to ``tests/artifacts/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from tests.support.dirs import daemon_dir
from tests.support.gateway import Gateway
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix, swaks
from tests.support.web import ARTIFACTS, WebUI, chromium

pytestmark = pytest.mark.webui

PASSWORD = "correct horse battery staple"
XSS_SUBJECT = "<script>alert('pwned')</script> Cheap watches"


@dataclass
class Appliance:
    gateway: Gateway
    web: WebUI
    internal: Postfix
    internal_ip: str
    outside: Netns
    gateway_ip: str          # the gateway's address as the outside host sees it

    def send(self, sender: str, recipient: str, subject: str) -> tuple[int, str]:
        return swaks(self.outside, "--server", f"{self.gateway_ip}:{self.gateway.port}",
                     "--from", sender, "--to", recipient, "--helo", "mta.outside.test",
                     "--header", f"Subject: {subject}", "--body", "Hello from outside.")


@pytest.fixture(scope="module")
def appliance(root_required, tmp_path_factory):
    with network() as net:
        inner_ns, inner_ip, _ = net.host("inner")
        outside_ns, _outside_ip, outside_root_ip = net.host("outside")
        internal = Postfix.mailbox_server(
            daemon_dir("internal-mx"), inner_ns, inner_ip, domains=["example.com", "other.org"],
            users=["alice@example.com", "bob@example.com", "carol@other.org"]).start()
        gateway = Gateway(tmp_path_factory.mktemp("webui-e2e"), listen=[outside_root_ip])
        web = None
        try:
            gateway.start()
            web = WebUI(gateway).start()
            yield Appliance(gateway, web, internal, inner_ip, outside_ns, outside_root_ip)
        finally:
            if web is not None:
                web.stop()
            gateway.stop()
            internal.stop()


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
