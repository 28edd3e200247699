"""A small Internet in network namespaces for the firewall tests.

::

    vendor  207.219.44.10, .11 (in the vendor netblock), 198.51.100.10 (outside)
            2001:db8:44::10, ::11 (in),                   2001:db8:99::10 (outside)
       |
    router ---- attacker 203.0.113.66, 2001:db8:66::66
       |
    appliance 192.0.2.10, 2001:db8:a::10   (listeners on 22, 25, 80)
       |
    internal 172.31.5.2 (the LAN behind the appliance: 172.31.5.0/24, fd00:5::/64)

The appliance namespace gets the ruleset through the real ``portcullis firewall apply``;
nothing here touches the root namespace's firewall or routing.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support import dirs, netns

HERE = Path(__file__).parent
REPO = HERE.parents[2]
RULESET = REPO / "firewall" / "portcullis.nft"
ROLE_DEFAULTS = REPO / "roles" / "firewall" / "defaults" / "main.yml"
PORTCULLIS = [sys.executable, "-m", "portcullis"]

APPLIANCE, APPLIANCE6 = "192.0.2.10", "2001:db8:a::10"
VENDOR_A, VENDOR_B, OUTSIDER = "207.219.44.10", "207.219.44.11", "198.51.100.10"
VENDOR_A6, VENDOR_B6, OUTSIDER6 = "2001:db8:44::10", "2001:db8:44::11", "2001:db8:99::10"
ATTACKER, ATTACKER6 = "203.0.113.66", "2001:db8:66::66"
LAN_SPOOF, LAN_SPOOF6 = "172.31.5.99", "fd00:5::99"


@dataclass
class Site:
    net: netns.Network
    router: netns.Netns
    appliance: netns.Netns
    vendor: netns.Netns
    attacker: netns.Netns
    internal: netns.Netns
    state: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    config_path: Path | None = None

    # -- the firewall under test --------------------------------------------------------
    def write_config(self, **firewall: object) -> Path:
        """portcullis.toml for the appliance, with these [firewall] values."""
        values = {"ruleset": str(RULESET), "control_socket": str(self.state / "control.sock"),
                  "control_group": "", **firewall}
        lines = ["[smtp]", 'listen = "127.0.0.1:2525"', "[web]", 'listen = "127.0.0.1:8080"',
                 "[store]", f'dir = "{self.state}"', "[firewall]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        self.config_path = self.state / "portcullis.toml"
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def apply(self, **firewall: object) -> None:
        """A fresh firewall (no state from earlier tests) with these site values."""
        self.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)
        self.write_config(**firewall)
        self.cli("firewall", "apply")

    def lasting_handshakes(self) -> str:
        """A copy of the ruleset whose unfinished handshakes keep their conntrack entries
        the kernel's default 60 s, not 5: for a test of a cap, which a flood reaches only
        if its entries outlive it, whatever this machine's speed."""
        text = RULESET.read_text()
        assert text.count("syn_sent: 5, syn_recv: 5") == 1
        path = self.state / "lasting-handshakes.nft"
        path.write_text(text.replace("syn_sent: 5, syn_recv: 5", "syn_sent: 60, syn_recv: 60"))
        return str(path)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``portcullis`` run inside the appliance namespace (as root there)."""
        assert self.config_path is not None
        result = subprocess.run(self.appliance.cmd(*PORTCULLIS, "--config",
                                                   str(self.config_path), *args),
                                capture_output=True, text=True, timeout=60, cwd=REPO,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"portcullis {' '.join(args)} failed: {result.stderr}")
        return result

    def status(self) -> dict:
        return json.loads(self.cli("firewall", "status", "--json").stdout)

    def counters(self) -> dict[str, int]:
        return {c["name"]: c["packets"] for c in self.status()["counters"]}

    def conntrack_count(self) -> int:
        """Connections the appliance's conntrack table holds now (its namespace's own)."""
        return int(self.appliance.run("cat", "/proc/sys/net/netfilter/nf_conntrack_count")
                   .stdout)

    def syn_proxy_stats(self) -> dict[str, int]:
        """The SYN proxy's own counts in the appliance namespace (syn_received,
        cookie_invalid, cookie_valid...), summed over the CPUs."""
        lines = self.appliance.run("cat", "/proc/net/stat/synproxy").stdout.decode().split("\n")
        names = lines[0].split()
        rows = [[int(value, 16) for value in line.split()] for line in lines[1:] if line]
        return {name: sum(row[n] for row in rows) for n, name in enumerate(names)}

    # -- traffic ------------------------------------------------------------------------
    def probe(self, ns: netns.Netns, probes: list[dict]) -> list[dict]:
        """Connection attempts from ``ns``, one after another, each with a source address."""
        result = ns.run(sys.executable, str(HERE / "probe.py"), json.dumps(probes),
                        timeout=60 + sum(p.get("timeout", 1.0) for p in probes))
        return json.loads(result.stdout)

    def connects(self, ns: netns.Netns, src: str, dst: str, port: int,
                 timeout: float = 1.0) -> bool:
        return self.probe(ns, [{"src": src, "dst": dst, "port": port,
                                "timeout": timeout}])[0]["connected"]

    def start(self, ns: netns.Netns, *cmd: str, ready: str, timeout: float = 20
              ) -> subprocess.Popen:
        """A long-running process in ``ns`` that prints ``ready`` once it serves."""
        log = (self.state / f"proc-{len(self.processes)}.log").open("w+")
        process = ns.popen(*cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
        self.processes.append(process)
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if ready in line:
                return process
            if not line and process.poll() is not None:
                break
        log.seek(0)
        raise RuntimeError(f"{cmd} did not become ready: {log.read()}")

    def log_of(self, process: subprocess.Popen) -> str:
        """What a process started with ``start`` wrote to stderr so far."""
        return (self.state / f"proc-{self.processes.index(process)}.log").read_text()

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def portcullis(self, *args: str) -> list[str]:
        """A ``portcullis`` command line with this site's configuration."""
        assert self.config_path is not None
        return [*PORTCULLIS, "--config", str(self.config_path), *args]

    def nmap(self, ns: netns.Netns, *args: str) -> dict[int, str]:
        """Run nmap from ``ns`` without retries; return {port: state}."""
        result = ns.run("nmap", "-Pn", "-n", "--max-retries", "0", "--initial-rtt-timeout",
                        "100ms", "--max-rtt-timeout", "100ms", "-oG", "-", *args, timeout=120)
        states: dict[int, str] = {}
        for line in result.stdout.decode().splitlines():
            if "Ports:" in line:
                # Long runs of one state are summarised ("Ignored State"): not listed.
                for item in line.split("Ports:", 1)[1].split("\t")[0].split(","):
                    if "/" in item:
                        port, state = item.strip().split("/")[:2]
                        states[int(port)] = state
        return states

    def settle(self, timeout: float = 15) -> None:
        """Wait until every host reaches the appliance (no firewall loaded yet): until
        neighbour discovery has run and link-local addresses have left their tentative
        state, a first IPv6 connection can be lost, which no test should mistake for a drop.
        """
        for ns, src, dst in ((self.vendor, VENDOR_A6, APPLIANCE6),
                             (self.attacker, ATTACKER6, APPLIANCE6),
                             (self.vendor, VENDOR_A, APPLIANCE),
                             (self.attacker, ATTACKER, APPLIANCE)):
            deadline = time.monotonic() + timeout
            while not self.connects(ns, src, dst, 25):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{dst} not reachable from {src}")
                time.sleep(0.2)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.net.close()


