"""The web UI as a real ``portcullis web`` process, spoken to over HTTP without a browser:
first start, login throttling, cookies, CSRF, per-domain isolation, escaping, headers."""

from __future__ import annotations

import html
import http.client
import json
import re
import time
from collections import Counter

import pytest

from portcullis import gatewaystatus
from portcullis.accounts import sessions
from portcullis.archive import Archive, new_message_id
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, GreylistPolicy
from portcullis.checks.harvest import HarvestPolicy
from portcullis.policy import Decision, Flag, Symbol, Verdict
from portcullis.store import open_store
from tests.reliability.test_web_input import ROUTES
from tests.support.gateway import Gateway
from tests.support.web import WebUI

pytestmark = pytest.mark.webui

PASSWORD = "correct horse battery"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("web-http"))
    web = WebUI(gateway).start()
    gateway.cli("domain", "add", "example.com", "--mail-host", "192.0.2.25")
    gateway.cli("domain", "add", "other.org", "--mail-host", "192.0.2.26")
    gateway.cli("user", "add", "root", "--role", "super", "--password-stdin",
                input=PASSWORD + "\n")
    gateway.cli("user", "add", "dora", "--role", "domain", "--domain", "example.com",
                "--password-stdin", input=PASSWORD + "\n")
    yield web
    web.stop()


@pytest.fixture
def admin(web):
    client = web.client()
    assert client.login("root", PASSWORD).status == 303
    return client


@pytest.fixture
def dora(web):
    client = web.client()
    assert client.login("dora", PASSWORD).status == 303
    return client


def archive_message(web, recipients, subject="Hello", mail_from="sender@example.net",
                    helo="mx.example.net", verdict=Verdict.REJECT, symbols=(), delivery="",
                    content=b"", reason="Black list: sender"):
    store = open_store(web.gateway.state_dir)
    archive = Archive(store, web.gateway.state_dir / "archive")
    message_id = new_message_id()
    content = content or (f"From: {mail_from}\r\nTo: {recipients[0]}\r\nSubject: {subject}"
                          f"\r\n\r\nbody {HOSTILE}\r\n").encode()
    path = archive.write_body(message_id, content)
    decision = Decision(verdict, 100.0, reason, (
        Symbol("BLACKLIST", 100.0, f"Black list: sender {mail_from}", Flag.BLACKLIST),
        *symbols))
    archive.index(message_id=message_id, received=time.time(), direction="inbound",
                  client_ip="192.0.2.99", helo=helo, mail_from=mail_from,
                  recipients=recipients, subject=subject, decision=decision,
                  size=len(content), path=path)
    if delivery:
        archive.set_delivery(message_id, delivery)
    archive.close()
    store.close()
    return message_id


# -- first start ---------------------------------------------------------------------------

def test_first_start_needs_the_setup_code_the_web_process_printed(tmp_path):
    web = WebUI(Gateway(tmp_path / "fresh")).start()
    try:
        client = web.client()
        assert client.get("/").location.startswith("/login")
        assert client.get("/login").location == "/setup"
        page = client.get("/setup")
        assert page.status == 200 and "setup code" in page.body.lower()
        code = web.setup_code()
        assert code in web.stderr()     # make run: the code is on the process's stderr
        form = {"csrf_token": page.csrf(), "username": "admin", "password": PASSWORD,
                "password2": PASSWORD}
        wrong = client.post("/setup", {**form, "code": "WRONG-CODE"})
        assert wrong.status == 403 and "setup code is wrong" in wrong.body
        assert web.gateway.cli_json("user", "list") == []
        done = client.post("/setup", {**form, "code": code})
        assert done.status == 303 and done.location == "/"
        cookie = next(c for c in done.all_headers("Set-Cookie")
                      if c.startswith("portcullis_session="))
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert client.get("/").status == 200
        assert not (web.gateway.state_dir / "setup-code").exists()
        # The code cannot be used a second time, by anyone.
        again = web.client()
        assert again.get("/setup").location == "/login"
        users = web.gateway.cli_json("user", "list")
        assert [(u["name"], u["role"]) for u in users] == [("admin", "super")]
    finally:
        web.stop()



def test_wrong_setup_codes_from_elsewhere_do_not_keep_the_owner_from_setting_up(tmp_path):
    from portcullis.accounts import throttle
    web = WebUI(Gateway(tmp_path / "fresh")).start()
    try:
        store = open_store(web.gateway.state_dir)
        for n in range(throttle.LIMITS["user"]):       # guessers all over the network
            throttle.record_failure(store, "(setup)", f"198.51.100.{n}")
        store.close()
        done = web.client().submit("/setup", "/setup", {
            "code": web.setup_code(), "username": "admin", "password": PASSWORD,
            "password2": PASSWORD})
        assert done.status == 303 and done.location == "/"
    finally:
        web.stop()


# -- login ---------------------------------------------------------------------------------

def test_wrong_password_is_refused_and_logins_are_throttled(web):
    web.gateway.cli("user", "add", "victim", "--role", "super", "--password-stdin",
                    input=PASSWORD + "\n")
    client = web.client()
    for _ in range(5):
        reply = client.login("victim", "not the password")
        assert reply.status == 401 and "Wrong user name or password" in reply.body
    blocked = client.login("victim", PASSWORD)
    assert blocked.status == 429 and "Too many failed logins" in blocked.body
    assert "portcullis_session" not in client.cookies


def test_guesses_sent_at_once_get_no_more_answers_than_the_limit(tmp_path):
    # The web server's threads each checked the limit before any guess was counted.
    from concurrent.futures import ThreadPoolExecutor

    from portcullis.accounts import throttle
    web = WebUI(Gateway(tmp_path / "race")).start()
    try:
        web.gateway.cli("user", "add", "target", "--role", "super", "--password-stdin",
                        input=PASSWORD + "\n")
        clients = [web.client() for _ in range(16)]
        tokens = [client.get("/login").csrf() for client in clients]

        def guess(n: int) -> int:
            return clients[n].post("/login", {"csrf_token": tokens[n], "username": "target",
                                              "password": f"guess number {n}"}).status

        with ThreadPoolExecutor(len(clients)) as pool:
            statuses = Counter(pool.map(guess, range(len(clients))))
        assert statuses == {401: throttle.LIMITS["pair"],
                            429: len(clients) - throttle.LIMITS["pair"]}
    finally:
        web.stop()


def test_unknown_user_and_known_user_get_the_same_answer(web):
    client = web.client()
    unknown, known = client.login("nobody-here", "x" * 12), client.login("dora", "x" * 12)
    assert unknown.status == known.status == 401
    assert re.sub(r'value="[^"]*"', "", unknown.body).replace("nobody-here", "") == \
        re.sub(r'value="[^"]*"', "", known.body).replace("dora", "")


def test_login_redirects_only_to_local_pages(web):
    client = web.client()
    page = client.get("/login?next=//evil.example/x")
    reply = client.post("/login", {"csrf_token": page.csrf(), "username": "root",
                                   "password": PASSWORD, "next": "//evil.example/x"})
    assert reply.status == 303 and reply.location == "/"


