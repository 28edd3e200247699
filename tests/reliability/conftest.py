"""The reliability suite's world: a real internal Postfix host (namespace ``lan``), a real
sending MTA that retries on 4xx (namespace ``sender``), and a fresh gateway per test in
the root namespace.

Every scenario keeps a ledger of the messages it sent (a unique token in each subject)
and checks the internal host's mailbox against it: nothing the gateway acknowledged with
250 may be missing, and nothing may arrive twice unless the scenario made a duplicate
unavoidable (the internal host took the message but its reply never reached the gateway).

``RELIABILITY_SCALE`` (``make soak`` sets 10) multiplies counts: spike size, messages per
scenario, hypothesis examples and atheris runs (``tests/support/soak.py``).
"""

from __future__ import annotations

import collections
import smtplib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.dirs import daemon_dir
from tests.support.gateway import Gateway
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix

RECIPIENT = "bob@example.com"


@dataclass
class World:
    lan: Netns
    lan_ip: str
    lan_root_ip: str
    internal: Postfix
    sender_ns: Netns
    sender_ip: str
    sender_root_ip: str
    sending_mta: Postfix


@pytest.fixture(scope="module")
def world(root_required):
    # Our own 10.87.x.0/24 range: other suites on this machine use 10.77 (netns.py).
    with network(base=87) as net:
        lan, lan_ip, lan_root_ip = net.host("rlan")
        sender_ns, sender_ip, sender_root_ip = net.host("rsender")
        internal = Postfix.mailbox_server(daemon_dir("r-internal"), lan, lan_ip,
                                          ["example.com"], [RECIPIENT, "alice@example.com"])
        internal.configure(smtpd_client_connection_count_limit="0",
                           default_process_limit="200")
        internal.start()
        sending = Postfix.sending_mta(daemon_dir("r-sending"), sender_ns, sender_ip,
                                      relayhost="[127.0.0.1]:1",
                                      clients=f"{sender_root_ip}/32")
        # A spike needs a sender that opens many sessions at once, not Postfix's slow start.
        sending.configure(default_destination_concurrency_limit="60",
                          initial_destination_concurrency="60",
                          default_process_limit="200",
                          smtp_data_done_timeout="120s")
        sending.start()
        world = World(lan, lan_ip, lan_root_ip, internal, sender_ns, sender_ip,
                      sender_root_ip, sending)
        try:
            yield world
        finally:
            sending.stop()
            internal.stop()


def make_gateway(world: World, state: Path, *, mail_host: str | None = None,
                 smtp: str = "", extra: str = "", **options: object) -> Gateway:
    """A gateway protecting example.com (internal host: the lan Postfix, or ``mail_host``),
    reachable from the sending MTA; short delivery timeouts so faults show quickly.
    ``options`` go to ``Gateway`` (``dns_port``, ``defenses``, ``clamav``)."""
    gw = Gateway(state, listen=[world.lan_root_ip, world.sender_root_ip], settings=smtp,
                 **options)  # type: ignore[arg-type]
    gw.add_config("[delivery]\nconnect_timeout = 5\ncommand_timeout = 10\ndata_timeout = 10\n"
                  + extra)
    gw.cli("domain", "add", "example.com", "--mail-host", mail_host or f"{world.lan_ip}:25")
    return gw


def aim_sender_at(world: World, gw: Gateway) -> int:
    """Point the sending MTA at this test's gateway, with an empty queue; return the
    length of its log so far (for ``wait_for_log``)."""
    mta = world.sending_mta
    mta.ns.run("postsuper", "-c", str(mta.config_dir), "-d", "ALL", check=False)
    mta.configure(relayhost=f"[{world.sender_root_ip}]:{gw.port}")
    return len(mta.log())


@dataclass
class Ledger:
    """What a scenario sent, and what the internal host must end up holding."""

    label: str
    sent: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)   # 250 seen by our own client

    def token(self) -> str:
        token = f"{self.label}-{uuid.uuid4().hex[:10]}"
        self.sent.append(token)
        return token

    @staticmethod
    def message(token: str, body: str = "Reliability test message.\r\n") -> bytes:
        return (f"From: sender@remote.test\r\nTo: {RECIPIENT}\r\nSubject: {token}\r\n"
                f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
                f"Message-ID: <{token}@remote.test>\r\n\r\n{body}").encode()

    def delivered(self, internal: Postfix) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        wanted = set(self.sent)
        for message in internal.messages(RECIPIENT):
            subject = str(message["Subject"])
            if subject in wanted:
                counts[subject] += 1
        return counts

    def wait_all(self, internal: Postfix, timeout: float = 120,
                 flush: Postfix | None = None) -> collections.Counter[str]:
        """Wait until every sent message is at the internal host (asking ``flush`` to
        retry its deferred mail now and then); return the delivery counts."""
        deadline = time.monotonic() + timeout
        last_flush = 0.0
        while True:
            counts = self.delivered(internal)
            if all(counts[t] for t in self.sent) or time.monotonic() > deadline:
                return counts
            if flush is not None and time.monotonic() - last_flush > 3:
                flush.flush()
                last_flush = time.monotonic()
            time.sleep(0.2)

    def missing(self, counts: collections.Counter[str]) -> list[str]:
        return [t for t in self.sent if not counts[t]]

    def duplicated(self, counts: collections.Counter[str]) -> list[str]:
        return [t for t in self.sent if counts[t] > 1]


def inject(world: World, ledger: Ledger, count: int) -> list[str]:
    """Hand ``count`` messages to the sending MTA (which then relays them to the gateway)."""
    tokens = []
    with smtplib.SMTP(world.sender_ip, 25, timeout=60) as client:
        for _ in range(count):
            token = ledger.token()
            client.sendmail("sender@remote.test", [RECIPIENT], Ledger.message(token))
            tokens.append(token)
    return tokens


def wait_for_log(postfix: Postfix, text: str, since: int = 0, timeout: float = 60) -> bool:
    """Wait until ``text`` appears in the log after offset ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in postfix.log()[since:]:
            return True
        time.sleep(0.2)
    return False


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