@contextlib.contextmanager
def addresses_of_the_same_64(ns: netns.Netns, own: str, prefix: str, count: int
                             ) -> Iterator[list[str]]:
    """``count`` further addresses (``prefix`` + 100, 101, ...) on the interface that holds
    ``own``: one host taking a fresh address of its /64 for each connection."""
    listed = ns.run("ip", "-o", "-6", "addr", "show").stdout.decode()
    device = next(line.split()[1] for line in listed.splitlines() if own + "/" in line)
    added = [f"{prefix}{n:x}" for n in range(0x100, 0x100 + count)]
    for address in added:
        ns.run("ip", "-6", "addr", "add", f"{address}/64", "dev", device, "nodad")
    try:
        yield added
    finally:
        for address in added:
            ns.run("ip", "-6", "addr", "del", f"{address}/64", "dev", device, check=False)


def build_site() -> Site:
    net = netns.Network()
    try:
        router = net.router("fwrouter")
        appliance = net.bare("fwappliance")
        vendor = net.bare("fwvendor")
        attacker = net.bare("fwattacker")
        internal = net.bare("fwinternal")

        # The kernel settings the firewall role gives the appliance (SYN proxy: tcp_loose off).
        for key, value in yaml.safe_load(ROLE_DEFAULTS.read_text())["firewall_sysctl"].items():
            appliance.sysctl(key, value)
        router_if, app_if = net.link(router, appliance, "192.0.2.1/24", f"{APPLIANCE}/24")
        router.add_address("2001:db8:a::1/64", router_if)
        appliance.add_address(f"{APPLIANCE6}/64", app_if)
        appliance.add_route("default", "192.0.2.1")
        appliance.add_route("default", "2001:db8:a::1")

        router_if, vendor_if = net.link(router, vendor, "207.219.44.1/24", f"{VENDOR_A}/24")
        for cidr in ("198.51.100.1/24", "2001:db8:44::1/64", "2001:db8:99::1/64"):
            router.add_address(cidr, router_if)
        for cidr in (f"{VENDOR_B}/24", f"{OUTSIDER}/24", f"{VENDOR_A6}/64",
                     f"{VENDOR_B6}/64", f"{OUTSIDER6}/64"):
            vendor.add_address(cidr, vendor_if)
        vendor.add_route("default", "207.219.44.1")
        vendor.add_route("default", "2001:db8:44::1")

        router_if, attacker_if = net.link(router, attacker, "203.0.113.1/24",
                                          f"{ATTACKER}/24")
        router.add_address("2001:db8:66::1/64", router_if)
        attacker.add_address(f"{ATTACKER6}/64", attacker_if)
        attacker.add_route("default", "203.0.113.1")
        attacker.add_route("default", "2001:db8:66::1")
        # Addresses of the appliance's LAN, for spoofing attempts from outside.
        attacker.add_address(f"{LAN_SPOOF}/32", attacker_if)
        attacker.add_address(f"{LAN_SPOOF6}/128", attacker_if)

        app_lan, internal_if = net.link(appliance, internal, "172.31.5.1/24", "172.31.5.2/24")
        appliance.add_address("fd00:5::1/64", app_lan)
        internal.add_address("fd00:5::2/64", internal_if)
    except BaseException:
        net.close()
        raise
    return Site(net=net, router=router, appliance=appliance, vendor=vendor,
                attacker=attacker, internal=internal, state=dirs.daemon_dir("firewall"))


@pytest.fixture(scope="session")
def site(root_required) -> Site:
    built = build_site()
    try:
        built.start(built.appliance, sys.executable, str(HERE / "listeners.py"),
                    "22", "25", "80", ready="ready")
        built.settle()
        yield built
    finally:
        built.close()
