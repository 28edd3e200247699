"""The servers a benchmark talks to, each started fresh for the run and stopped after it.

- ``Sink``: Postfix's smtp-sink, the internal host (and the "straight to the sink" baseline);
- ``BareAiosmtpd``: the framework's own limit, same worker count as the gateway;
- ``BenchGateway``: ``portcullis serve`` (tests/support/gateway.py) delivering to the sink,
  with the optional checks switched on only where their code has landed (``features``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gateway import Gateway, free_port, wait_for_port

from portcullis import config as configuration


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (the gateway's SO_REUSEPORT workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(p) for p in task.read_text().split()]
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of one process, in KiB."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except OSError:
        return {"VmRSS": 0, "VmHWM": 0}
    return values


def config_sections() -> set[str]:
    """The configuration sections this checkout knows (a check's section appears when its
    branch has been merged)."""
    return set(typing.get_type_hints(configuration.Config))


def section_fields(name: str) -> set[str]:
    cls = typing.get_type_hints(configuration.Config).get(name)
    return {f for f in getattr(cls, "__dataclass_fields__", {})}


class Sink:
    """Postfix's smtp-sink: accepts everything at C speed (the protected internal host)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Sink:
        self.process = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", f"127.0.0.1:{self.port}", "2048"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []


class BareAiosmtpd:
    """bench/bare_aiosmtpd.py with N SO_REUSEPORT workers."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BareAiosmtpd:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_aiosmtpd", "--listen", self.address,
             "--workers", str(self.workers)],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                for pid in process_tree(self.process.pid):
                    os.kill(pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process else []


@dataclass
class Features:
    """Which optional checks this checkout has, and the helpers they need in a bench run:
    a local DNS zone (dnsmasq: DNSBL, URIBL, SPF/DMARC lookups answered at once) and a
    real clamd with a tiny database."""

    dns_port: int | None = None
    clamd: object | None = None          # tests.support.clamd.Clamd when ClamAV is there
    training: Path | None = None         # corpus root with train_spam/ and train_ham/
    sections: set[str] = field(default_factory=config_sections)

    @property
    def has_dnsbl(self) -> bool:
        return "defenses" in self.sections

    @property
    def has_clamav(self) -> bool:
        return "clamav" in self.sections

    @property
    def has_bayes(self) -> bool:
        return "bayes" in self.sections


# Every defence that judges content or the connection, without greylisting (it would
# defer the benchmark's mail) or harvest blocking (the benchmark is one busy client).
CHECKS_ON = {
    "dnsbl_zones": ["zen.spamhaus.org name=spamhaus.org 127.0.0.2-127.0.0.11=reject"],
    "uribl_zones": ["dbl.spamhaus.org name=dbl.spamhaus.org 127.0.1.2-127.0.1.99=6"],
    "sender_authentication": True, "greylisting": False, "greylist_tagged": False,
    "harvest_threshold": 0,
}
ZONES = ["zen.spamhaus.org", "dbl.spamhaus.org", "bench.test", "example.com", "test",
         "org", "com", "net"]


class BenchGateway:
    """``portcullis serve`` protecting example.com, whose internal host is the sink.

    ``checks``: the domain filtered with every content and connection check that has
    landed (DNSBL and friends against the local zone, no greylisting); off means the
    domain is not filtered (the gateway as a pure proxy: admission, routing, archive).
    ``clamav``: scan with clamd as well.
    """

    def __init__(self, sink: Sink | BareAiosmtpd, features: Features, *, workers: int,
                 checks: bool,
                 clamav: bool = False, max_sessions: int = 1200) -> None:
        self.workers = workers
        self.checks = checks
        self.clamav = clamav and features.has_clamav and features.clamd is not None
        self.state = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
        known = section_fields("defenses")
        defenses = {k: v for k, v in CHECKS_ON.items() if k in known} if checks else None
        self.gateway = Gateway(
            self.state / "state",
            settings=(f"workers = {workers}\nmax_sessions = {max_sessions}\n"
                      f"max_sessions_per_ip = {max_sessions}\n"),
            dns_port=features.dns_port, dns_timeout=2.0, defenses=defenses,
            clamav=features.clamd.gateway_config() if self.clamav else None)  # type: ignore[union-attr]
        self.gateway.add_config('[log]\nlevel = "warning"\n')
        self.problems: list[str] = []     # worker exits and tracebacks seen in its stderr
        self.gateway.cli("domain", "add", "example.com", "--mail-host", sink.address,
                         "--filtering", "on" if checks else "off")
        if checks and features.has_bayes and features.training is not None:
            # A classifier that has learnt nothing abstains: train it as an installation
            # would be, so Bayes costs what it costs in service.
            self.gateway.cli("train", "--spam", str(features.training / "train_spam"),
                             "--ham", str(features.training / "train_ham"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    def start(self) -> BenchGateway:
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.problems = [line for line in self.gateway.stderr().splitlines()
                         if "exited" in line or "Error" in line or "Traceback" in line][-20:]
        shutil.rmtree(self.state, ignore_errors=True)

    def pids(self) -> list[int]:
        return process_tree(self.gateway.process.pid) if self.gateway.process else []

    def worker_pids(self) -> list[int]:
        """The processes that hold sessions (the supervisor only forks with workers > 1)."""
        pids = self.pids()
        return pids[1:] if len(pids) > 1 else pids
