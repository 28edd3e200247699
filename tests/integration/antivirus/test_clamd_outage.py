"""clamd going away, coming back, and being updated; ``portcullis clamav status|update``.

Documented behaviour (checks/virus.py): by default a message clamd cannot scan is deferred
with 451, whoever sent it, and arrives once clamd is back and the sender retries; with
``[clamav] on_failure = "accept"`` it is delivered, marked CLAMAV_UNAVAILABLE, and logged.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.antivirus.conftest import delivered, send, start_gateway, unique
from tests.support.attachments import mail, zip_of
from tests.support.clamd import EICAR, EICAR_NAME, Clamd
from tests.support.dirs import daemon_dir
from tests.support.postfix import Postfix, swaks

pytestmark = pytest.mark.antivirus


@pytest.fixture
def running_clamd(clamd: Clamd) -> Clamd:
    """The module's clamd, (re)started if an earlier test left it dead."""
    if not clamd.ping():
        clamd.start()
    return clamd


@pytest.fixture(scope="module")
def sending_mta(av_world, gateway):
    """An Internet MTA that relays to the gateway and retries what it is told 4xx."""
    postfix = Postfix.sending_mta(daemon_dir("av-sender"), av_world.sender_ns,
                                  av_world.sender_ip,
                                  f"[{av_world.sender_root_ip}]:{gateway.port}",
                                  f"127.0.0.0/8, {av_world.sender_ip}/32").start()
    try:
        yield postfix
    finally:
        postfix.stop()


def test_status_shows_clamd_answering_and_the_database_loaded(gateway, running_clamd):
    result = gateway.cli("clamav", "status")
    assert "clamd:      answering" in result.stdout
    assert "engine:     ClamAV " in result.stdout
    assert "portcullis-test.hdb" in result.stdout
    status = gateway.cli_json("clamav", "status")
    assert status["reachable"] is True and status["engine"]
    hdb = next(d for d in status["databases"] if d["name"] == "portcullis-test.hdb")
    assert hdb["signatures"] == 2                  # EICAR's MD5 and HASHED's


def test_update_reloads_a_database_installed_meanwhile(av_world, gateway, running_clamd):
    marker = b"PORTCULLIS-NEW-SIGNATURE-" + unique("sig").encode().replace(b" ", b"-")
    name = "Worm.Test.Fresh-" + marker[-8:].decode()
    subject = unique("fresh worm before update")
    assert send(gateway, mail(subject, attachments=[("a.bin", marker)]))[0] == 250

    running_clamd.add_signature(name, marker)         # as the update agent would install it
    result = gateway.cli("clamav", "update")
    assert "reloading its databases" in result.stdout
    assert "freshclam asked to check" in result.stdout
    assert (running_clamd.root / "update-request").exists()   # what the path unit watches
    # clamd reloads in the background and keeps answering meanwhile.
    deadline = time.monotonic() + 30
    while True:
        subject = unique("fresh worm after update")
        code, text = send(gateway, mail(subject, attachments=[("a.bin", marker)]))
        if code == 554 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (code, text) == (554, f"5.7.1 Rejected Virus: {name}.UNOFFICIAL")


def test_clamd_killed_defers_mail_which_arrives_after_clamd_returns(
        av_world, gateway, running_clamd, sending_mta):
    running_clamd.kill()
    assert gateway.cli("clamav", "status", check=False).returncode == 1
    subject = unique("while clamd was down")
    code, transcript = swaks(av_world.sender_ns, "--server", av_world.sender_ip,
                             "--from", "partner@remote.test", "--to", "alice@example.com",
                             "--header", f"Subject: {subject}", "--body", "Quarterly figures.")
    assert code == 0, transcript       # the sending MTA has it queued

    deadline = time.monotonic() + 30
    while "Virus scanner unavailable" not in sending_mta.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "451 4.7.1 Virus scanner unavailable" in sending_mta.log()
    assert delivered(av_world.internal, subject) == []
    assert any("TempFailed Virus scanner unavailable" in line and subject in line
               for line in gateway.decision_log())

    running_clamd.start()
    sending_mta.flush()
    [message] = delivered(av_world.internal, subject, timeout=60)
    assert "CLAMAV" not in message["X-Spam-Status"]
    verdicts = sorted(entry["verdict"] for entry in gateway.archive(subject=subject))
    assert verdicts == ["accept", "tempfail"]


def test_clamd_down_defers_even_white_listed_senders(av_world, gateway, running_clamd):
    gateway.cli("list", "white", "add", "boss@trusted.test")
    time.sleep(1.1)
    running_clamd.kill()
    subject = unique("white listed while down")
    code, text = send(gateway, mail(subject, attachments=[("x.zip", zip_of({"x": EICAR}))],
                                    sender="boss@trusted.test"), sender="boss@trusted.test")
    assert (code, text) == (451, "4.7.1 Virus scanner unavailable, try again later")
    assert delivered(av_world.internal, subject) == []
    running_clamd.start()
    code, text = send(gateway, mail(subject, attachments=[("x.zip", zip_of({"x": EICAR}))],
                                    sender="boss@trusted.test"), sender="boss@trusted.test")
    assert code == 554 and text.startswith(f"5.7.1 Rejected Virus: {EICAR_NAME}"), text


def test_fail_open_delivers_unscanned_mail_marked_and_logged(av_world, running_clamd,
                                                             tmp_path):
    config = running_clamd.gateway_config() + 'on_failure = "accept"\n'
    gateway = start_gateway(av_world, tmp_path / "state", config)
    try:
        running_clamd.kill()
        subject = unique("fail open")
        assert send(gateway, mail(subject))[0] == 250
        [message] = delivered(av_world.internal, subject, timeout=20)
        assert "CLAMAV_UNAVAILABLE" in message["X-Spam-Status"].replace("\n", "")
        [entry] = gateway.archive(subject=subject)
        assert "CLAMAV_UNAVAILABLE" in [s["name"] for s in entry["symbols"]]
    finally:
        gateway.stop()
    assert "delivering it UNSCANNED" in gateway.stderr()