def test_the_page_to_go_to_after_login_is_sent_in_the_location_header_escaped(web):
    client = web.client()
    page = client.get("/login")
    reply = client.post("/login", {"csrf_token": page.csrf(), "username": "root",
                                   "password": PASSWORD, "next": "/domains?x=ü\x7f<é>"})
    assert reply.status == 303 and reply.location == "/domains?x=%C3%BC%7F%3C%C3%A9%3E"
    assert client.get(reply.location).status == 200


def test_a_page_asked_for_before_login_is_shown_after_it_with_its_query(web):
    client = web.client()
    asked = "/domains/example.com?filter=alice%40ex&x=%C3%BC+1"
    reply = client.get(asked)
    assert reply.status == 303 and reply.location.startswith("/login?next=")
    page = client.get(reply.location)
    hidden = re.search(r'name="next" value="([^"]*)"', page.body)
    assert hidden, page.body[-2000:]
    login = client.post("/login", {"csrf_token": page.csrf(), "username": "root",
                                   "password": PASSWORD, "next": html.unescape(hidden[1])})
    assert login.status == 303 and login.location == asked
    assert client.get(login.location).status == 200


def test_logout_ends_the_session_on_the_server(admin):
    token = admin.cookies["portcullis_session"]
    reply = admin.submit("/", "/logout", {})
    assert reply.status == 303 and reply.location == "/login"
    admin.cookies["portcullis_session"] = token     # a stolen copy of the cookie is dead
    assert admin.get("/domains").location.startswith("/login")


def test_logging_out_after_the_session_expired_clears_the_cookie_and_lands_on_login(web):
    # The page with its Log out button was left open past the idle timeout: the token
    # on the page died with the session, so the post was refused (403) and the browser
    # kept its dead cookie.
    client = web.client()
    assert client.login("root", PASSWORD).status == 303
    token = client.get("/domains").csrf()
    cookie = client.cookies["portcullis_session"]
    store = open_store(web.gateway.state_dir)
    store.execute("UPDATE web_sessions SET last_seen = ? WHERE id = ?",
                  (time.time() - sessions.IDLE_SECONDS - 60, sessions._key(cookie)))
    store.close()
    reply = client.post("/logout", {"csrf_token": token})
    assert reply.status == 303 and reply.location == "/login"
    assert "portcullis_session" not in client.cookies
    assert client.get("/login").status == 200
    # A live session's logout still needs that session's own token.
    assert client.login("root", PASSWORD).status == 303
    assert client.post("/logout", {"csrf_token": token}).status == 403
    assert client.post("/logout", {"csrf_token": token},
                       headers={"Origin": "http://evil.example"}).status == 403
    assert client.get("/domains").status == 200


def test_a_session_cookie_planted_before_login_is_replaced_not_made_valid(web):
    # Session fixation: a token the attacker chose (or an old one of theirs) stays
    # worthless when the victim logs in in the browser that carries it.
    planted = "attacker-chosen-token-" + "x" * 21
    victim = web.client()
    victim.cookies["portcullis_session"] = planted
    assert victim.login("root", PASSWORD).status == 303
    assert victim.cookies["portcullis_session"] != planted
    assert victim.get("/users").status == 200
    attacker = web.client()
    attacker.cookies["portcullis_session"] = planted
    assert attacker.get("/users").location.startswith("/login")


# -- CSRF ----------------------------------------------------------------------------------

def test_form_post_without_csrf_token_is_refused_and_changes_nothing(web, admin):
    reply = admin.post("/lists/black", {"entry": "csrf-victim.example"})
    assert reply.status == 403 and "did not come from this site" in reply.body
    forged = admin.post("/lists/black", {"entry": "csrf-victim.example",
                                         "csrf_token": "0" * 43})
    assert forged.status == 403
    entries = [e["entry"] for e in web.gateway.cli_json("list", "black", "show")]
    assert "csrf-victim.example" not in entries


def test_cross_site_post_is_refused_even_with_a_token(web, admin):
    token = admin.get("/lists").csrf()
    reply = admin.post("/lists/black", {"entry": "cross.example", "csrf_token": token},
                       headers={"Origin": "http://evil.example"})
    assert reply.status == 403
    assert "cross.example" not in [e["entry"] for e in
                                   web.gateway.cli_json("list", "black", "show")]


def test_login_form_needs_its_token_too(web):
    client = web.client()
    reply = client.post("/login", {"username": "root", "password": PASSWORD})
    assert reply.status == 403 and "portcullis_session" not in client.cookies


def _state_changing_routes() -> list[str]:
    """Every route of the application that takes a form, with its parameters filled in
    with things that exist (the routing table itself, not a list kept by hand)."""
    values = {"kind": "black", "message_id": "20261130T100000-0123456789"}
    paths = []
    for method, rule in ROUTES:
        if method != "GET":
            values["name"] = "example.com" if rule.startswith("/domains/") else "dora"
            paths.append(re.sub(r"<(\w+)[^>]*>", lambda m: values[m[1]], rule))
    return paths


FORM_ROUTES = _state_changing_routes()


@pytest.mark.parametrize("path", FORM_ROUTES)
def test_every_form_route_refuses_a_post_without_this_sessions_token(web, admin, dora, path):
    assert len(FORM_ROUTES) > 20
    form = {"entry": "csrf.example", "network": "203.0.113.0/24", "name": "csrf",
            "confirm": "example.com", "address": "alice@example.com", "ip": "192.0.2.1"}
    dora_token = dora.get("/domains").csrf()           # a real token, of another session
    for forged in ({}, {"csrf_token": dora_token}, {"csrf_token": ""}):
        reply = admin.post(path, {**form, **forged})
        assert reply.status == 403 and "did not come from this site" in reply.body, forged
    anonymous = web.client().post(path, form)
    if path == "/logout":       # no session to end: the login page, nothing changed
        assert anonymous.status == 303 and anonymous.location == "/login"
    else:
        assert anonymous.status == 403 and "portcullis_session" not in anonymous.body
    assert admin.get("/domains").status == 200       # the session was not ended either


# -- per-domain isolation ----------------------------------------------------------------

def test_domain_admin_sees_only_their_domains(dora):
    page = dora.get("/domains")
    assert "example.com" in page.body and "other.org" not in page.body
    assert dora.get("/domains/example.com").status == 200


@pytest.mark.parametrize("path", ["/domains/other.org", "/domains/unknown.net", "/relays",
                                  "/lists", "/settings", "/users", "/server"])
def test_domain_admin_direct_urls_are_refused(dora, path):
    assert dora.get(path).status == 403



@pytest.mark.parametrize("name", ["a..b", "-a.example", "a.-b", "x" * 64 + ".example"])
def test_a_domain_name_no_domain_can_have_is_not_found_not_an_error(admin, name):
    assert admin.get(f"/domains/{name}").status == 404
    token = admin.get("/domains").csrf()
    assert admin.post(f"/domains/{name}", {"mail_host": "192.0.2.9",
                                            "csrf_token": token}).status == 404


