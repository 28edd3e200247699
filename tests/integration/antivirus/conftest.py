"""The antivirus world: a real clamd with a test database, the real gateway, a real Postfix
as the protected internal host (example.com: alice, bob) and a real Postfix as an Internet
MTA that relays to the gateway and retries on 4xx."""

from __future__ import annotations

import smtplib
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.support.clamd import Clamd
from tests.support.dirs import daemon_dir
from tests.support.gateway import Gateway
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix


@dataclass
class AvWorld:
    internal: Postfix
    lan_ip: str
    lan_root_ip: str
    sender_ns: Netns
    sender_ip: str
    sender_root_ip: str


@pytest.fixture(scope="module")
def av_world(root_required):
    with network() as net:
        lan, lan_ip, lan_root_ip = net.host("avlan")
        sender_ns, sender_ip, sender_root_ip = net.host("avsender")
        internal = Postfix.mailbox_server(daemon_dir("av-internal"), lan, lan_ip,
                                          ["example.com"],
                                          ["alice@example.com", "bob@example.com"]).start()
        try:
            yield AvWorld(internal, lan_ip, lan_root_ip, sender_ns, sender_ip, sender_root_ip)
        finally:
            internal.stop()


@pytest.fixture(scope="module")
def clamd(root_required):
    daemon = Clamd(daemon_dir("clamd")).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def start_gateway(world: AvWorld, state_dir, clamav: str) -> Gateway:
    gateway = Gateway(state_dir, listen=[world.lan_root_ip, world.sender_root_ip],
                      clamav=clamav)
    gateway.add_config("[delivery]\nconnect_timeout = 5\ncommand_timeout = 20\n")
    gateway.cli("domain", "add", "example.com", "--mail-host", f"{world.lan_ip}:25")
    return gateway.start()


@pytest.fixture(scope="module")
def gateway(av_world, clamd, tmp_path_factory):
    """A gateway scanning with the module's clamd (fail-closed, the default)."""
    gw = start_gateway(av_world, tmp_path_factory.mktemp("gw") / "state",
                       clamd.gateway_config())
    try:
        yield gw
    finally:
        gw.stop()
        print(gw.stderr()[-5000:])   # shown by pytest when a test of the module failed


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:8]}"


def send(gateway: Gateway, content: bytes, recipients: tuple[str, ...] = ("alice@example.com",),
         sender: str = "sender@remote.test") -> tuple[int, str]:
    """Send one message; return the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=120) as client:
        client.ehlo("mta.remote.test")
        client.mail(sender)
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            assert code == 250, text
        code, text = client.data(content)
        return code, text.decode(errors="replace")


def delivered(postfix: Postfix, subject: str, address: str = "alice@example.com",
              timeout: float = 0.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in postfix.messages(address) if subject in str(m["Subject"])]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)
