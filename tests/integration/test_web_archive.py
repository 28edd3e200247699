"""The archive's message page and Release in a real ``portcullis web``, as three
administrators see them: the super administrator, dora (example.com) and olga
(other.org), the two domains' mail going to one internal host on loopback."""

from __future__ import annotations

import html
import re

import pytest

from portcullis.policy import Verdict
from tests.integration.test_web_http import PASSWORD, archive_message
from tests.support.gateway import Gateway
from tests.support.web import HttpClient, WebUI
from tests.unit.test_archive import running_sink

pytestmark = pytest.mark.webui

USERS = {"root": ("super", []), "dora": ("domain", ["example.com"]),
         "olga": ("domain", ["other.org"])}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with running_sink() as (_sink, port):
        gateway = Gateway(tmp_path_factory.mktemp("web-archive"))
        web = WebUI(gateway).start()
        try:
            for domain in ("example.com", "other.org"):
                gateway.cli("domain", "add", domain, "--mail-host", f"127.0.0.1:{port}")
            for name, (role, domains) in USERS.items():
                gateway.cli("user", "add", name, "--role", role,
                            *[arg for d in domains for arg in ("--domain", d)],
                            "--password-stdin", input=PASSWORD + "\n")
            yield web
        finally:
            web.stop()


@pytest.fixture(scope="module")
def admins(web) -> dict[str, HttpClient]:
    clients = {name: web.client() for name in USERS}
    for name, client in clients.items():
        assert client.login(name, PASSWORD).status == 303
    return clients


def release(client: HttpClient, message_id: str, again: bool = False) -> list[str]:
    """Release from the message page as a browser would; the messages flashed."""
    form = {"again": "1"} if again else {}
    reply = client.submit(f"/archive/{message_id}", f"/archive/{message_id}/release", form)
    assert reply.status == 303, reply.body[-500:]
    page = client.get(reply.location).body
    return [html.unescape(text) for text in
            re.findall(r'<p class="flash flash-\w+" role="status">(.*?)</p>', page, re.S)]


def test_what_a_release_refuses_is_said_in_the_administrators_language(web, admins):
    dora = admins["dora"]
    kept = archive_message(web, ["alice@example.com"])
    assert release(dora, kept) == ["Released: delivered to alice@example.com"]
    # Release's own English named the message by its id; the page says which it is.
    assert release(dora, kept) == ["This message was already released to alice@example.com;"
                                   " release it again to send another copy."]
    taken = archive_message(web, ["alice@example.com"], verdict=Verdict.ACCEPT,
                            delivery="250 2.0.0 Ok: queued")
    assert release(dora, taken) == ["This message was delivered when it arrived; release it"
                                    " again to send another copy."]
