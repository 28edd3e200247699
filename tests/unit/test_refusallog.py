"""The refused recipients kept for domain administrators' logs stay bounded: by the
archive's retention, and per domain however many a flood brings."""

from __future__ import annotations

import time

import pytest

from portcullis import housekeeping, refusallog
from portcullis.directory import domains, settings
from portcullis.observers import RecipientRefused, RefusalLog
from portcullis.services import Services
from tests.unit.test_smtp_session import gateway_config

pytestmark = pytest.mark.gateway


def refused(recipient: str, when: float) -> RecipientRefused:
    domain = recipient.rpartition("@")[2]
    return RecipientRefused("192.0.2.7", "mx.test", "a@remote.test", recipient, "unknown",
                            when, domain, f"{when} - Rejected User unknown {recipient}")


def kept(services: Services, domain: str) -> list[float]:
    return [when for when, _ in refusallog.newest_first(services.store, [domain], 7)]


def test_a_flood_of_refusals_keeps_a_domain_to_its_newest_and_leaves_others_be(
        tmp_path, monkeypatch):
    monkeypatch.setattr(refusallog, "MAX_PER_DOMAIN", 50)
    monkeypatch.setattr(refusallog, "TRIM_EVERY", 10)
    services = Services.open(gateway_config(tmp_path))
    services.store.migrate()
    for name in ("example.com", "other.org"):
        domains.add_domain(services.store, name, "192.0.2.25")
    observer = RefusalLog(services)
    start = time.time()
    observer.recipient_refused(refused("a@other.org", start))
    for n in range(500):
        observer.recipient_refused(refused(f"guess{n}@example.com", start + 1 + n))
    flooded = kept(services, "example.com")
    assert 50 <= len(flooded) <= 60
    assert flooded == [start + 500 - n for n in range(len(flooded))]      # the newest
    assert kept(services, "other.org") == [start]
    # A relay attempt to a domain nobody here administers is kept nowhere.
    observer.recipient_refused(RecipientRefused("192.0.2.7", "mx.test", "", "x@else.test",
                                                "relay", start))
    assert services.store.scalar("SELECT COUNT(*) FROM rcpt_refusals") == len(flooded) + 1
    services.close()


@pytest.fixture
def services(tmp_path):
    """A store protecting example.com."""
    services = Services.open(gateway_config(tmp_path))
    services.store.migrate()
    domains.add_domain(services.store, "example.com", "192.0.2.25")
    yield services
    services.close()


def refused_days_ago(services: Services, *days: float) -> float:
    """Refusals of a@example.com that many days ago, under a 2-day retention; now."""
    settings.set_settings(services.store, services.config, {"archive_retention_days": 2})
    now = time.time()
    for ago in days:
        refusallog.record(services.store, refused("a@example.com", now - ago * 86400))
    return now


def test_refusals_older_than_the_archive_retention_go(services):
    now = refused_days_ago(services, 3, 1)
    observer = RefusalLog(services)
    observer.recipient_refused(refused("b@example.com", now))
    assert kept(services, "example.com") == [now, now - 86400]
    # A removed domain's refusals go with it: a domain added again is someone else's.
    domains.remove_domain(services.store, "example.com")
    assert services.store.scalar("SELECT COUNT(*) FROM rcpt_refusals") == 0


def test_housekeeping_ages_refusals_out_when_no_new_refusal_comes(services):
    """Only a new refusal trimmed them: a domain nobody guessed at any more kept its old
    ones past the archive's retention."""
    now = refused_days_ago(services, 3, 1)
    assert any(line.startswith("RCPT refusals: 1 ") for line in housekeeping.run(services))
    assert kept(services, "example.com") == [now - 86400]


def test_a_refusal_for_a_domain_removed_meanwhile_is_kept_nowhere(services):
    """A worker's snapshot still names the domain for a few seconds: the insert failed
    its foreign key, and the observer logged a traceback for each refusal."""
    domains.remove_domain(services.store, "example.com")
    refusallog.record(services.store, refused("a@example.com", time.time()))
    assert services.store.scalar("SELECT COUNT(*) FROM rcpt_refusals") == 0
