"""What the archive and Release say in the web UI: in the administrator's language.

Release (``archive/release.py``) and the archive say it in English, for the CLI and the
store; the web pages show it through the message catalogue.  Each refusal and outcome is
made for real here and shown in a language whose every message is marked, so text that
bypassed the catalogue stands out.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from types import SimpleNamespace

import pytest

from portcullis.accounts.users import DOMAIN, User
from portcullis.archive import ArchiveError
from portcullis.archive.release import release
from portcullis.checks.virus import virus_symbol
from portcullis.directory.domains import add_domain, remove_domain
from portcullis.policy import Verdict
from portcullis.web import i18n
from portcullis.web.app import RequestContext
from portcullis.web.pages.archive import archive_error, release_outcome, shown_outcome
from tests.unit.test_archive import mail_services, put, running_sink

pytestmark = pytest.mark.webui


@pytest.fixture
def services(tmp_path):
    """Services whose domains' internal mail host is a real one on loopback."""
    with running_sink() as (_sink, port), mail_services(tmp_path, port) as services:
        yield services


@pytest.fixture
def marked():
    """A language whose every message is marked: text not from the catalogue shows."""
    english = json.loads((i18n.LOCALE_DIR / "en.json").read_text(encoding="utf-8"))
    return i18n.Catalogue("xx", {msgid: f"«{msgid}»" for msgid in english}).gettext


def refusal(coroutine) -> ArchiveError:
    with pytest.raises(ArchiveError) as raised:
        asyncio.run(coroutine)
    return raised.value


def test_every_refusal_of_a_release_is_shown_from_the_catalogue(services, marked,
                                                                monkeypatch):
    archive = services.archive
    now = time.time()
    put(archive, "m-kept", received=now, verdict=Verdict.REJECT)
    put(archive, "m-arrived", received=now)
    archive.set_delivery("m-arrived", "250 2.0.0 Ok: queued as m-arrived")
    put(archive, "m-arriving", received=now)
    put(archive, "m-gone", received=now - 30 * 86400, verdict=Verdict.REJECT)
    put(archive, "m-damaged", received=now, verdict=Verdict.REJECT)
    put(archive, "m-virus", received=now, verdict=Verdict.REJECT,
        symbols=(virus_symbol("Eicar-Signature"),))
    asyncio.run(release(services, "m-kept", "root"))
    shutil.rmtree(archive.root / archive.get("m-gone").path.split("#")[0].rsplit("/", 1)[0])
    segment = archive.root / archive.get("m-damaged").path.partition("#")[0]
    segment.write_bytes(b"\0" * segment.stat().st_size)
    errors = {
        "No such message in the archive.": refusal(release(services, "m-none", "root")),
        "This message has no recipient you may release to.": refusal(
            release(services, "m-kept", "olga", allowed_domains=["other.org"])),
        "This message was already released to {recipients}; release it again to send"
        " another copy.": refusal(release(services, "m-kept", "root")),
        "This message was rejected as a virus; only the super administrator may release"
        " it.": refusal(release(services, "m-virus", "dora",
                                allowed_domains=["example.com"])),
        "This message was delivered when it arrived; release it again to send another"
        " copy.": refusal(release(services, "m-arrived", "root")),
        "This message is being delivered now; release it again to send another copy.":
            refusal(release(services, "m-arriving", "root")),
        "The body of this message is no longer in the archive: its day's files were"
        " removed (retention).": refusal(release(services, "m-gone", "root")),
        "The archived body of this message is unreadable: {error}": refusal(
            release(services, "m-damaged", "root")),
    }
    get = archive.get

    def purged_after_reading(message_id):        # the hourly purge runs in between
        message = get(message_id)
        archive.purge(7)
        return message

    put(archive, "m-old", received=now - 8 * 86400, verdict=Verdict.REJECT)
    monkeypatch.setattr(archive, "get", purged_after_reading)
    errors["This message was purged from the archive (its retention is over)."] = refusal(
        release(services, "m-old", "root"))
    for msgid, error in errors.items():
        shown = archive_error(marked, error)
        assert shown.startswith(f"«{msgid.partition('{')[0]}") and shown.endswith("»"), (
            str(error), shown)
        assert "m-" not in shown, shown              # "this message": the page says which
    assert "bob@example.com" in archive_error(marked, errors[
        "This message was already released to {recipients}; release it again to send"
        " another copy."])
    # Not a release's own words (a store error): as it is.
    assert archive_error(marked, ArchiveError("store locked")) == "store locked"


def test_a_releases_outcome_is_shown_from_the_catalogue_the_hosts_reply_as_it_came(
        services, marked):
    add_domain(services.store, "gone.example", "127.0.0.1:1")
    put(services.archive, "m-three", received=time.time(), verdict=Verdict.REJECT,
        rcpt=["alice@example.com", "refused.carol@other.org", "dan@gone.example"])
    remove_domain(services.store, "gone.example")
    result = asyncio.run(release(services, "m-three", "root"))
    parts = release_outcome(marked, result.describe()).split("; ")
    assert sorted(parts) == ["«dan@gone.example: its domain is no longer protected»",
                             "«delivered to alice@example.com»",
                             "«refused.carol@other.org: refused by the internal host»"]
    refused = asyncio.run(release(services, "m-three", "root", again=True,
                                  allowed_domains=["other.org"]))
    # An internal host's own reply, and a part no release writes, stay as they came.
    assert release_outcome(marked, refused.describe()) == \
        "refused.carol@other.org: 550 5.1.1 no such user"
    assert release_outcome(marked, "no recipients; 4.3.0 a; b") == \
        "«no recipients»; 4.3.0 a; b"


def test_a_domain_admin_reads_the_parts_of_a_releases_outcome_about_their_recipients():
    message = SimpleNamespace(recipients=["alice@example.com", "Bob@other.org",
                                          "carol@other.org"])
    # An internal host's reply may hold "; " itself: it stays with its recipient.
    outcome = ("delivered to alice@example.com, Bob@other.org; carol@other.org: 452 4.2.2"
               " over quota; try again later")
    seen = {}
    for name, domain in (("dora", "example.com"), ("olga", "other.org")):
        ctx = RequestContext.__new__(RequestContext)
        ctx.user = User(name, DOMAIN, (domain,))
        seen[name] = shown_outcome(ctx, message, outcome)
    assert seen == {"dora": "delivered to alice@example.com",
                    "olga": "delivered to Bob@other.org; carol@other.org: 452 4.2.2 over"
                            " quota; try again later"}
