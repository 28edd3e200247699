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


def delivery(client: HttpClient, message_id: str) -> str:
    page = client.get(f"/archive/{message_id}").body
    found = re.search(r'<td id="message-delivery">(.*?)</td>', page, re.S)
    assert found, page[-2000:]
    return html.unescape(found.group(1))


def test_a_domain_admin_is_not_told_which_other_administrator_released_a_message(
        web, admins):
    root, dora, olga = admins["root"], admins["dora"], admins["olga"]
    shared = archive_message(web, ["alice@example.com", "carol@other.org"])
    release(olga, shared)                      # carol's copy, by other.org's administrator
    assert delivery(dora, shared) == ""        # other.org's release is nothing of hers
    assert "olga" not in dora.get(f"/archive/{shared}").body
    assert delivery(olga, shared) == delivery(root, shared) == \
        "released by olga: delivered to carol@other.org"
    release(root, shared)                      # alice's, by the super administrator
    assert delivery(dora, shared) == \
        "released by an administrator: delivered to alice@example.com"
    assert "by root" not in dora.get(f"/archive/{shared}").body
    assert delivery(olga, shared) == ""
    assert delivery(root, shared) == "released by root: delivered to alice@example.com"
    release(dora, shared, again=True)           # her own release names her
    assert delivery(dora, shared) == "released by dora: delivered to alice@example.com"


def test_a_failed_release_in_another_domain_tells_a_domain_admin_nothing(web, admins):
    # Neither who tried, nor what other.org's internal host answered for its recipient.
    shared = archive_message(web, ["alice@example.com", "refused.carol@other.org"])
    assert release(admins["olga"], shared) == [
        "Release failed: refused.carol@other.org: 550 5.1.1 no such user"]
    assert delivery(admins["dora"], shared) == ""
    assert "no such user" not in admins["dora"].get(f"/archive/{shared}").body
    assert delivery(admins["olga"], shared) == ("release by olga failed:"
                                                " refused.carol@other.org: 550 5.1.1 no"
                                                " such user")
    # The super administrator's release of both: each domain reads its own part.
    assert release(admins["root"], shared, again=True) == [
        "Release failed: delivered to alice@example.com; refused.carol@other.org: refused"
        " by the internal host"]
    assert delivery(admins["dora"], shared) == ("released by an administrator:"
                                                " delivered to alice@example.com")
    assert delivery(admins["olga"], shared) == ("release by an administrator failed:"
                                                " refused.carol@other.org: refused by the"
                                                " internal host")


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


def test_the_recipient_validation_symbol_of_another_domains_recipient_is_not_shown(
        web, admins):
    # Real gateway output, not a made-up archive row: one transaction to both domains
    # (one internal host), neither validated, so each recipient gets RCPT_NOT_VALIDATED
    # naming it; the tie is judged for the first, the other domain's recipient, and its
    # symbol is the one archived with the message (naming its recipient).
    from tests.integration.test_gateway import message, send

    gateway = web.gateway
    for domain in ("example.com", "other.org"):
        gateway.cli("domain", "set", domain, "--smtp-validation", "off",
                    "--reject-non-validated", "off")
    gateway.start()
    try:
        assert send(gateway, "news@sender.org", ["Hidden.Bcc@other.org", "alice@example.com"],
                    message("validation isolation")) == {}
    finally:
        gateway.stop()
        for domain in ("example.com", "other.org"):
            gateway.cli("domain", "set", domain, "--smtp-validation", "on",
                        "--reject-non-validated", "on")
    [found] = gateway.archive(subject="validation isolation")
    symbols = {s["reason"] for s in gateway.cli_json("archive", "show", found["id"])["symbols"]}
    assert "recipient Hidden.Bcc@other.org could not be validated" in symbols
    dora, olga = admins["dora"], admins["olga"]
    for path in (f"/archive/{found['id']}", "/log", "/archive?subject=validation", "/"):
        page = dora.get(path)
        assert page.status == 200 and "alice@example.com" in page.body, path
        assert "hidden.bcc" not in page.body.lower(), path
    # The symbol is the other domain's recipient's finding: dora sees its score only.
    page = dora.get(f"/archive/{found['id']}").body
    assert "could not be validated" not in page and "RCPT_NOT_VALIDATED" not in page
    assert 'id="symbols-elsewhere"' in page and "+1.00" in page
    page = olga.get(f"/archive/{found['id']}").body
    assert "recipient Hidden.Bcc@other.org could not be validated" in page
    assert "alice@example.com" not in page


def test_a_domain_admin_cannot_release_a_message_rejected_as_a_virus(web, admins):
    from portcullis.checks.virus import virus_symbol

    virus = archive_message(web, ["alice@example.com"], reason="Virus: Eicar-Signature",
                            symbols=(virus_symbol("Eicar-Signature"),))
    dora, root = admins["dora"], admins["root"]
    page = dora.get(f"/archive/{virus}")
    assert 'id="release"' not in page.body and 'id="release-virus"' in page.body
    # The server refuses a hand-made post as well, and nothing is delivered.
    reply = dora.post(f"/archive/{virus}/release", {"csrf_token": page.csrf()})
    assert reply.status == 303
    assert "only the super administrator may release it" in dora.get(reply.location).body
    assert "released" not in delivery(root, virus)
    # Nor may she download it: the .eml would hand her the virus as a release does.
    assert f"/archive/{virus}/raw" not in page.body
    assert dora.get(f"/archive/{virus}/raw").status == 403
    assert root.get(f"/archive/{virus}/raw").status == 200
    assert release(root, virus) == ["Released: delivered to alice@example.com"]


def test_another_copy_one_domain_admin_sends_is_nothing_to_the_other_domain(web, admins):
    dora, olga = admins["dora"], admins["olga"]
    shared = archive_message(web, ["alice@example.com", "carol@other.org"],
                             verdict=Verdict.ACCEPT, delivery="250 2.0.0 Ok: queued as 4F2A")
    assert release(dora, shared, again=True) == ["Released: delivered to alice@example.com"]
    page = olga.get(f"/archive/{shared}").body
    assert "Released" not in page and 'id="release"' not in page
    assert delivery(olga, shared) == delivery(dora, shared) == "250 2.0.0 Ok: queued as 4F2A"
    assert "Released" in dora.get(f"/archive/{shared}").body
    # carol had it when it came: a release by other.org's administrator is another copy.
    assert release(olga, shared) == ["This message was delivered when it arrived; release"
                                     " it again to send another copy."]
