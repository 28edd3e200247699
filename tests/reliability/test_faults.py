"""Faults around the gateway: the internal host down or hanging mid-DATA, its reply lost,
the store locked by another process, the archive's disk full, the gateway killed with
SIGKILL.  In every case no message acknowledged with 250 is lost, mail the gateway could
not take is deferred (4xx) and arrives once the sending MTA retries, and nothing is
delivered twice unless the internal host took a message whose reply never came back."""

from __future__ import annotations

import signal
import smtplib
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.reliability.conftest import (
    RECIPIENT,
    Ledger,
    aim_sender_at,
    inject,
    make_gateway,
    wait_for_log,
)
from tests.support.faultproxy import FaultProxy
from tests.support.soak import scaled

pytestmark = pytest.mark.reliability


def send_direct(gw, ledger: Ledger, token: str | None = None) -> tuple[int, str]:
    """One message straight from a test client (a new one, or ``token`` again: the retry
    of a message that was refused with 4xx); a 250 is recorded in the ledger."""
    token = token or ledger.token()
    try:
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=120) as client:
            client.sendmail("sender@remote.test", [RECIPIENT], Ledger.message(token))
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode(errors="replace")
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return code, text.decode(errors="replace")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        return 0, f"connection lost: {exc}"
    ledger.acknowledged.add(token)
    return 250, "ok"


def assert_nothing_lost(ledger: Ledger, world, *, duplicates_allowed: int = 0,
                        timeout: float = 120) -> None:
    counts = ledger.wait_all(world.internal, timeout=timeout, flush=world.sending_mta)
    assert not ledger.missing(counts), \
        f"lost: {ledger.missing(counts)}\n{world.sending_mta.log()[-3000:]}"
    assert len(ledger.duplicated(counts)) <= duplicates_allowed, ledger.duplicated(counts)


def test_internal_host_down_defers_and_everything_arrives_once_it_is_back(world, tmp_path):
    gw = make_gateway(world, tmp_path / "gw").start()
    ledger = Ledger("down")
    try:
        since = aim_sender_at(world, gw)
        world.internal.stop()
        try:
            code, text = send_direct(gw, ledger)
            assert code == 451 and "4.4.1" in text, text
            inject(world, ledger, scaled(5))
            assert wait_for_log(world.sending_mta, "451 4.4.1", since=since)
            assert gw.process.poll() is None
        finally:
            world.internal.start()
        # The direct client was told 451: it retries as an MTA would.
        assert send_direct(gw, ledger, ledger.sent[0])[0] == 250
        assert_nothing_lost(ledger, world)
    finally:
        gw.stop()


def test_internal_host_hanging_mid_data_defers_and_nothing_is_lost_or_doubled(world,
                                                                             tmp_path):
    proxy = FaultProxy((world.lan_ip, 25))
    gw = make_gateway(world, tmp_path / "gw", mail_host=proxy.address).start()
    ledger = Ledger("hang")
    try:
        since = aim_sender_at(world, gw)
        proxy.set_mode("hang_after_data")
        code, text = send_direct(gw, ledger)
        assert code == 451 and "timeout" in text, (code, text)
        inject(world, ledger, scaled(3))
        assert proxy.wait_hung(2)
        assert wait_for_log(world.sending_mta, "451 4.4.1", since=since)
        proxy.set_mode("pass")
        assert send_direct(gw, ledger, ledger.sent[0])[0] == 250   # the retry of the 451
        assert_nothing_lost(ledger, world)
    finally:
        gw.stop()
        proxy.close()


def test_reply_lost_after_the_internal_host_took_the_message_duplicates_at_most_once(
        world, tmp_path):
    # RFC 1047: the host has the message, the gateway never hears its 250, so the only
    # safe answer is 4xx and the retry delivers it a second time. A duplicate, never a loss.
    proxy = FaultProxy((world.lan_ip, 25))
    gw = make_gateway(world, tmp_path / "gw", mail_host=proxy.address).start()
    ledger = Ledger("lostreply")
    try:
        since = aim_sender_at(world, gw)
        proxy.set_mode("hang_before_reply")
        inject(world, ledger, 1)
        assert proxy.wait_hung(1)
        assert wait_for_log(world.sending_mta, "451 4.4.1", since=since)
        proxy.set_mode("pass")
        counts = ledger.wait_all(world.internal, flush=world.sending_mta)
        assert counts[ledger.sent[0]] >= 1
        time.sleep(2)
        assert ledger.delivered(world.internal)[ledger.sent[0]] <= 2
    finally:
        gw.stop()
        proxy.close()


LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def test_store_locked_by_another_process_defers_and_nothing_is_lost(world, tmp_path):
    gw = make_gateway(world, tmp_path / "gw").start()
    ledger = Ledger("locked")
    try:
        aim_sender_at(world, gw)
        assert send_direct(gw, ledger)[0] == 250       # warm: callout cached, store open
        holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER,
                                   str(gw.state_dir / "portcullis.db")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            code, text = send_direct(gw, ledger)
            assert code // 100 == 4, (code, text)    # cannot archive: try again later
            inject(world, ledger, scaled(3))
            time.sleep(3)
            assert gw.process.poll() is None
        finally:
            holder.stdin.close()
            holder.wait(30)
        assert send_direct(gw, ledger, ledger.sent[1])[0] == 250   # the retry of the 4xx
        assert send_direct(gw, ledger)[0] == 250
        assert_nothing_lost(ledger, world)
    finally:
        gw.stop()


