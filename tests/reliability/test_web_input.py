"""Hostile input to every page of the web UI (hypothesis): any route, as nobody, a domain
administrator or the super administrator, with a valid CSRF token, posting or asking
with any fields, text, markup and bytes that are not UTF-8.

The real application runs in-process (WSGI, as waitress calls it) on a real store.  What
must hold for every request: a clear answer and never an internal error, whatever was sent
is shown escaped, and a domain administrator changes nothing of another domain.  The
appliance's own parts behind the server page (firewall, ClamAV, updates) are left out:
their providers are absent, as on a machine without them.
"""

from __future__ import annotations

import io
import re
import time
import wsgiref.util
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portcullis import config as configuration
from portcullis.accounts import sessions, users
from portcullis.directory import domains, valid_addresses
from portcullis.directory.settings import SETTINGS
from portcullis.policy import Decision, Symbol, Verdict
from portcullis.services import Services
from portcullis.web.app import WebApp
from portcullis.web.providers import Providers
from tests.support.soak import scaled

pytestmark = [pytest.mark.reliability, pytest.mark.webui]

MARKUP = '<x-hostile a="1">'          # must never come back as markup
ANSWERS = {200, 303, 400, 401, 403, 404, 405, 413, 429}
FIELDS = ["address", "addresses", "client", "code", "confirm", "current", "domains", "entry",
          "filter", "freshclam", "grep", "ip", "lines", "mail_host", "minutes", "name",
          "network", "next", "note", "offset", "password", "range", "reload", "replace",
          "role", "since", "until", "username", "verdict", "sender", "recipient",
          "subject", "client_ip", *SETTINGS]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "on", "off", "0", "-1", "1e309", "nan", "9" * 40, "example.com",
                     "other.org", "dora", "root", "super", "domain", "192.0.2.0/24",
                     "::1", "a@other.org", "b@example.com", "2026-11-30T10:00", "24h",
                     "../../etc/passwd", "%00", "\x00", MARKUP, "x" * 5000]))
# A message in the archive for each domain (the id is the URL's).
MESSAGES = {"example.com": "20261130T100000-0123456789",
            "other.org": "20261130T100001-abcdefabcd"}
# Where releases go: a closed port on loopback (a test talks to nothing else).
MAIL_HOST = "127.0.0.1:9"
_NAMES = st.sampled_from(["example.com", "other.org", "root", "dora", *MESSAGES.values(),
                          "black", "white", "no-such-thing", MARKUP])
# Mostly names the routes know (else most requests would end at "no such page").
PATH_VALUES = st.one_of(_NAMES, _NAMES, st.text(min_size=1, max_size=20),
                        st.binary(min_size=1, max_size=8))
_PARAMETER = re.compile(r"<[^<>]+>")


def _routes() -> list[tuple[str, str]]:
    app = WebApp.__new__(WebApp)              # the routing table only: no services needed
    routes: list[tuple[str, str]] = []
    app.page = lambda path, method="GET", access=None: (  # type: ignore[method-assign]
        lambda handler: routes.append((method, path)) or handler)
    from portcullis.web.pages import PAGES
    for module in PAGES:
        module.register(app)
    return routes


ROUTES = _routes()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    directory = tmp_path_factory.mktemp("web-input")
    config = configuration.parse({"smtp": {"listen": "127.0.0.1:2525"},
                                  "web": {"listen": "127.0.0.1:8080"},
                                  "store": {"dir": str(directory)}})
    services = Services.open(config)
    _restore(services.store)
    for domain, message_id in MESSAGES.items():
        content = (f"From: {MARKUP}@example.net\r\nSubject: {MARKUP}\r\n\r\n"
                   f"body {MARKUP}\r\n").encode()
        services.archive.index(
            message_id=message_id, received=time.time(), direction="inbound",
            client_ip="192.0.2.99", helo=MARKUP, mail_from=f"{MARKUP}@example.net",
            recipients=[f"someone@{domain}"], subject=MARKUP,
            decision=Decision(Verdict.REJECT, 100.0, MARKUP, (Symbol("X", 100.0, MARKUP),)),
            size=len(content), path=services.archive.write_body(message_id, content))
    app = WebApp(services, Providers(services, {})).wsgi()
    yield services, app
    services.close()


