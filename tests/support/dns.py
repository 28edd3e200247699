"""DNS for the tests: a real dnsmasq serving a local zone on loopback, and a resolver
that never answers.

dnsmasq runs with ``--no-resolv`` and ``--local=/DOMAIN/`` for every domain it serves, so
names it does not hold get NXDOMAIN at once and nothing is ever forwarded off the
machine; names outside those domains are REFUSED.

Tests change records between restarts, so by default every answer has TTL 0 and "no such
name" carries no SOA: nothing may be cached.  ``ttl=`` serves the domains the way real
zones are served instead (the benchmark's use): authoritative, records with that TTL, and
negative answers with the zone's SOA, which RFC 2308 lets a resolver cache for as long.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from portcullis.addresses import parse_ip
from portcullis.resolver import reversed_ip
from tests.support import process

# A question in dnsmasq's query log ("auth[...]" when it answers authoritatively).
_ASKED = re.compile(r"\]: (?:query|auth)\[\w+\] (\S+) from ")


def free_dns_port() -> int:
    """A port on 127.0.0.1 free for UDP and for TCP: dnsmasq serves both, and a port
    only UDP had free failed its start now and then ("Address already in use")."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port on 127.0.0.1 free for both UDP and TCP")


class Dnsmasq:
    """A local zone: add records, then ``start()`` (``restart()`` after changes)."""

    def __init__(self, root: Path, domains: list[str], *, ttl: int = 0) -> None:
        self.root = root
        self.domains = list(domains)
        self.ttl = ttl
        self.port = free_dns_port()
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self.log_path = root / "dnsmasq.log"
        root.mkdir(parents=True, exist_ok=True)

    # -- records --------------------------------------------------------------------------

    def address(self, name: str, *addresses: str) -> Dnsmasq:
        """A and/or AAAA records for ``name``."""
        self.lines.append(f"host-record={name},{','.join(addresses)}")
        return self

    def txt(self, name: str, text: str) -> Dnsmasq:
        """A TXT record; long texts are split into 255-byte strings as DNS requires."""
        if '"' in text or "\\" in text:
            raise ValueError("keep quotes and backslashes out of test TXT records")
        chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
        self.lines.append(f"txt-record={name}," + ",".join(f'"{c}"' for c in chunks))
        return self

    def mx(self, name: str, host: str, preference: int = 10) -> Dnsmasq:
        self.lines.append(f"mx-host={name},{host},{preference}")
        return self

    def listing(self, zone: str, ip: str, code: str = "127.0.0.2") -> Dnsmasq:
        """List ``ip`` in the DNSBL ``zone`` (reversed octets, or nibbles for IPv6)."""
        address = parse_ip(ip)
        assert address is not None, ip
        return self.address(f"{reversed_ip(address)}.{zone}", code)

    # -- process --------------------------------------------------------------------------

    def _write(self) -> Path:
        conf = self.root / "dnsmasq.conf"
        conf.write_text("\n".join([
            "no-resolv", "no-hosts", "keep-in-foreground", "bind-interfaces",
            "listen-address=127.0.0.1", f"port={self.port}", f"local-ttl={self.ttl}",
            f"log-facility={self.log_path}", "log-queries",
            *(f"local=/{d}/" for d in self.domains), *self._authority(), *self.lines]) + "\n")
        return conf

    def _authority(self) -> list[str]:
        """Authoritative service with a SOA (its minimum is the negative TTL), if ``ttl``."""
        if not self.ttl:
            return []
        return [f"auth-server=ns.{self.domains[0]},127.0.0.1", f"auth-ttl={self.ttl}",
                f"auth-soa=1,hostmaster.{self.domains[0]},1200,120,604800",
                *(f"auth-zone={d}" for d in self.domains)]

    def start(self) -> Dnsmasq:
        conf = self._write()
        self.process = subprocess.Popen(
            ["dnsmasq", f"--conf-file={conf}", "--pid-file=", "--user=root"],
            stdout=subprocess.DEVNULL, stderr=(self.root / "dnsmasq.stderr").open("wb"))
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import dns.message
        import dns.query

        deadline = time.monotonic() + 10
        query = dns.message.make_query(f"probe.{self.domains[0]}", "A")
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("dnsmasq exited: "
                                   + (self.root / "dnsmasq.stderr").read_text())
            with contextlib.suppress(OSError, dns.exception.Timeout):
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                return
        raise RuntimeError("dnsmasq did not answer")

    def stop(self) -> None:
        process.stop(self.process, timeout=10)
        self.process = None

    def restart(self) -> Dnsmasq:
        self.stop()
        return self.start()

    def queries(self) -> list[str]:
        """The names asked so far (from dnsmasq's query log)."""
        if not self.log_path.exists():
            return []
        return _ASKED.findall(self.log_path.read_text())


@contextlib.contextmanager
def silent_resolver() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that receives DNS queries and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