@pytest.mark.parametrize(("action", "form"), [
    ("/domains/other.org", {"mail_host": "203.0.113.66", "filtering": "on"}),
    ("/domains/other.org/addresses", {"addresses": "evil@other.org"}),
    ("/domains/other.org/addresses/remove", {"address": "carol@other.org"}),
    ("/domains/example.com/addresses/remove", {"address": "carol@other.org"}),
    ("/domains/other.org/remove", {"confirm": "other.org"}),
    ("/domains", {"name": "new.example", "mail_host": "192.0.2.1"}),
    ("/lists/black", {"entry": "example.net"}),
    ("/relays", {"network": "0.0.0.0/0"}),
    ("/settings", {"tag_threshold": "1"}),
    ("/users", {"name": "mine", "role": "super", "password": PASSWORD,
                "password2": PASSWORD}),
])
def test_domain_admin_form_posts_for_other_domains_are_refused(web, dora, action, form):
    token = dora.get("/domains/example.com").csrf()
    reply = dora.post(action, {**form, "csrf_token": token})
    assert reply.status == 403
    domains = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
    assert domains["other.org"]["mail_host"] == "192.0.2.26:25"
    assert "new.example" not in domains


@pytest.mark.parametrize("host", ["127.0.0.1:10025", "[::1]:25", "localhost", "0.0.0.0",
                                  "[::ffff:127.0.0.2]:25"])
def test_a_domain_admin_cannot_aim_their_domain_at_the_appliance_itself(web, dora, admin,
                                                                         host):
    token = dora.get("/domains/example.com").csrf()
    reply = dora.post("/domains/example.com", {"mail_host": host, "csrf_token": token})
    assert reply.status == 400 and "cannot be this appliance" in reply.body
    domains = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
    assert domains["example.com"]["mail_host"] == "192.0.2.25:25"
    # The domain's own host moving elsewhere is theirs to say; loopback is the super
    # administrator's (tests, relay set-ups).
    # Saving the form again with a loopback host the super administrator set is no change.
    for client, moved in ((dora, "192.0.2.99:2525"), (admin, "127.0.0.1:2525"),
                          (dora, "127.0.0.1:2525"), (dora, "192.0.2.25")):
        token = client.get("/domains/example.com").csrf()
        reply = client.post("/domains/example.com", {"mail_host": moved, "csrf_token": token})
        assert reply.status == 303, (moved, reply.body[-500:])


@pytest.mark.parametrize("host", ["192.0.2.25:22", "192.0.2.25:80", "mail.example.com:6379",
                                  "[2001:db8::25]:10025"])
def test_a_domain_admin_may_give_their_mail_host_an_smtp_port_only(web, dora, admin, host):
    # Another port would have the gateway speak SMTP to SSH, a web server or a database
    # on the internal network, with a message of the sender's choosing.
    page = dora.get("/domains/example.com")
    assert "Port 25, 587, 2525" in page.body
    reply = dora.post("/domains/example.com", {"mail_host": host, "csrf_token": page.csrf()})
    assert reply.status == 400 and "port may be 25, 587, 2525 only" in reply.body, host
    domains = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
    assert domains["example.com"]["mail_host"] == "192.0.2.25:25"
    # The super administrator may set any; saved unchanged by dora, it stays.
    for client, moved in ((admin, host), (dora, host), (dora, "192.0.2.25:587"),
                          (dora, "192.0.2.25")):
        reply = client.submit("/domains/example.com", "/domains/example.com",
                              {"mail_host": moved})
        assert reply.status == 303, (moved, reply.body[-500:])
    assert "Port 25, 587" not in admin.get("/domains/example.com").body


@pytest.mark.parametrize("host", ["0x7f000001:10025", "0x7f.0x1", "0x0:25"])
def test_a_mail_host_the_resolver_reads_as_an_address_is_no_way_around_that(web, dora, host):
    # getaddrinfo reads these as inet_aton does (127.0.0.1, 0.0.0.0), never as names: a
    # domain administrator aimed their domain at the appliance's own services with them.
    token = dora.get("/domains/example.com").csrf()
    reply = dora.post("/domains/example.com", {"mail_host": host, "csrf_token": token})
    assert reply.status == 400 and "IPv4 address" in reply.body
    domains = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
    assert domains["example.com"]["mail_host"] == "192.0.2.25:25"


def test_a_mail_host_an_older_release_stored_is_shown_to_be_corrected_not_lost(web, admin):
    # Stored before parse_hostport refused inet_aton's notations: every page that reads
    # it still opens, says which field to correct, and a save keeps what was typed.
    web.gateway.cli("domain", "add", "legacy.example", "--mail-host", "192.0.2.27")
    store = open_store(web.gateway.state_dir)
    store.execute("UPDATE domains SET mail_host = '0x7f000001:10025'"
                  " WHERE name = 'legacy.example'")
    store.close()
    web.gateway.cli("user", "add", "lena", "--role", "domain", "--domain", "legacy.example",
                    "--password-stdin", input=PASSWORD + "\n")
    lena = web.client()
    assert lena.login("lena", PASSWORD).status == 303
    for client in (admin, lena):
        for path in ("/", "/domains", "/archive", "/log", "/defenses"):
            assert client.get(path).status == 200, path
        page = client.get("/domains/legacy.example")
        assert page.status == 200
        assert "Internal mail host 0x7f000001:10025 is not valid" in page.body
        assert "write 127.0.0.1" in page.body
        # Saved as it stands, with a switch changed: refused, naming the field; what
        # was typed and ticked stays in the form; nothing is stored.
        reply = client.post("/domains/legacy.example", {
            "mail_host": "0x7f000001:10025", "smtp_validation": "on",
            "csrf_token": page.csrf()})
        assert reply.status == 400
        assert "mail host &#039;0x7f000001:10025&#039;" in reply.body
        assert "write 127.0.0.1" in reply.body
        assert 'name="mail_host" value="0x7f000001:10025"' in reply.body
        assert '<input type="checkbox" name="filtering">' in reply.body
        assert '<input type="checkbox" name="smtp_validation" checked>' in reply.body
        stored = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
        assert stored["legacy.example"]["mail_host"] == "0x7f000001:10025"
        assert stored["legacy.example"]["filtering"] is True
    # Loopback is the super administrator's to set, in its own notation.
    reply = lena.post("/domains/legacy.example", {"mail_host": "127.0.0.1:10025",
                                                  "csrf_token": page.csrf()})
    assert reply.status == 400 and "cannot be this appliance" in reply.body
    reply = lena.submit("/domains/legacy.example", "/domains/legacy.example",
                        {"mail_host": "192.0.2.27", "filtering": "on"})
    assert reply.status == 303
    assert "is not valid" not in lena.get("/domains/legacy.example").body
    web.gateway.cli("user", "remove", "lena")
    web.gateway.cli("domain", "remove", "legacy.example")


