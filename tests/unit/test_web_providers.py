"""Panels fed by other parts of the appliance, through the provider interface.

The provider functions here stand where ``portcullis.antivirus``, ``portcullis.update``
and ``portcullis.reputation`` plug in (returning those packages' own types, so their
states can be chosen: a failing list, an absent firewall); the pages are rendered by the
real application in-process (WSGI), as waitress would call it.
"""

from __future__ import annotations

import io
import wsgiref.util
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from portcullis import config as configuration
from portcullis.accounts import sessions, users
from portcullis.antivirus import ClamavStatus, DatabaseFile
from portcullis.firewall import FirewallStatus, SetEntry
from portcullis.reputation import Standing
from portcullis.services import Services
from portcullis.update import UpdateAttempt
from portcullis.web.app import create_app
from portcullis.web.providers import Provider, Providers, panel, plain

pytestmark = pytest.mark.webui

HERE = __name__


@dataclass
class ClamdStatus:
    reachable: bool
    engine_version: str
    signature_version: int
    database_date: float


def clamav_status(config):
    assert config.store.dir.is_dir()
    return ClamavStatus(enabled=True, address="/run/clamav/clamd.ctl", reachable=True,
                        engine="1.0.7", signature_version=27000,
                        signature_date="Thu Nov 14 08:26:36 2024",
                        databases=[DatabaseFile("daily.cld", "official", 70_000_000,
                                                1_790_000_000.0, 27000, 2_071_000,
                                                "14 Nov 2024 08:26 -0500")])


async def update_history(store, limit=50):
    return [UpdateAttempt(7, 1_790_000_000.0, 1_790_000_100.0, "207.219.44.10", "app",
                          "0.1.1", "0.1.0", "applied", "", "45006e61c6b6a264", "ab" * 32,
                          123_456)][:limit]


def top_spammers(store, limit):
    return [Standing(f"203.0.113.{i}", 100.0 - i, 99.0 - i, 0.0, 0.0, 0.0, 1_790_000_000.0,
                     1_790_000_100.0) for i in range(1, limit + 1)][:3]


def top_legitimate(services):
    raise RuntimeError("reputation store is busy")


BLOCKED: dict[str, int | None] = {}


def firewall_status(config):
    return FirewallStatus(loaded=True, ssh_blocked=[SetEntry(a, e) for a, e in BLOCKED.items()],
                          scanners=[SetEntry("192.0.2.66", None)])


def firewall_block(config, address, minutes=None):
    BLOCKED[address] = int((minutes or 60) * 60)
    return SetEntry(address, BLOCKED[address])


def firewall_unblock(config, address):
    if BLOCKED.pop(address, "absent") == "absent":
        raise ValueError(f"{address} is not blocked")
    return [address]


TABLE = {
    "clamav_status": Provider("clamav_status", HERE, "clamav_status", ""),
    "update_history": Provider("update_history", HERE, "update_history", ""),
    "top_spammers": Provider("top_spammers", HERE, "top_spammers", ""),
    "top_legitimate": Provider("top_legitimate", HERE, "top_legitimate", ""),
    "firewall_status": Provider("firewall_status", "portcullis.no_such_module", "status", ""),
}
FIREWALL = {key: Provider(key, HERE, key, "") for key in
            ("firewall_status", "firewall_block", "firewall_unblock")}


@pytest.fixture
def services(tmp_path):
    config = configuration.parse({"smtp": {"listen": "127.0.0.1:2525"},
                                  "web": {"listen": "127.0.0.1:8080"},
                                  "store": {"dir": str(tmp_path)}})
    services = Services.open(config)
    yield services
    services.close()


def get(app, path, cookie, form=None):
    environ: dict = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, HTTP_COOKIE=cookie, REQUEST_METHOD="GET")
    if form is not None:
        body = urlencode(form).encode()
        environ.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body)),
                       CONTENT_TYPE="application/x-www-form-urlencoded",
                       **{"wsgi.input": io.BytesIO(body)})
    replies = []
    body = b"".join(app(environ, lambda status, headers, exc=None: replies.append(status)))
    return replies[0], body.decode()


def super_cookie(services):
    users.add_user(services.store, "root", users.SUPER, password="correct horse battery")
    token, _ = sessions.create_session(services.store, "root", "127.0.0.1")
    return f"portcullis_session={token}"


def test_provider_arguments_are_given_by_name_and_results_made_plain(services):
    providers = Providers(services, TABLE)
    status = panel(providers, "clamav_status")
    assert status.state == "ok" and status.data["signature_version"] == 27000
    history = panel(providers, "update_history", limit=1)      # a coroutine function
    assert history.state == "ok" and history.data[0]["outcome"] == "applied"
    assert len(panel(providers, "top_spammers", limit=50).data) == 3


def test_absent_and_failing_providers_are_reported_not_raised(services):
    providers = Providers(services, TABLE)
    assert panel(providers, "firewall_status").state == "absent"
    assert not providers.available("firewall_status")
    failed = panel(providers, "top_legitimate")
    assert failed.state == "failed" and "reputation store is busy" in failed.error
    assert panel(providers, "no_such_panel").state == "absent"


