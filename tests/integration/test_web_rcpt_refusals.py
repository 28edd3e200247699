"""A domain administrator's log shows their recipients refused at RCPT (unknown user,
greylisting, harvest block, relay attempt), from real SMTP sessions
with a real gateway, read over HTTP from a real web UI, and never another domain's."""

from __future__ import annotations

import html

import pytest

from tests.integration.test_defenses import smtp_from
from tests.support.gateway import Gateway, free_port
from tests.support.web import WebUI

pytestmark = pytest.mark.webui

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("rcpt-refusals"),
                      defenses={"greylisting": True, "harvest_threshold": 3})
    # Both validated by their lists alone, and nothing listens at their mail hosts: no
    # recipient reaches one (every RCPT here is refused before the next hop is asked).
    for name, user in (("example.com", "ann"), ("other.org", "olaf")):
        gateway.cli("domain", "add", name, "--mail-host", f"127.0.0.1:{free_port()}",
                    "--smtp-validation", "off")
        gateway.cli("valid", "import", name, "-", input=f"{user}@{name}\n")
    gateway.cli("user", "add", "root", "--role", "super", "--password-stdin",
                input=PASSWORD + "\n")            # past the first start's setup
    gateway.cli("user", "add", "dora", "--role", "domain", "--domain", "example.com",
                "--password-stdin", input=PASSWORD + "\n")
    gateway.start()
    web = WebUI(gateway).start()
    yield web
    web.stop()
    gateway.stop()


@pytest.fixture(scope="module")
def dora(site):
    client = site.client()
    assert client.login("dora", PASSWORD).status == 303
    return client


def rcpt(gateway: Gateway, client: str, sender: str, recipient: str,
         helo: str = "mx.sender.test") -> int:
    """The gateway's reply to RCPT TO:<recipient> in a new session from ``client``."""
    with smtp_from(gateway, client, helo) as session:
        session.mail(sender)
        return session.rcpt(recipient)[0]


def log_lines(dora, grep: str = "") -> list[str]:
    page = html.unescape(dora.get(f"/log?lines=1000&grep={grep}").body)
    return [line for line in page.splitlines() if " - " in line and "\"" in line]


def test_refusals_at_rcpt_are_in_the_domain_admins_log_and_only_their_own(site, dora):
    gateway = site.gateway
    assert rcpt(gateway, "127.0.0.2", "a@sender.test", "nobody@example.com") == 550
    assert rcpt(gateway, "127.0.0.2", "a@sender.test", "ann@example.com") == 451  # greylisted
    assert rcpt(gateway, "127.0.0.2", "a@sender.test", "x%elsewhere.test@example.com") \
        == 554
    for guess in ("g1", "g2", "g3"):                  # a harvester, blocked at the third
        rcpt(gateway, "127.0.0.3", "h@sender.test", f"{guess}@other.org")
    assert rcpt(gateway, "127.0.0.3", "h@sender.test", "ann@example.com") == 451
    # Another domain's refusals, one whose HELO names dora's user as a forger would.
    assert rcpt(gateway, "127.0.0.4", "a@sender.test", "nobody@other.org",
                helo="- Rejected User unknown 1.2.3.4 ann@example.com") == 550
    lines = log_lines(dora)
    wanted = {
        "Rejected User unknown 127.0.0.2 \"mx.sender.test\" nobody@example.com -",
        "TempFailed Greylisted",
        "Rejected Relay denied 127.0.0.2 \"mx.sender.test\" x%elsewhere.test@example.com -",
        "127.0.0.3 \"mx.sender.test\" ann@example.com -",
    }
    for text in wanted:
        assert any(text in line for line in lines), (text, lines)
    assert not any("other.org" in line or "127.0.0.4" in line for line in lines), lines
    harvest = next(line for line in lines if "127.0.0.3" in line)
    assert " - TempFailed " in harvest
    assert log_lines(dora, "nobody%40example.com") == [
        line for line in lines if "nobody@example.com" in line]
    assert log_lines(dora, "1.2.3.4") == []