def test_domain_admin_cannot_open_or_release_another_domains_message(web, dora, admin):
    theirs = archive_message(web, ["carol@other.org"], subject="not for dora")
    mine = archive_message(web, ["alice@example.com"], subject="for dora")
    assert dora.get(f"/archive/{theirs}").status == 403
    assert dora.get(f"/archive/{theirs}/raw").status == 403
    token = dora.get(f"/archive/{mine}").csrf()
    assert dora.post(f"/archive/{theirs}/release", {"csrf_token": token}).status == 403
    listing = dora.get("/archive").body
    assert mine in listing and theirs not in listing
    assert theirs in admin.get("/archive").body
    assert "not for dora" not in dora.get("/log").body



def test_a_message_released_to_a_domain_admins_recipients_offers_release_again(
        web, dora, admin):
    # Released to alice by another administrator: dora's button says what it would do,
    # and a plain release (an old page, a double click) sends no second copy.
    shared = archive_message(web, ["alice@example.com", "carol@other.org"],
                             subject="released before")
    store = open_store(web.gateway.state_dir)
    Archive(store, web.gateway.state_dir / "archive").set_released(
        shared, ["alice@example.com"], released=True)
    store.close()
    page = dora.get(f"/archive/{shared}")
    assert "Release again to alice@example.com" in page.body
    assert 'name="again" value="1"' in page.body
    reply = dora.post(f"/archive/{shared}/release", {"csrf_token": page.csrf()})
    assert reply.status == 303
    assert "already released to alice@example.com" in dora.get(f"/archive/{shared}").body
    # carol has not had it: the super administrator's button offers it to her only.
    page = admin.get(f"/archive/{shared}")
    assert "Release to carol@other.org" in page.body and 'name="again"' not in page.body


def test_a_wanted_message_the_internal_host_refused_can_be_released(web, dora):
    # Accepted by the filter, refused by the internal host (too big for it): once the
    # host is fixed the administrator releases it; one it took offers no release.
    refused = archive_message(web, ["alice@example.com"], verdict=Verdict.ACCEPT,
                              delivery="552 5.3.4 Message size exceeds fixed limit")
    taken = archive_message(web, ["alice@example.com"], verdict=Verdict.ACCEPT,
                            delivery="250 2.0.0 Ok: queued as 4F2A")
    assert "Release to alice@example.com" in dora.get(f"/archive/{refused}").body
    assert 'id="release"' not in dora.get(f"/archive/{taken}").body


def test_releasing_a_deferred_message_warns_that_the_sender_sends_it_again(web, dora):
    # A 4xx (greylisting, an unscanned attachment, the internal host down) has the
    # sender's server try again: released as well, the message would arrive twice.
    warning = "normally sends this message again by itself"
    greylisted = archive_message(web, ["alice@example.com"], verdict=Verdict.TEMPFAIL,
                                 delivery="451 4.7.1 Greylisted, please try again later")
    host_down = archive_message(web, ["alice@example.com"], verdict=Verdict.ACCEPT,
                                delivery="451 4.4.1 Internal mail host unavailable")
    rejected = archive_message(web, ["alice@example.com"],
                               delivery="550 5.7.1 Black list: sender")
    for deferred in (greylisted, host_down):
        page = dora.get(f"/archive/{deferred}").body
        assert "Release to alice@example.com" in page and warning in page
    assert warning not in dora.get(f"/archive/{rejected}").body


def test_another_domains_release_does_not_show_as_released_to_a_domain_admin(
        web, dora, admin):
    # other.org's administrator released carol's copy: for dora alice's has not been,
    # and the listing and the page must not tell her otherwise.
    shared = archive_message(web, ["alice@example.com", "carol@other.org"],
                             subject="released for other.org only")
    store = open_store(web.gateway.state_dir)
    archive = Archive(store, web.gateway.state_dir / "archive")
    archive.set_released(shared, ["carol@other.org"], released=True)
    archive.mark_released(shared, "released by olga: delivered to carol@other.org")
    store.close()
    listing = dora.get("/archive?subject=released+for+other.org").body
    assert shared in listing and "tag-released" not in listing
    page = dora.get(f"/archive/{shared}").body
    assert ">Released<" not in page and "Release to alice@example.com" in page
    assert "tag-released" in admin.get("/archive?subject=released+for+other.org").body
    assert ">Released<" in admin.get(f"/archive/{shared}").body


def test_domain_admin_does_not_see_another_domains_recipients_of_a_shared_message(
        web, dora, admin):
    # One message to both domains is archived once; dora may open it, but the other
    # domain's (perhaps Bcc) recipient is none of her business.
    shared = archive_message(web, ["alice@example.com", "hidden.bcc@other.org"],
                             subject="shared with other.org")
    for path in ("/archive", f"/archive/{shared}", "/", "/log"):
        page = dora.get(path)
        assert page.status == 200 and "shared with other.org" in page.body, path
        assert "alice@example.com" in page.body, path
        assert "hidden.bcc@other.org" not in page.body, path
    assert "hidden.bcc@other.org" in admin.get(f"/archive/{shared}").body


def test_another_domains_recipient_named_in_a_reason_or_the_delivery_is_not_shown(
        web, dora, admin):
    # The message's symbols are those of the recipient it was judged most leniently for
    # (here the other domain's, not validated), and a super administrator's release
    # records whom it reached: neither may tell dora who else got the message.
    shared = archive_message(
        web, ["alice@example.com", "Hidden.Bcc@other.org"], subject="named elsewhere",
        symbols=(Symbol("RCPT_NOT_VALIDATED", 1.0,
                        "recipient hidden.bcc@other.org could not be validated"),),
        delivery="released by root: delivered to alice@example.com, Hidden.Bcc@other.org")
    for path in (f"/archive/{shared}", "/log"):
        page = dora.get(path).body
        assert "named elsewhere" in page and "alice@example.com" in page, path
        assert "hidden.bcc" not in page.lower(), path
    page = dora.get(f"/archive/{shared}").body
    assert "recipient (a recipient in another domain) could not be validated" in page
    # The release's part about the other domain's recipient is not shown at all.
    assert "released by an administrator: delivered to alice@example.com</td>" in page
    assert "recipient hidden.bcc@other.org could not" in admin.get(f"/archive/{shared}").body


def test_a_domain_admin_learns_nothing_of_other_administrators_sessions(web, dora, admin):
    # The dashboard has no card of logged-in administrators: the only list of them (who,
    # from where, since when) is the server page's, which is the super administrator's.
    # The dashboard's SMTP card gives a domain administrator the gateway's figures but
    # not its clients.
    store = open_store(web.gateway.state_dir)
    sessions.create_session(store, "root", "203.0.113.77")
    store.close()
    gatewaystatus.publish(web.gateway.state_dir, 9, active=3, refused=0,
                          per_ip=Counter({"198.51.100.200": 3}), max_sessions=100)
    try:
        dashboard = dora.get("/")
        assert dashboard.status == 200 and 'id="sessions"' in dashboard.body
        for path in ("/", "/account", "/archive", "/log", "/defenses", "/domains"):
            page = dora.get(path).body
            assert "203.0.113.77" not in page and "root" not in page, path
            assert 'id="admins"' not in page and "Logged-in administrators" not in page, path
            assert "198.51.100.200" not in page, path
        assert dora.get("/server").status == 403
        shown = admin.get("/server").body
        assert 'id="admins"' in shown and "203.0.113.77" in shown and "dora" in shown
        assert "198.51.100.200" in admin.get("/").body
    finally:
        gatewaystatus.withdraw(web.gateway.state_dir, 9)