def test_plain_turns_objects_into_dicts_and_lists():
    assert plain([ClamdStatus(False, "x", 1, 0.0)]) == [
        {"reachable": False, "engine_version": "x", "signature_version": 1,
         "database_date": 0.0}]
    assert plain({"when": {1, 2}.__class__.__name__}) == {"when": "set"}


def test_reports_page_draws_top_spammers_and_reports_a_failing_list(services):
    app = create_app(services, Providers(services, TABLE))
    status, body = get(app, "/reports", super_cookie(services))
    assert status.startswith("200")
    assert "203.0.113.1" in body and "<svg" in body
    assert body.count('<td class="num connections">') == 3 and "99%" in body
    assert "reputation store is busy" in body


def test_server_page_shows_provided_panels_and_says_what_is_absent(services):
    app = create_app(services, Providers(services, TABLE))
    status, body = get(app, "/server", super_cookie(services))
    assert status.startswith("200")
    assert "ClamAV 1.0.7" in body and "daily 27000 of Thu Nov 14 08:26:36 2024" in body
    assert "<td><code>daily.cld</code></td><td>official (freshclam)</td>" in body
    assert "2071000" in body and "66.8 MiB" in body
    assert "applied" in body and "app 0.1.1 (was 0.1.0)" in body
    assert "Not available on this system." in body       # firewall


def test_a_panel_of_an_unexpected_shape_is_still_shown_as_a_table(services):
    app = create_app(services, Providers(services, {**TABLE, "clamav_status": Provider(
        "clamav_status", HERE, "older_clamav_status", "")}))
    _, body = get(app, "/server", super_cookie(services))
    assert "engine version" in body and "ClamAV 0.103" in body


def older_clamav_status():
    return ClamdStatus(True, "ClamAV 0.103", 26000, 1_700_000_000.0)



def test_firewall_panel_lists_blocks_and_blocks_and_unblocks_through_the_provider(services):
    users.add_user(services.store, "root", users.SUPER, password="correct horse battery")
    token, session = sessions.create_session(services.store, "root", "127.0.0.1")
    cookie = f"portcullis_session={token}"
    app = create_app(services, Providers(services, FIREWALL))
    status, _ = get(app, "/server/firewall/block", cookie,
                    {"address": "198.51.100.9", "minutes": "30", "csrf_token": session.csrf})
    assert status.startswith("303") and BLOCKED["198.51.100.9"] == 1800
    _, body = get(app, "/server", cookie)
    assert "198.51.100.9" in body and "30 min" in body and "192.0.2.66" in body
    assert "198.51.100.9 is blocked from SSH." in body
    status, _ = get(app, "/server/firewall/unblock", cookie,
                    {"address": "198.51.100.9", "csrf_token": session.csrf})
    assert status.startswith("303") and "198.51.100.9" not in BLOCKED
    get(app, "/server/firewall/unblock", cookie,
        {"address": "198.51.100.9", "csrf_token": session.csrf})
    _, body = get(app, "/server", cookie)
    assert "Could not unblock 198.51.100.9: ValueError: 198.51.100.9 is not blocked" in body


@pytest.mark.parametrize("minutes", ["nan", "inf", "-inf", "1e999", "NaN", "0", "-5",
                                     "10081", "1.5", "abc", "9" * 5000])
def test_a_block_time_that_is_no_number_of_minutes_in_range_blocks_nothing(services,
                                                                         minutes):
    # float() read "nan" and "inf", and "0" or "abc" became the default block: each
    # blocked the address (or tried to) for a time nobody asked for.
    cookie = super_cookie(services)
    csrf = sessions.load_session(services.store, cookie.split("=", 1)[1]).csrf
    app = create_app(services, Providers(services, FIREWALL))
    BLOCKED.clear()
    status, _ = get(app, "/server/firewall/block", cookie,
                    {"address": "198.51.100.7", "minutes": minutes, "csrf_token": csrf})
    assert status.startswith("303") and BLOCKED == {}
    _, body = get(app, "/server", cookie)
    assert "Could not block 198.51.100.7: minutes: must be a whole number from 1 to 10080" \
        in body
    # Left empty, the configured time is used (the provider's default here).
    get(app, "/server/firewall/block", cookie,
        {"address": "198.51.100.7", "minutes": " ", "csrf_token": csrf})
    assert BLOCKED == {"198.51.100.7": 3600}


def test_the_firewall_package_provides_what_the_panel_calls(services):
    providers = Providers(services)
    for key in ("firewall_status", "firewall_block", "firewall_unblock"):
        function = providers.function(key)
        assert function is not None, key
        providers._arguments(function, {"address": "192.0.2.1", "minutes": 5})


def test_every_panel_of_this_build_has_its_provider(services):
    # A renamed function must not silently turn a panel into "not available".
    from portcullis.web.providers import PROVIDERS

    providers = Providers(services)
    for key in PROVIDERS:
        function = providers.function(key)
        assert function is not None, f"{key}: {PROVIDERS[key].module}.{PROVIDERS[key].function}"
        providers._arguments(function, {"address": "192.0.2.1", "minutes": 5, "limit": 50})
