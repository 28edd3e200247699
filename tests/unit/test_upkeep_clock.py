"""Upkeep when the clock jumps (store/clock.py): an appliance that booted with its clock
a year ahead stamped records in the future, and NTP then set the clock back; or the
clock was stepped a year forward since the last upkeep."""

from __future__ import annotations

import logging
import time

import pytest

from portcullis import housekeeping
from portcullis.accounts import throttle
from portcullis.accounts.upkeep import purge_web_state
from portcullis.bayes.evaluate import temporary_config
from portcullis.checks import harvest
from portcullis.checks.greylist import Greylist, GreylistPolicy, Outcome
from portcullis.directory.settings import get_settings
from portcullis.policy import Decision, Verdict
from portcullis.reputation import mta, peers
from portcullis.services import Services
from portcullis.store.clock import MAX_STEP, upkeep_time

DAY = 86400.0
YEAR = 365 * DAY


@pytest.fixture
def services(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    yield services
    services.close()


def settings(services: Services) -> dict:
    return get_settings(services.store, services.config)


@pytest.mark.reputation
def test_upkeep_time_moves_at_most_a_day_a_run_past_the_last_run(services, caplog):
    store, start = services.store, 1_700_000_000.0
    assert upkeep_time(store, "task", now=start) == start         # a first run: the clock
    with caplog.at_level(logging.WARNING, logger="portcullis.store.clock"):
        assert upkeep_time(store, "task", now=start + YEAR) == start + MAX_STEP
    assert "stepped forward" in caplog.text
    assert upkeep_time(store, "task", now=start + YEAR) == start + 2 * MAX_STEP
    assert upkeep_time(store, "other", now=start + YEAR) == start + YEAR   # its own
    # Set back: the clock again, and the next run a day on from there.
    assert upkeep_time(store, "task", now=start + 3600) == start + 3600
    assert upkeep_time(store, "task", now=start + 7200) == start + 7200


@pytest.mark.defenses
def test_a_triplet_greylisted_by_a_clock_set_back_passes_after_the_delay(services):
    policy = GreylistPolicy.from_settings(settings(services))
    greylist = Greylist(services.store)
    triplet = ("192.0.2.0/24", "a@sender.test", "b@example.com")
    assert greylist.consult(*triplet, policy, now=time.time() + YEAR)[0] is Outcome.NEW
    housekeeping.purge_greylist(services)
    assert greylist.consult(*triplet, policy, now=time.time() + policy.delay + 1)[0] \
        is Outcome.PASSED


@pytest.mark.defenses
def test_a_harvester_blocked_by_a_clock_set_back_is_blocked_for_the_block_time(services):
    policy = harvest.HarvestPolicy.from_settings(settings(services) | {"harvest_threshold": 1})
    assert harvest.record_refusal(services.store, "198.51.100.7", policy,
                                  now=time.time() + YEAR)
    housekeeping.purge_harvest(services)
    assert harvest.blocked_until(services.store, "198.51.100.7") is not None
    assert harvest.blocked_until(services.store, "198.51.100.7",
                                 now=time.time() + policy.block + 1) is None


@pytest.mark.webui
def test_login_failures_stamped_by_a_clock_set_back_end_with_the_window(services):
    for _ in range(throttle.LIMITS["pair"]):
        throttle.record_failure(services.store, "admin", "192.0.2.9", now=time.time() + YEAR)
    purge_web_state(services)
    assert 0 < throttle.retry_after(services.store, "admin", "192.0.2.9") \
        <= throttle.WINDOW_SECONDS


@pytest.mark.reputation
def test_mta_counters_decayed_by_a_clock_set_back_decay_again(services):
    store, now = services.store, time.time()
    mta.decay(store, 30, now=now + YEAR)            # the clock ran a year ahead
    store.execute("INSERT INTO mta_reputation (address, kind, connections, first_seen,"
                  " last_seen) VALUES ('192.0.2.1', 'ip', 8, ?, ?)", (now, now))
    mta.decay(store, 30, now=now)                   # set back
    mta.decay(store, 30, now=now + 30 * DAY)
    assert mta.standing(store, "192.0.2.1").connections == pytest.approx(4)


@pytest.mark.reputation
def test_a_clock_stepped_a_year_forward_does_not_forget_peers_in_one_run(services):
    store = services.store
    last_run = time.time() - YEAR - DAY         # the clock is a year past it now
    upkeep_time(store, "reputation", now=last_run)
    peers.record_outbound(store, "alice@example.com", "friend@remote.test", when=last_run)
    housekeeping.expire_reputation(services)
    assert store.scalar("SELECT count(*) FROM outbound_pairs") == 1


@pytest.mark.gateway
def test_a_clock_stepped_a_year_forward_does_not_empty_the_archive_in_one_run(services):
    last_run = time.time() - YEAR                   # the clock is a year past it now
    upkeep_time(services.store, "archive", now=last_run)
    archive, body = services.archive, b"Subject: s\r\n\r\nbody\r\n"
    message_id = time.strftime("%Y%m%dT%H%M%S-kept", time.gmtime(last_run - 3600))
    archive.index(message_id=message_id, received=last_run - 3600, direction="inbound",
                  client_ip="192.0.2.1", helo="h", mail_from="a@x.org",
                  recipients=["bob@example.com"], subject="s",
                  decision=Decision(Verdict.ACCEPT, 1.0, "", ()), size=len(body),
                  path=archive.write_body(message_id, body))
    housekeeping.purge_archive(services)
    assert archive.read_body(archive.get(message_id)) == body


@pytest.mark.gateway
def test_a_callout_answer_stamped_by_a_clock_set_back_is_asked_again(services):
    """An internal host's "unknown" cached while the clock ran a year ahead kept a real
    user refused (550) until the clock caught up, a year later."""
    from portcullis.smtp.nexthop import Reply
    from portcullis.smtp.recipients import CalloutCache, Validity

    cache = CalloutCache(services.store, services.config.callout)
    cache.put("new.user@example.com", False, Reply(550, "5.1.1 unknown"))
    cache.put("old.user@example.com", True, Reply(250, "2.1.5 ok"))
    services.store.execute("UPDATE callout_cache SET expires = expires + ?", (YEAR,))
    assert cache.get("new.user@example.com") is None      # asked again, not refused
    assert cache.get("old.user@example.com") is None
    cache.put("still.unknown@example.com", False, Reply(550, "5.1.1 unknown"))
    assert cache.get("still.unknown@example.com").validity is Validity.INVALID
    assert housekeeping.purge_callouts(services).startswith("callout cache: 2 ")
    assert services.store.scalar("SELECT COUNT(*) FROM callout_cache") == 1


@pytest.mark.gateway
def test_traffic_counters_are_not_all_lost_to_a_clock_stepped_forward(services):
    """400 days of figures went in one run when the clock jumped 401 days ahead."""
    from portcullis.stats import purge_traffic

    store, now = services.store, time.time()
    store.executemany("INSERT INTO traffic (bucket, domain, verdict, count)"
                      " VALUES (?, '*', 'accept', 1)", [(now - d * DAY,) for d in range(10)])
    assert purge_traffic(store, now=now) == 0
    assert purge_traffic(store, now=now + 401 * DAY) == 0     # a day on from the last run
    assert store.scalar("SELECT COUNT(*) FROM traffic") == 10
