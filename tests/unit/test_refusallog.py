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


def test_refusals_older_than_the_archive_retention_go(tmp_path):
    services = Services.open(gateway_config(tmp_path))
    services.store.migrate()
    domains.add_domain(services.store, "example.com", "192.0.2.25")
    settings.set_settings(services.store, services.config, {"archive_retention_days": 2})
    now = time.time()
    for when in (now - 3 * 86400, now - 86400):
        refusallog.record(services.store, refused("a@example.com", when))
    observer = RefusalLog(services)
    observer.recipient_refused(refused("b@example.com", now))
    assert kept(services, "example.com") == [now, now - 86400]
    # A removed domain's refusals go with it: a domain added again is someone else's.
    domains.remove_domain(services.store, "example.com")
    assert services.store.scalar("SELECT COUNT(*) FROM rcpt_refusals") == 0
    services.close()


def test_housekeeping_ages_refusals_out_when_no_new_refusal_comes(tmp_path):
    """Only a new refusal trimmed them: a domain nobody guessed at any more kept its old
    ones past the archive's retention."""
    services = Services.open(gateway_config(tmp_path))
    services.store.migrate()
    domains.add_domain(services.store, "example.com", "192.0.2.25")
    settings.set_settings(services.store, services.config, {"archive_retention_days": 2})
    now = time.time()
    for when in (now - 3 * 86400, now - 86400):
        refusallog.record(services.store, refused("a@example.com", when))
    assert any(line.startswith("RCPT refusals: 1 ") for line in housekeeping.run(services))
    assert kept(services, "example.com") == [now - 86400]
    services.close()
