"""The gateway under test: ``portcullis serve`` as a real process with its own state."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import process

PORTCULLIS = [sys.executable, "-m", "portcullis"]
NO_CLAMAV = "[clamav]\nenabled = false\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 20.0,
                  process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port}")


# Defenses that look things up in DNS or refuse mail by what they remember are off
# unless a test turns them on: tests get no DNS beyond loopback, and a test about
# something else should not meet greylisting or a harvest block.
DEFENSES_OFF: dict[str, object] = {
    "dnsbl_zones": [], "uribl_zones": [], "sender_authentication": False,
    "greylisting": False, "greylist_tagged": False, "harvest_threshold": 0,
}


def _toml(value: object) -> str:
    return json.dumps(value)   # JSON scalars and lists of strings are valid TOML


class Gateway:
    """A gateway process; ``listen`` holds extra addresses (e.g. root-side veth ends).

    ``dns_port``: a DNS server on 127.0.0.1 (e.g. ``tests.support.dns.Dnsmasq``); without
    one, lookups go to a loopback port where nothing answers, never off the machine.
    ``defenses``: ``[defenses]`` values over ``DEFENSES_OFF``.
    ``clamav``: the ``[clamav]`` section (see ``tests.support.clamd.Clamd``); by default
    virus scanning is off, since most tests run no clamd (and with scanning on and no clamd
    every message would be deferred, as designed).
    """

    def __init__(self, state_dir: Path, *, listen: list[str] | None = None,
                 settings: str = "", dns_port: int | None = None,
                 dns_timeout: float = 1.0,
                 defenses: dict[str, object] | None = None,
                 clamav: str | None = None) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.web_port = free_port()
        self.addresses = ["127.0.0.1", *(listen or [])]
        self.config_path = state_dir / "portcullis.toml"
        listen_list = ", ".join(f'"{a}:{self.port}"' for a in self.addresses)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f'[smtp]\nlisten = [{listen_list}]\nhostname = "gw.test"\n'
            f"{settings}\n"
            f'[web]\nlisten = "127.0.0.1:{self.web_port}"\n'
            f'[store]\ndir = "{state_dir}"\n'
            f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_port or free_port()}\n'
            f"timeout = {dns_timeout}\n"
            "[defenses]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value
                                      in {**DEFENSES_OFF, **(defenses or {})}.items())
            + f"{clamav if clamav is not None else NO_CLAMAV}\n")
        self.process: subprocess.Popen | None = None
        self.stderr_path = state_dir / "gateway.stderr"
        # Run the gateway under another command (e.g. ``unshare -m ... sh -c '...; exec "$@"'``
        # for a private mount namespace); that command must exec the gateway in the end.
        self.command_prefix: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PORTCULLIS_CONFIG": str(self.config_path)}

    def add_config(self, text: str) -> None:
        """Append TOML (new sections) to the configuration; takes effect on (re)start."""
        with self.config_path.open("a") as handle:
            handle.write("\n" + text + "\n")

    def start(self) -> Gateway:
        self.process = subprocess.Popen([*self.command_prefix, *PORTCULLIS, "serve"],
                                        env=self.env,
                                        stdout=subprocess.DEVNULL,
                                        stderr=self.stderr_path.open("ab"))
        try:
            wait_for_port("127.0.0.1", self.port, process=self.process)
        except (RuntimeError, TimeoutError):
            raise RuntimeError(f"gateway did not start:\n{self.stderr()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int | None:
        return process.stop(self.process, timeout, sig)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def worker_pids(self, expected: int = 0, timeout: float = 10) -> list[str]:
        """The worker processes (the supervisor's children, with ``workers`` > 1); with
        ``expected``, waiting up to ``timeout`` seconds for that many (the port answers as
        soon as the supervisor has bound it, before it has forked every worker)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            pids = subprocess.run(["pgrep", "-P", str(self.process.pid)],
                                  capture_output=True, text=True, check=False).stdout.split()
            if len(pids) >= expected or time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def cli(self, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*PORTCULLIS, *args], env=self.env, capture_output=True,
                                text=True, input=input, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"portcullis {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def cli_json(self, *args: str) -> object:
        return json.loads(self.cli(*args, "--json").stdout)

    def archive(self, **filters: str) -> list[dict]:
        args = ["archive", "search", "--limit", "1000"]
        for key, value in filters.items():
            args += [f"--{key.replace('_', '-')}", value]
        return self.cli_json(*args)  # type: ignore[return-value]

    def decision_log(self) -> list[str]:
        path = self.state_dir / "portcullis.log"
        return path.read_text().splitlines() if path.exists() else []