def test_another_domains_recipients_findings_are_shown_to_a_domain_admin_as_a_score_only(
        web, dora, admin):
    # Judged (most leniently) for the other domain's recipient: the verdict, reason and
    # score are the message's, but that recipient's own findings (here that it knows the
    # sender) are its domain's business; each domain sees its own recipients' findings.
    shared = archive_message(
        web, ["alice@example.com", "bob@other.org"], subject="judged for bob",
        symbols=(Symbol("BAYES_SPAM", 2.5, "Bayes: spam probability 0.97"),
                 Symbol("PEER", -3.0, "known peer: 5 message(s) sent to, 2 received from"
                        " this correspondent", recipient="bob@other.org"),
                 Symbol("GREYLIST_PASSED", 0.0, "greylisting passed: retried after 300 s",
                        recipient="alice@example.com")))
    web.gateway.cli("user", "add", "olga", "--role", "domain", "--domain", "other.org",
                    "--password-stdin", input=PASSWORD + "\n")
    olga = web.client()
    try:
        assert olga.login("olga", PASSWORD).status == 303
        mine = dora.get(f"/archive/{shared}").body
        assert "BAYES_SPAM" in mine and "GREYLIST_PASSED" in mine
        assert "PEER" not in mine and "known peer" not in mine
        assert 'id="symbols-elsewhere"' in mine and "-3.00" in mine
        assert "+99.50" in mine                      # the message's total, as it was judged
        theirs = olga.get(f"/archive/{shared}").body
        assert "known peer" in theirs and "GREYLIST_PASSED" not in theirs
        everything = admin.get(f"/archive/{shared}").body
        assert "known peer" in everything and "GREYLIST_PASSED" in everything
        assert 'id="symbols-elsewhere"' not in everything
    finally:
        web.gateway.cli("user", "remove", "olga")


def test_a_domain_admins_log_filter_finds_a_line_older_than_the_lines_shown(web, dora):
    # As the log file's tail does for the super administrator: the last 50 lines that
    # hold the text, not those of the last 50 messages that do.
    archive_message(web, ["alice@example.com"], subject="invoice 4711 from the printer")
    for number in range(50):
        archive_message(web, ["alice@example.com"], subject=f"newer message {number}")
    page = dora.get("/log?lines=50&grep=invoice+4711").body
    assert "invoice 4711 from the printer" in page
    assert "newer message" not in page
    unfiltered = dora.get("/log?lines=50").body
    assert unfiltered.count("newer message") == 50 and "invoice 4711" not in unfiltered


def test_a_log_filter_that_finds_nothing_does_not_say_nothing_was_logged(web, admin, dora):
    archive_message(web, ["alice@example.com"], subject="something logged")
    for client in (admin, dora):
        page = html.unescape(client.get("/log?grep=%3Cno+such+text%3E").body)
        assert "No decisions logged yet." not in page
        assert "No line of the last decisions contains <no such text>." in page
    assert "No decisions logged yet." not in dora.get("/log").body


def test_a_domain_admins_log_says_when_their_internal_host_refused_a_wanted_message(
        web, dora):
    # As the gateway logs it: the sender was told to try again (host down), or refused.
    for verdict, subject, reply in ((Verdict.TEMPFAIL, "host down",
                                     "451 4.4.1 internal host not reachable"),
                                    (Verdict.REJECT, "mailbox full", "552 5.2.2 mailbox full")):
        archive_message(web, ["alice@example.com"], verdict=verdict, subject=subject,
                        delivery=reply, reason=f"by internal host: {reply[4:]}")
    archive_message(web, ["alice@example.com"], verdict=Verdict.ACCEPT, subject="taken",
                    delivery="250 2.0.0 Ok: queued")
    lines = html.unescape(dora.get("/log?lines=1000").body).splitlines()

    def line_of(subject: str) -> str:
        return next(line for line in lines if line.endswith(f'alice@example.com {subject}'))

    assert " - TempFailed by internal host: 4.4.1 internal host not reachable " in \
        line_of("host down")
    assert " - Rejected by internal host: 5.2.2 mailbox full " in line_of("mailbox full")
    assert " - Accepted " in line_of("taken")


def test_a_domain_admins_recipient_search_does_not_match_another_domains_recipients(
        web, dora, admin):
    shared = archive_message(web, ["bob@example.com", "board.member@other.org"],
                             subject="search shared")
    assert shared not in dora.get("/archive?recipient=board.member").body
    assert shared not in dora.get("/archive?recipient=other.org").body
    assert shared in dora.get("/archive?recipient=BOB@example").body
    assert shared in admin.get("/archive?recipient=board.member").body


