"""A domain administrator's log lines, built from the archive of their domains."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from portcullis import refusallog
from portcullis.accounts.users import DOMAIN, User
from portcullis.archive import Archive, new_message_id
from portcullis.directory import domains
from portcullis.events import RecipientRefused
from portcullis.policy import Decision, Verdict
from portcullis.store import open_store
from portcullis.web import i18n
from portcullis.web.app import RequestContext
from portcullis.web.pages import logview

pytestmark = pytest.mark.webui


def _archive(archive: Archive, subject: str, received: float) -> None:
    archive.index(message_id=new_message_id(received), received=received,
                  direction="inbound", client_ip="192.0.2.9", helo="mx.example.net",
                  mail_from="sender@example.net", recipients=["alice@example.com"],
                  subject=subject, decision=Decision(Verdict.ACCEPT, 0.0, "", ()), size=1,
                  path="")


def test_mail_arriving_while_the_log_is_read_does_not_show_a_line_twice(tmp_path,
                                                                        monkeypatch):
    store = open_store(tmp_path)
    archive = Archive(store, tmp_path / "archive")
    start = time.time() - 10_000
    _archive(archive, "wanted one", start)
    _archive(archive, "wanted two", start + 1)
    for n in range(999):            # the newest page holds "wanted two" last
        _archive(archive, f"other {n}", start + 2 + n)
    search = archive.search

    def arriving(**kwargs: object) -> list:
        found = search(**kwargs)
        _archive(archive, "arrived meanwhile", time.time())     # moves the rest down
        return found

    monkeypatch.setattr(archive, "search", arriving)
    ctx = RequestContext.__new__(RequestContext)
    ctx.user = User("dora", DOMAIN, ("example.com",))
    ctx.services, ctx.store = SimpleNamespace(archive=archive), store
    ctx.catalogue = i18n.catalogue("en")
    lines = logview.domain_lines(ctx, 50, "wanted")
    assert [line.rsplit(" ", 2)[-2:] for line in lines] == [["wanted", "one"],
                                                            ["wanted", "two"]]


def test_refusals_at_rcpt_are_merged_by_time_with_archived_messages(tmp_path):
    store = open_store(tmp_path)
    for name in ("example.com", "other.org"):
        domains.add_domain(store, name, "192.0.2.25")
    archive = Archive(store, tmp_path / "archive")
    start = time.time() - 100
    _archive(archive, "first", start)
    _archive(archive, "third", start + 2)
    for when, recipient in ((start + 1, "second@example.com"), (start + 3, "fourth@example.com"),
                            (start + 4, "later@other.org")):
        refusallog.record(store, RecipientRefused(
            "192.0.2.9", "mx.example.net", "", recipient, "unknown", when,
            recipient.rpartition("@")[2], f"refused {recipient}"))
    ctx = RequestContext.__new__(RequestContext)
    ctx.user = User("dora", DOMAIN, ("example.com",))
    ctx.services, ctx.store = SimpleNamespace(archive=archive), store
    ctx.catalogue = i18n.catalogue("en")
    lines = logview.domain_lines(ctx, 50)
    assert [line.rsplit(" ", 1)[-1] for line in lines] == [
        "first", "second@example.com", "third", "fourth@example.com"]
    assert logview.domain_lines(ctx, 2) == lines[2:]
    assert logview.domain_lines(ctx, 50, "SECOND") == [lines[1]]
