"""Faults in the services the checks depend on: clamd killed, the DNS resolver silent.
Mail is deferred (ClamAV is fail-closed: nothing unscanned goes through) or judged without
the lookup (DNS is fail-open), and in both cases nothing is lost or delivered twice."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import (
    Ledger,
    aim_sender_at,
    inject,
    make_gateway,
    wait_for_log,
)
from tests.reliability.test_faults import assert_nothing_lost, send_direct
from tests.support.clamd import Clamd
from tests.support.dirs import daemon_dir
from tests.support.dns import silent_resolver
from tests.support.soak import scaled

pytestmark = pytest.mark.reliability


def test_clamd_killed_defers_and_the_mail_arrives_once_it_is_back(world, tmp_path):
    clamd = Clamd(daemon_dir("r-clamd")).start()
    gw = make_gateway(world, tmp_path / "gw", clamav=clamd.gateway_config()).start()
    ledger = Ledger("clamd")
    try:
        since = aim_sender_at(world, gw)
        assert send_direct(gw, ledger)[0] == 250            # scanned and delivered
        clamd.kill()
        code, text = send_direct(gw, ledger)
        assert code // 100 == 4, (code, text)               # unscanned: try again later
        inject(world, ledger, scaled(3))
        # The MTA's batch meets the same answer before clamd comes back.
        assert wait_for_log(world.sending_mta, "status=deferred", since=since)
        assert gw.process.poll() is None
        clamd.start()
        assert send_direct(gw, ledger, ledger.sent[1])[0] == 250   # the retry of the 4xx
        assert_nothing_lost(ledger, world)
    finally:
        gw.stop()
        clamd.stop()


def test_silent_resolver_slows_judgement_but_loses_nothing(world, tmp_path):
    with silent_resolver() as port:
        gw = make_gateway(world, tmp_path / "gw", dns_port=port, dns_timeout=1.0, defenses={
            "dnsbl_zones": ["zen.spamhaus.org name=spamhaus.org"],
            "uribl_zones": ["dbl.spamhaus.org name=dbl.spamhaus.org"],
            "sender_authentication": True}).start()
        ledger = Ledger("nodns")
        try:
            aim_sender_at(world, gw)
            inject(world, ledger, scaled(5))
            for _ in range(2):
                code, text = send_direct(gw, ledger)
                assert code == 250, (code, text)
            assert_nothing_lost(ledger, world)
            unavailable = [e for e in gw.archive() if e["subject"] in ledger.sent]
            assert unavailable and all(e["verdict"] == "accept" for e in unavailable)
        finally:
            gw.stop()