def test_a_path_with_a_newline_cannot_forge_a_line_of_the_web_log(web):
    forged = "WARNING portcullis.web.app: 203.0.113.5: failed login for 'root'"
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    connection.request("POST", "/x%0A" + forged.replace(" ", "%20"), body=b"a=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 403
    connection.close()
    assert not any(line.startswith(forged) for line in web.stderr().splitlines())


def test_a_stranger_cannot_write_long_lines_into_the_web_log(web):
    # As long as the login form and the request line allow, at every try, from anyone.
    before = len(web.stderr())
    client = web.client()
    replies = [client.login("u" * 90_000, "not the password").status for _ in range(6)]
    assert replies == [401] * 5 + [429]       # failed, then refused: both are logged
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    connection.request("POST", "/x" + "p" * 60_000, body=b"a=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 403
    connection.close()
    logged = web.stderr()[before:]
    assert "failed login for 'uuu" in logged and "refused: too many" in logged
    assert "without a valid CSRF token" in logged
    assert len(logged) < 2000, len(logged)


def test_a_domain_admins_recipient_search_pages_over_their_own_recipients_only(web, dora):
    mine = archive_message(web, ["pager.bob@example.com"], subject="older, mine")
    hidden = [archive_message(web, ["carl@example.com", "pager.eve@other.org"])
              for _ in range(50)]     # newer, matched only through the other domain's one
    first = dora.get("/archive?recipient=pager").body
    assert mine in first and not any(h in first for h in hidden)
    assert "offset=50" not in first          # a full page of others no longer hides it


# -- escaping and headers -------------------------------------------------------------------

def test_hostile_subject_sender_and_helo_are_shown_as_text(web, admin):
    message_id = archive_message(web, ["alice@example.com"], subject=HOSTILE,
                                 mail_from='x"><script>@evil.example',
                                 helo="<script>helo</script>")
    for path in ("/archive", f"/archive/{message_id}", "/"):
        body = admin.get(path).body
        assert "<script" not in body.lower() and "<img src=x" not in body.lower(), path
        assert "&lt;script&gt;" in body, path


def test_a_right_to_left_override_cannot_disguise_an_attachments_name(web, admin):
    # "invoice<U+202E>fdp.exe" shows as "invoiceexe.pdf" in a browser.
    content = ("From: a@example.net\r\nTo: alice@example.com\r\nSubject: invoice\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
               "Content-Type: application/octet-stream\r\nContent-Disposition: attachment;"
               " filename*=utf-8''invoice%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--b--\r\n")
    store = open_store(web.gateway.state_dir)
    archive = Archive(store, web.gateway.state_dir / "archive")
    disguised = new_message_id()
    archive.index(message_id=disguised, received=time.time(), direction="inbound",
                  client_ip="192.0.2.99", helo="mx.example.net", mail_from="a@example.net",
                  recipients=["alice@example.com"], subject="invoice",
                  decision=Decision(Verdict.REJECT, 10.0, "Blocked attachment", (Symbol(
                      "BLOCKED_ATTACHMENT", 10.0, "Blocked attachment invoice\u202efdp.exe"),)),
                  size=len(content), path=archive.write_body(disguised, content.encode()))
    archive.close()
    store.close()
    page = admin.get(f"/archive/{disguised}").body
    assert "\u202e" not in page
    assert page.count("invoice\\u202efdp.exe") == 2      # the part's name and the reason


@pytest.mark.parametrize(("parts", "cut"), [(1500, "more than 1000 MIME parts"),
                                            (5000, "more than 1000 MIME parts")])
def test_a_message_of_more_parts_than_are_listed_says_so(web, admin, parts, cut):
    # Past 1,000 parts the list stops, past 4,000 the parser does (one opaque body): a
    # part bomb must not look like a message of 1,000 parts, or of one.
    content = ("Subject: many parts\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
               + "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts + "--b--\r\n")
    bomb = archive_message(web, ["alice@example.com"], subject="many parts",
                           content=content.encode())
    page = admin.get(f"/archive/{bomb}")
    assert page.status == 200 and f"Not every part is listed: {cut}." in page.body


def test_every_response_carries_the_security_headers(admin):
    for path in ("/", "/domains", "/no-such-page", "/static/style.css"):
        reply = admin.get(path)
        csp = reply.header("Content-Security-Policy")
        assert "default-src 'none'" in csp and "script-src" not in csp, path
        assert reply.header("X-Content-Type-Options") == "nosniff"
        assert reply.header("X-Frame-Options") == "DENY"
    assert admin.get("/").header("Cache-Control") == "no-store"
    assert admin.get("/no-such-page").status == 404


def test_static_files_cannot_escape_their_directory(admin):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py"):
        assert admin.get(path).status in (403, 404), path


# -- forms ---------------------------------------------------------------------------------

def test_valid_address_paste_stores_nothing_when_a_line_is_bad(web, dora):
    pasted = "Jane Doe <jane@example.com>\nnot an address at all\nbob@other.org\n"
    reply = dora.submit("/domains/example.com", "/domains/example.com/addresses",
                        {"addresses": pasted})
    assert reply.status == 400
    assert "line 2" in reply.body and "line 3" in reply.body
    assert "jane@example.com" not in web.gateway.cli("valid", "list", "example.com").stdout
    good = '"Jane Doe" jane@example.com\n<john@example.com>\n# staff\nann@example.com\n'
    reply = dora.submit("/domains/example.com", "/domains/example.com/addresses",
                        {"addresses": good})
    assert reply.status == 303
    listed = web.gateway.cli("valid", "list", "example.com").stdout.split()
    assert {"jane@example.com", "john@example.com", "ann@example.com"} <= set(listed)
    assert "3 address(es) added" in dora.get("/domains/example.com").body



def test_removing_the_last_address_of_a_list_only_domain_warns_its_mail_is_deferred(
        web, admin):
    # The page said all its mail "will be refused"; the gateway defers it (451) now.
    web.gateway.cli("domain", "add", "listonly.example", "--mail-host", "192.0.2.27",
                    "--smtp-validation", "off")
    admin.submit("/domains/listonly.example", "/domains/listonly.example/addresses",
                 {"addresses": "ann@listonly.example"})
    assert 'id="list-empty"' not in admin.get("/domains/listonly.example").body
    reply = admin.submit("/domains/listonly.example",
                         "/domains/listonly.example/addresses/remove",
                         {"address": "ann@listonly.example"})
    assert reply.status == 303
    page = html.unescape(admin.get("/domains/listonly.example").body)
    assert "ann@listonly.example removed." in page
    assert "That was the last address on the list" in page
    assert "all its mail is now deferred (451)" in page
    assert 'id="list-empty"' in page and "defers all its mail" in page
    assert "will be refused" not in page
    web.gateway.cli("domain", "remove", "listonly.example")


def test_a_pasted_list_of_a_large_site_is_taken_and_only_forms_before_login_stay_small(
        web, dora):
    # 20,000 addresses, 480 KB: bottle's own 100 KiB limit answered 413.
    pasted = "\n".join(f"staff{n:05d}@example.com" for n in range(20_000))
    reply = dora.submit("/domains/example.com", "/domains/example.com/addresses",
                        {"addresses": pasted})
    assert reply.status == 303
    listed = set(web.gateway.cli("valid", "list", "example.com").stdout.split())
    assert {"staff00000@example.com", "staff19999@example.com"} <= listed
    # Whoever can reach the login page cannot make the process parse a large form,
    token = dora.get("/domains/example.com").csrf()
    stranger = web.client()
    login = stranger.submit("/login", "/login", {"username": "dora",
                                                 "password": "x" * 200_000})
    assert login.status == 413 and "nothing was changed" in login.body
    # and a logged-in one no form of many thousand fields (each costs far more parsed).
    fields = dora.post("/domains/example.com", [("csrf_token", token), ("filtering", "on"),
                                                ("mail_host", "203.0.113.9"),
                                                *[("x", "")] * 50_000])
    assert fields.status == 413
    domains = {d["name"]: d for d in web.gateway.cli_json("domain", "list")}
    assert domains["example.com"]["mail_host"] == "192.0.2.25:25"


def test_a_long_paste_after_the_session_ended_asks_for_a_login_not_a_shorter_list(web, dora):
    # Its form is over the limit before login (100 KiB): "too large" would send the
    # administrator off to cut a list that was fine.
    token = dora.get("/domains/example.com").csrf()
    cookie = dora.cookies["portcullis_session"]
    dora.submit("/", "/logout", {})            # or 30 minutes idle
    dora.cookies["portcullis_session"] = cookie
    pasted = "\n".join(f"late{n:05d}@example.com" for n in range(10_000))
    reply = dora.post("/domains/example.com/addresses", {"addresses": pasted,
                                                         "csrf_token": token})
    assert reply.status == 403 and "Your session has ended" in reply.body
    assert "too large" not in reply.body
    assert "late00000@example.com" not in web.gateway.cli("valid", "list",
                                                           "example.com").stdout


def test_the_paste_form_says_how_much_one_paste_may_hold_and_what_to_do_beyond(dora):
    # A body beyond the limit is refused by the server before the application sees it,
    # with no page of ours: the form says it beforehand.
    page = dora.get("/domains/example.com")
    limit = re.search(r'<p class="muted" id="paste-limit">([^<]*)</p>', page.body)
    assert limit, page.body[-3000:]
    assert "At most 100,000 lines and 16.0 MiB per paste" in limit[1]
    assert "portcullis valid import example.com FILE" in limit[1]


def test_settings_page_lists_every_registered_setting_and_validates(web, admin):
    from portcullis.directory.settings import SETTINGS

    page = admin.get("/settings")
    for name in SETTINGS:
        assert f'name="{name}"' in page.body
    current = web.gateway.cli_json("settings", "show")
    form = {n: str(v) if not isinstance(v, list) else "\n".join(v)
            for n, v in current.items() if not isinstance(v, bool)}
    form |= {n: "on" for n, v in current.items() if v is True}
    bad = admin.post("/settings", {**form, "tag_threshold": "50", "reject_threshold": "10",
                                   "csrf_token": page.csrf()})
    assert bad.status == 400 and "tag_threshold must be below" in bad.body
    # A setting with a fixed set of values is a choice, and nothing else is taken.
    assert '<option value="reject">reject</option>' in page.body
    assert '<option value="score" selected>score</option>' in page.body
    # Not a number of the field's range (float() reads "nan", "inf" and "1e999"): the
    # field and its range are named, and nothing is stored.
    for name, value, wanted in (("harvest_block", "nan", "a whole number from 1 to 10080"),
                                ("tag_threshold", "1e999", "a finite number from -100 to"
                                                           " 1000"),
                                ("greylist_delay", "-inf", "a whole number from 0 to 86400")):
        refused = admin.post("/settings", {**form, name: value, "csrf_token": page.csrf()})
        assert refused.status == 400 and f"{name}: must be {wanted}" in refused.body
        assert web.gateway.cli_json("settings", "show") == current
    other = admin.post("/settings", {**form, "office_macros": "<b>x</b>",
                                     "csrf_token": page.csrf()})
    assert other.status == 400 and "office_macros: must be one of" in other.body
    assert "<b>x</b>" not in other.body
    good = admin.post("/settings", {**form, "tag_phrase": "[PROBABLY SPAM]",
                                    "csrf_token": page.csrf()})
    assert good.status == 303
    after = web.gateway.cli_json("settings", "show")
    assert after["tag_phrase"] == "[PROBABLY SPAM]"
    assert after["tag_threshold"] == current["tag_threshold"]


def test_super_admin_adds_a_domain_admin_who_can_then_log_in(web, admin):
    reply = admin.submit("/users", "/users", {
        "name": "olga", "role": "domain", "domains": ["other.org"], "password": PASSWORD,
        "password2": PASSWORD})
    assert reply.status == 303
    olga = web.client()
    assert olga.login("olga", PASSWORD).status == 303
    assert "other.org" in olga.get("/domains").body
    assert olga.get("/domains/example.com").status == 403


def test_cli_user_commands(web):
    gw = web.gateway
    assert gw.cli("user", "add", "cli-admin", "--role", "domain", "--domain", "other.org"
                  ).returncode == 0
    listed = {u["name"]: u for u in gw.cli_json("user", "list")}
    assert listed["cli-admin"]["has_password"] is False
    short = gw.cli("user", "passwd", "cli-admin", input="short\n", check=False)
    assert short.returncode == 1 and "at least 10" in short.stderr
    gw.cli("user", "passwd", "cli-admin", input=PASSWORD + "\n")
    assert {u["name"]: u for u in gw.cli_json("user", "list")}["cli-admin"]["has_password"]
    missing = gw.cli("user", "add", "x", "--role", "domain", "--domain", "nope.example",
                     check=False)
    assert missing.returncode == 1 and "not protected" in missing.stderr
    gw.cli("user", "remove", "cli-admin")
    assert "cli-admin" not in json.dumps(gw.cli_json("user", "list"))


def test_form_text_is_read_as_utf8(web, admin):
    reply = admin.submit("/relays", "/relays", {"network": "198.51.100.0/24",
                                                "note": "Büro Zürich — ☃"})
    assert reply.status == 303
    relays = {r["network"]: r["note"] for r in web.gateway.cli_json("relay", "list")}
    assert relays["198.51.100.0/24"] == "Büro Zürich — ☃"
    assert "Büro Zürich — ☃" in admin.get("/relays").body


@pytest.mark.parametrize("path", ["/login", "/relays"])
def test_form_text_that_is_not_utf8_is_refused_with_400_and_changes_nothing(
        web, admin, path):
    client = web.client() if path == "/login" else admin
    token = client.get(path).csrf()
    before = web.gateway.cli_json("relay", "list")
    errors = web.stderr().count("internal error")
    reply = client.post(path, {"network": "203.0.113.0/24", "note": b"B\xfcro",
                               "username": b"\xff\xfe", "password": "x",
                               "csrf_token": token})
    assert reply.status == 400 and "not UTF-8" in reply.body
    assert web.gateway.cli_json("relay", "list") == before
    assert web.stderr().count("internal error") == errors


def test_a_multipart_form_with_headers_not_in_utf8_is_refused_with_400(web):
    body = (b'--zz\r\nContent-Disposition: form-data; name="user\xff"\r\n\r\nx\r\n'
            b"--zz--\r\n")
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    connection.request("POST", "/login", body=body,
                       headers={"Content-Type": "multipart/form-data; boundary=zz"})
    reply = connection.getresponse()
    assert reply.status == 400 and b"not UTF-8" in reply.read()
    connection.close()



@pytest.mark.parametrize("charset", ["nope", "rot13"])
def test_a_multipart_form_in_a_charset_python_does_not_know_is_refused_with_400(web, charset):
    body = b'--zz\r\nContent-Disposition: form-data; name="username"\r\n\r\nx\r\n--zz--\r\n'
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    connection.request("POST", "/login", body=body, headers={
        "Content-Type": f"multipart/form-data; boundary=zz; charset={charset}"})
    reply = connection.getresponse()
    assert reply.status == 400 and b"not UTF-8" in reply.read()
    connection.close()


def test_a_query_that_is_not_utf8_is_refused_with_400(admin):
    reply = admin.get("/domains/example.com?filter=%ff")
    assert reply.status == 400 and "not UTF-8" in reply.body
    assert admin.get("/domains/example.com?filter=%C3%BC").status == 200


# -- greylist and harvest ----------------------------------------------------------------------

HARVESTER = "198.51.100.7"


@pytest.fixture
def defenses(web):
    """Greylist entries for both domains' recipients and a blocked harvester, recorded by
    the functions the gateway's checks use."""
    store = open_store(web.gateway.state_dir)
    greylist = Greylist(store)
    greylist.forget()
    harvest.unblock(store, HARVESTER)
    policy = GreylistPolicy(delay=60, window=3600, expiry=86400, awl_passes=0)
    for recipient in ("alice@example.com", "carol@other.org", "eve@notexample.com"):
        greylist.consult("192.0.2.0/24", "news@elsewhere.test", recipient, policy)
    for _ in range(3):
        harvest.record_refusal(store, HARVESTER, HarvestPolicy(3, 900, 3600, reject=False))
    yield store
    store.close()


def test_domain_admin_sees_greylisting_of_mail_to_their_domains_only(defenses, dora):
    page = dora.get("/defenses")
    assert page.status == 200
    assert "alice@example.com" in page.body
    assert "carol@other.org" not in page.body and "notexample.com" not in page.body
    assert HARVESTER not in page.body and "/defenses/" not in page.body   # no actions


def test_domain_admin_of_an_idn_domain_sees_its_greylisting_in_either_spelling(
        web, defenses, dora):
    policy = GreylistPolicy(delay=60, window=3600, expiry=86400, awl_passes=0)
    for recipient in ("ulla@bücher.example", "bert@xn--bcher-kva.example",
                      "kurt@BÜCHER.example"):
        Greylist(defenses).consult("192.0.2.0/24", "news@elsewhere.test", recipient, policy)
    web.gateway.cli("domain", "add", "bücher.example", "--mail-host", "192.0.2.28")
    web.gateway.cli("user", "add", "bea", "--role", "domain", "--domain", "bücher.example",
                    "--password-stdin", input=PASSWORD + "\n")
    bea = web.client()
    try:
        assert bea.login("bea", PASSWORD).status == 303
        page = bea.get("/defenses").body
        assert all(r in page for r in ("ulla@bücher.example", "bert@xn--bcher-kva.example",
                                       "kurt@bücher.example"))
        assert "alice@example.com" not in page and "carol@other.org" not in page
        theirs = dora.get("/defenses").body
        assert "alice@example.com" in theirs and "bücher" not in theirs
        assert "bcher" not in theirs
    finally:
        web.gateway.cli("user", "remove", "bea")
        web.gateway.cli("domain", "remove", "xn--bcher-kva.example")


@pytest.mark.parametrize(("action", "form"), [
    ("/defenses/greylist/forget", {"client": "all"}),
    ("/defenses/greylist/forget", {"client": "192.0.2.0/24"}),
    ("/defenses/harvest/unblock", {"ip": HARVESTER}),
])
def test_domain_admin_cannot_forget_or_unblock(web, defenses, dora, action, form):
    reply = dora.post(action, {**form, "csrf_token": dora.get("/defenses").csrf()})
    assert reply.status == 403
    assert len(Greylist(defenses).entries()) == 3
    assert harvest.blocked_until(defenses, HARVESTER) is not None


def test_forget_and_unblock_without_the_csrf_token_are_refused(defenses, admin):
    assert admin.post("/defenses/greylist/forget", {"client": "all"}).status == 403
    assert admin.post("/defenses/harvest/unblock", {"ip": HARVESTER}).status == 403
    assert len(Greylist(defenses).entries()) == 3
    assert harvest.blocked_until(defenses, HARVESTER) is not None


def test_super_admin_forgets_a_network_and_unblocks_a_harvester(defenses, admin):
    page = admin.get("/defenses")
    assert all(r in page.body for r in ("alice@example.com", "carol@other.org", HARVESTER))
    bad = admin.submit("/defenses", "/defenses/greylist/forget", {"client": "not-an-ip"})
    assert bad.status == 400 and "is not an IP address or CIDR network" in bad.body
    reply = admin.submit("/defenses", "/defenses/greylist/forget", {"client": "192.0.2.77"})
    assert reply.status == 303
    assert "3 greylist entries of 192.0.2.0/24 forgotten." in admin.get("/defenses").body
    assert Greylist(defenses).entries() == []
    reply = admin.submit("/defenses", "/defenses/harvest/unblock", {"ip": HARVESTER})
    assert reply.status == 303 and harvest.clients(defenses) == []
    again = admin.submit("/defenses", "/defenses/harvest/unblock", {"ip": HARVESTER})
    assert again.status == 404 and f"{HARVESTER} is not counted or blocked." in again.body


def test_guessing_the_current_password_is_throttled_as_logins_are(web):
    web.gateway.cli("user", "add", "guessed", "--role", "super", "--password-stdin",
                    input=PASSWORD + "\n")
    client = web.client()
    assert client.login("guessed", PASSWORD).status == 303
    token = client.get("/account").csrf()
    change = {"password": "a new long passphrase", "password2": "a new long passphrase",
              "csrf_token": token}
    statuses = [client.post("/account/password", {**change, "current": f"guess {n}"}).status
                for n in range(6)]
    assert statuses[:5] == [403] * 5 and statuses[5] == 429, statuses
    right = client.post("/account/password", {**change, "current": PASSWORD})
    assert right.status == 429       # even the right one, until the wait is over


def test_archive_times_name_their_time_zone(web, admin):
    # The appliance runs on UTC unless told otherwise; an administrator elsewhere
    # comparing with their own servers' logs must not be an hour or five off.
    message_id = archive_message(web, ["alice@example.com"], subject="zoned")
    received = Archive(open_store(web.gateway.state_dir),
                       web.gateway.state_dir / "archive").get(message_id).received
    shown = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(received))
    assert f"{shown} (inbound)" in admin.get(f"/archive/{message_id}").body
    listing = admin.get("/archive?subject=zoned").body
    zone = time.strftime("%Z")
    assert shown in listing and f"From ({zone})" in listing and f"Until ({zone})" in listing


def test_an_archive_offset_beyond_any_number_is_no_error(admin):
    assert admin.get("/archive?offset=" + "9" * 30).status == 200


def test_failures_from_elsewhere_do_not_lock_out_a_browser_that_logged_in_before(web):
    from portcullis.accounts import throttle
    web.gateway.cli("user", "add", "lockme", "--role", "super", "--password-stdin",
                    input=PASSWORD + "\n")
    known = web.client()
    assert known.login("lockme", PASSWORD).status == 303
    known.post("/logout", {"csrf_token": known.get("/").csrf()})
    store = open_store(web.gateway.state_dir)
    for n in range(throttle.LIMITS["user"]):          # a botnet guessing lockme's password
        throttle.record_failure(store, "lockme", f"198.51.100.{n}")
    assert web.client().login("lockme", PASSWORD).status == 429   # a new browser waits
    assert known.login("lockme", PASSWORD).status == 303          # the admin's does not


def test_a_new_password_voids_the_device_cookies_of_every_other_browser(web):
    from portcullis.accounts import throttle
    web.gateway.cli("user", "add", "moved", "--role", "super", "--password-stdin",
                    input=PASSWORD + "\n")
    former, own = web.client(), web.client()      # a former holder of the password; the admin
    assert former.login("moved", PASSWORD).status == own.login("moved", PASSWORD).status == 303
    new = PASSWORD + "-new"
    reply = own.post("/account/password", {"current": PASSWORD, "password": new,
                                           "password2": new,
                                           "csrf_token": own.get("/account").csrf()})
    assert reply.status == 303
    own.post("/logout", {"csrf_token": own.get("/").csrf()})
    store = open_store(web.gateway.state_dir)
    for n in range(throttle.LIMITS["user"]):          # guesses at the name from elsewhere
        throttle.record_failure(store, "moved", f"198.51.100.{n}")
    assert former.login("moved", new).status == 429   # its cookie no longer vouches for it
    assert own.login("moved", new).status == 303      # the browser that changed it still does
