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


def toml_section(name: str, values: dict[str, object]) -> str:
    """A TOML section holding only the keys this checkout's configuration knows."""
    known = section_fields(name)
    lines = [f"[{name}]"]
    for key, value in values.items():
        if key not in known:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = f'"{value}"'
        elif isinstance(value, list | tuple):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            text = str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


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
    """Which optional checks this checkout has, and where their helpers listen."""

    dns: str = ""              # host:port of the local DNS zone (DNSBL, SPF lookups)
    clamd_socket: str = ""     # clamd's local socket, when ClamAV is to be used
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


class BenchGateway:
    """``portcullis serve`` protecting example.com, whose internal host is the sink.

    ``checks``: content checks on (DNSBL against the local zone, no greylisting, Bayes and
    the rest of what has landed); off means the domain is not filtered (a pure proxy).
    ``clamav``: scan with clamd (only where the antivirus code has landed).
    """

    def __init__(self, sink: Sink, features: Features, *, workers: int, checks: bool,
                 clamav: bool = False, max_sessions: int = 1200) -> None:
        self.workers = workers
        self.checks = checks
        self.clamav = clamav and features.has_clamav and bool(features.clamd_socket)
        self.state = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
        self.gateway = Gateway(self.state / "state", settings=(
            f"workers = {workers}\nmax_sessions = {max_sessions}\n"
            f"max_sessions_per_ip = {max_sessions}\n"))
        self.gateway.add_config(self._sections(features))
        self.gateway.cli("domain", "add", "example.com", "--mail-host", sink.address,
                         "--filtering", "on" if checks else "off")

    def _sections(self, features: Features) -> str:
        text = "[log]\nlevel = \"warning\"\n"
        if features.dns:
            host, _, port = features.dns.rpartition(":")
            text += f'[dns]\nnameservers = ["{host}"]\nport = {port}\ntimeout = 2\n'
        if features.has_dnsbl:
            text += toml_section("defenses", {
                "greylisting": False, "greylist_tagged": False,
                "dnsbl_zones": ["zen.spamhaus.org name=spamhaus.org 127.0.0.2-127.0.0.11=reject"],
                "sender_authentication": self.checks})
        if features.has_clamav:
            text += toml_section("clamav", {"enabled": self.clamav,
                                            "address": features.clamd_socket})
        if features.has_bayes:
            text += toml_section("bayes", {"enabled": self.checks, "autolearn": False})
        return text

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    def start(self) -> BenchGateway:
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def pids(self) -> list[int]:
        return process_tree(self.gateway.process.pid) if self.gateway.process else []

    def worker_pids(self) -> list[int]:
        """The processes that hold sessions (the supervisor only forks with workers > 1)."""
        pids = self.pids()
        return pids[1:] if len(pids) > 1 else pids
