"""The supervisor's pause before it replaces a worker that exited."""

import pytest

from portcullis.smtp.supervisor import (
    RESTART_DELAY,
    RESTART_DELAY_MAX,
    STABLE_AFTER,
    RestartBackoff,
)

pytestmark = pytest.mark.reliability


def test_each_quick_death_doubles_the_pause_up_to_the_cap():
    backoff = RestartBackoff()
    delays = [backoff.delay(0, uptime=0.5) for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert delays[0] == RESTART_DELAY and delays[-1] == RESTART_DELAY_MAX


def test_a_worker_that_ran_long_enough_is_replaced_quickly_again():
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.delay(0, uptime=1)
    assert backoff.delay(0, uptime=STABLE_AFTER - 1) == 32
    assert backoff.delay(0, uptime=STABLE_AFTER) == RESTART_DELAY
    assert backoff.delay(0, uptime=1) == 2


def test_each_worker_has_its_own_pause():
    backoff = RestartBackoff()
    for _ in range(3):
        backoff.delay(0, uptime=0)
    assert backoff.delay(1, uptime=0) == RESTART_DELAY