def test_a_recipient_the_internal_host_took_is_not_refused_for_a_store_it_cannot_write(
        world, tmp_path):
    """The callout cache only remembers: a recipient the internal host accepted at RCPT
    is in its transaction, so a 451 for it (the store locked when the answer was to be
    remembered) would let the other recipients' delivery take it along while its
    sender retries it later: a duplicate.  It gets the 250 the internal host gave."""
    gw = make_gateway(world, tmp_path / "gw").start()
    ledger = Ledger("calloutlocked")
    try:
        assert send_direct(gw, ledger)[0] == 250       # warm: the store open, bob known
        token = ledger.token()
        holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER,
                                   str(gw.state_dir / "portcullis.db")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=60) as client:
            try:
                assert holder.stdout.readline().strip() == "locked"
                client.ehlo()
                client.mail("sender@remote.test")
                assert client.rcpt(RECIPIENT)[0] == 250            # from the cache
                alice = client.rcpt("alice@example.com")[0]       # asked live
            finally:
                holder.stdin.close()
                holder.wait(30)
            assert client.data(Ledger.message(token))[0] == 250
        time.sleep(2)
        delivered = [m for m in world.internal.messages("alice@example.com")
                     if m["Subject"] == token]
        assert (alice, len(delivered)) == (250, 1)
    finally:
        gw.stop()


def test_full_archive_disk_defers_and_nothing_is_lost(world, tmp_path):
    gw = make_gateway(world, tmp_path / "gw")
    archive = gw.state_dir / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    # A tiny tmpfs over the archive, in a mount namespace of the gateway's own, filled up.
    gw.command_prefix = [
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'mount -t tmpfs -o size=256k tmpfs "$0" && '
        'dd if=/dev/zero of="$0/filler" bs=4k 2>/dev/null; exec "$@"', str(archive)]
    gw.start()
    ledger = Ledger("diskfull")
    try:
        aim_sender_at(world, gw)
        code, text = send_direct(gw, ledger)
        assert code == 452 and "4.3.1" in text, (code, text)
        inject(world, ledger, scaled(3))
        time.sleep(3)
        assert not ledger.delivered(world.internal), "nothing goes out unarchived"
        subprocess.run(["nsenter", "-t", str(gw.process.pid), "-m", "rm",
                        str(archive / "filler")], check=True)
        assert send_direct(gw, ledger, ledger.sent[0])[0] == 250   # the retry of the 452
        assert_nothing_lost(ledger, world)
    finally:
        gw.stop()


def test_gateway_killed_mid_transaction_and_restarted_loses_nothing(world, tmp_path):
    proxy = FaultProxy((world.lan_ip, 25))
    gw = make_gateway(world, tmp_path / "gw", mail_host=proxy.address).start()
    ledger = Ledger("sigkill")
    try:
        since = aim_sender_at(world, gw)
        # The gateway is in the middle of handing the message on when it dies.
        proxy.set_mode("hang_after_data")
        inject(world, ledger, 1)
        assert proxy.wait_hung(1)
        gw.kill()
        proxy.set_mode("pass")
        gw.start()
        assert wait_for_log(world.sending_mta, "lost connection", since=since) or \
            wait_for_log(world.sending_mta, "Connection reset", since=since, timeout=1)
        # A steady stream, with a second kill in the middle of it.
        stream = inject(world, ledger, scaled(10))
        deadline = time.monotonic() + 60
        while not ledger.delivered(world.internal) and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.kill()
        gw.start()
        # Only messages the internal host had completed when the gateway died may come
        # twice; the sending MTA has at most its concurrency of them in flight.
        assert_nothing_lost(ledger, world, duplicates_allowed=len(stream))
        counts = ledger.delivered(world.internal)
        assert counts[ledger.sent[0]] == 1, "the message whose DATA never finished: once"
        db = sqlite3.connect(gw.state_dir / "portcullis.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        gw.stop()
        proxy.close()


def test_killed_worker_is_replaced_and_the_others_keep_serving(world, tmp_path):
    gw = make_gateway(world, tmp_path / "gw", smtp="workers = 2\n").start()
    ledger = Ledger("worker")
    try:
        aim_sender_at(world, gw)
        workers = [int(p) for p in gw.worker_pids(2)]
        assert len(workers) == 2
        inject(world, ledger, scaled(10))
        signal_sent = False
        deadline = time.monotonic() + 60
        while not signal_sent and time.monotonic() < deadline:
            if ledger.delivered(world.internal):
                subprocess.run(["kill", "-KILL", str(workers[0])], check=True)
                signal_sent = True
            time.sleep(0.02)
        for _ in range(4):
            assert send_direct(gw, ledger)[0] == 250
        assert_nothing_lost(ledger, world, duplicates_allowed=2)
        time.sleep(1.5)
        replaced = gw.worker_pids(2)
        assert len(replaced) == 2 and str(workers[0]) not in replaced
        assert gw.stop(signal.SIGTERM) == 0
    finally:
        gw.stop()