def _restore(store) -> None:
    """The two domains, their administrators and one valid address each, as they were
    before an earlier example's super administrator changed or removed them."""
    for name, host in (("example.com", MAIL_HOST), ("other.org", MAIL_HOST)):
        if domains.get_domain(store, name) is None:
            domains.add_domain(store, name, host)
        domains.update_domain(store, name, mail_host=host)
        valid_addresses.import_addresses(store, name, f"someone@{name}")
    for name, role, names in (("root", users.SUPER, ()), ("dora", users.DOMAIN,
                                                           ("example.com",))):
        if users.get_user(store, name) is None:
            users.add_user(store, name, role, names, password="correct horse battery")
        elif role == users.DOMAIN:
            users.set_domains(store, name, names)


def _other_domain(store) -> tuple:
    """What a domain administrator of example.com must never change."""
    return (store.query("SELECT * FROM domains WHERE name = 'other.org'"),
            store.query("SELECT * FROM valid_addresses WHERE domain = 'other.org'"
                        " ORDER BY address"),
            store.query("SELECT released, delivery FROM archive WHERE id = ?",
                        (MESSAGES["other.org"],)))


def _request(app, method: str, path: str, query: bytes = b"", body: bytes | None = None,
             cookie: str = "") -> tuple[int, list[tuple[str, str]], str]:
    environ: dict = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query.decode("ascii"),
                   HTTP_COOKIE=cookie)
    if body is not None:
        environ.update(CONTENT_LENGTH=str(len(body)),
                       CONTENT_TYPE="application/x-www-form-urlencoded",
                       **{"wsgi.input": io.BytesIO(body)})
    started: list = []
    reply = b"".join(app(environ, lambda status, headers, exc=None: started.append(
        (status, headers))))
    status, headers = started[0]
    return int(status.split()[0]), headers, reply.decode("utf-8")


def _path(rule: str, values: list[str | bytes]) -> str:
    # WSGI's PATH_INFO is the URL path percent-decoded and read as latin-1.
    parts = iter(values)
    return _PARAMETER.sub(lambda _: quote(next(parts), safe="").replace("%", "%25"),
                          rule).encode("latin-1", "replace").decode("latin-1")


@settings(max_examples=scaled(300), suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.data_too_large])
@given(route=st.sampled_from(ROUTES), who=st.sampled_from([None, "root", "dora"]),
       path_values=st.lists(PATH_VALUES, min_size=2, max_size=2),
       fields=st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=8), VALUES),
                       max_size=8),
       # One request in four carries a field that is not UTF-8 (it ends at a 400).
       not_utf8=st.one_of(st.none(), st.none(), st.none(),
                          st.tuples(st.sampled_from(FIELDS), st.binary(min_size=1, max_size=8))))
@example(route=("POST", "/login"), who=None, path_values=["x", "x"],
         fields=[("password", "x")], not_utf8=("username", b"\xff\xfe"))
@example(route=("GET", "/domains/<name>"), who="dora", path_values=["example.com", "x"],
         fields=[], not_utf8=("filter", b"\xff"))
@example(route=("POST", "/domains/<name>/addresses"), who="dora",
         path_values=["other.org", "x"], fields=[("addresses", "x@other.org")],
         not_utf8=None)
@example(route=("POST", "/archive/<message_id:re:[0-9A-Za-z-]{1,64}>/release"), who="dora",
         path_values=[MESSAGES["other.org"], "x"], fields=[], not_utf8=None)
def test_any_request_to_any_page_gets_a_clear_answer_escaped_and_isolated(
        web, route, who, path_values, fields, not_utf8):
    services, app = web
    store = services.store
    _restore(store)
    cookie = ""
    pairs: list[tuple[str, str | bytes]] = [*fields, *([not_utf8] if not_utf8 else [])]
    if who is not None:
        token, session = sessions.create_session(store, who, "127.0.0.1")
        cookie = f"portcullis_session={token}"
        pairs.append(("csrf_token", session.csrf))
    else:
        # As a browser would: the login form's token, and the cookie it belongs to.
        _, headers, page = _request(app, "GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page[-2000:]
        pairs.append(("csrf_token", token.group(1)))
        cookie = next(v.split(";")[0] for k, v in headers
                      if k.lower() == "set-cookie" and v.startswith("portcullis_form="))
    method, rule = route
    encoded = urlencode(pairs).encode("ascii")
    before = _other_domain(store)
    status, _, body = _request(app, method, _path(rule, path_values),
                            encoded if method == "GET" else b"",
                            encoded if method == "POST" else None, cookie)
    assert status in ANSWERS, (status, body[-2000:])
    assert "<x-hostile" not in body
    if who == "dora":
        assert _other_domain(store) == before, "a domain administrator changed other.org"

