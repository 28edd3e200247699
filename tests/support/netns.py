"""Network namespaces as test hosts, joined to the root namespace (or each other) by veth.

Names carry the test process's pid so parallel or crashed runs never collide, and stale
namespaces of dead runs are removed on the next start.  Test traffic stays on loopback
and these namespaces.

A namespace can also have files of its own under /etc (``Netns.etc_file``): ``ip netns
exec`` bind-mounts /etc/netns/NAME/FILE over /etc/FILE for every process it starts, so a
test host can have, say, an account in /etc/passwd that the machine itself does not.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

PREFIX = "pct"
ETC_NETNS = Path("/etc/netns")
_counter = itertools.count(1)
# Subnets 10.<base>.<n>.0/24, shared by every Network of this process; the pid spreads
# parallel runs apart.
_subnets = itertools.count((os.getpid() % 25) * 10)


def sh(*cmd: str, check: bool = True, input: bytes | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(cmd, capture_output=True, input=input, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result


def remove_stale() -> None:
    """Delete namespaces left behind by test processes that no longer run."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return
    for entry in netns_dir.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)-.*", entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            sh("ip", "netns", "del", entry.name, check=False)
    if ETC_NETNS.is_dir():
        for entry in ETC_NETNS.iterdir():
            match = re.fullmatch(rf"{PREFIX}(\d+)-.*", entry.name)
            if match and not Path(f"/proc/{match.group(1)}").exists():
                shutil.rmtree(entry, ignore_errors=True)


class Netns:
    """One namespace: a host with its own interfaces, routes and firewall."""

    def __init__(self, label: str) -> None:
        self.name = f"{PREFIX}{os.getpid()}-{label}-{next(_counter)}"[:60]
        sh("ip", "netns", "add", self.name)
        self.run("ip", "link", "set", "lo", "up")
        self.addresses: list[str] = []

    def cmd(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, input: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return sh(*self.cmd(*cmd), check=check, input=input, timeout=timeout)

    def popen(self, *cmd: str, **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(*cmd), **kwargs)  # type: ignore[call-overload]

    def add_address(self, cidr: str, dev: str = "eth0") -> str:
        """Give the host a further address (e.g. a second server on one host); IPv6
        addresses skip duplicate address detection so they are usable at once."""
        family = "-6" if ":" in cidr else "-4"
        extra = ["nodad"] if family == "-6" else []
        self.run("ip", family, "addr", "add", cidr, "dev", dev, *extra)
        address = cidr.split("/")[0]
        self.addresses.append(address)
        return address

    def etc_file(self, name: str, content: str) -> Path:
        """Give this host its own /etc/NAME (seen by every command run in it from now on)."""
        directory = ETC_NETNS / self.name
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = directory / name
        path.write_text(content)
        path.chmod(0o644)
        return path

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(ETC_NETNS / self.name, ignore_errors=True)

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a namespaced sysctl inside this namespace only."""
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def add_route(self, prefix: str, via: str) -> None:
        """A route (``default`` or a CIDR) through a neighbour's address."""
        self.run("ip", "-6" if ":" in via else "-4", "route", "add", prefix, "via", via)


class Network:
    """A set of namespaces; each ``host`` gets a /24 of its own to the root namespace
    (root side .1, host side .2) or joins a shared link."""

    def __init__(self, base: int = 77) -> None:
        self.base = base
        self.hosts: list[Netns] = []
        self._root_links: list[str] = []
        remove_stale()

    def host(self, label: str, *, ipv6: bool = False) -> tuple[Netns, str, str]:
        """A namespace linked to the root namespace; returns (ns, host ip, root-side ip)."""
        ns = Netns(label)
        self.hosts.append(ns)
        subnet = self._free_subnet()
        host_ip, root_ip = f"10.{self.base}.{subnet}.2", f"10.{self.base}.{subnet}.1"
        root_if, ns_if = f"pv{os.getpid() % 100000}x{subnet}", "eth0"
        sh("ip", "link", "del", root_if, check=False)
        sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", "tmp" + root_if)
        sh("ip", "link", "set", "tmp" + root_if, "netns", ns.name)
        ns.run("ip", "link", "set", "tmp" + root_if, "name", ns_if)
        sh("ip", "addr", "add", f"{root_ip}/24", "dev", root_if)
        sh("ip", "link", "set", root_if, "up")
        ns.run("ip", "addr", "add", f"{host_ip}/24", "dev", ns_if)
        ns.run("ip", "link", "set", ns_if, "up")
        ns.run("ip", "route", "add", "default", "via", root_ip)
        if ipv6:
            v6_host, v6_root = f"fd77:{subnet:x}::2", f"fd77:{subnet:x}::1"
            sh("ip", "-6", "addr", "add", f"{v6_root}/64", "dev", root_if, "nodad")
            ns.run("ip", "-6", "addr", "add", f"{v6_host}/64", "dev", ns_if, "nodad")
            ns.run("ip", "-6", "route", "add", "default", "via", v6_root)
        self._root_links.append(root_if)
        ns.addresses.append(host_ip)
        return ns, host_ip, root_ip

    def _free_subnet(self) -> int:
        """The next /24 no other run has on the root namespace: runs whose pids spread
        them onto the same subnets would otherwise route each other's replies away."""
        listed = sh("ip", "-4", "-o", "addr", "show").stdout.decode()
        taken = set(re.findall(rf"inet 10\.{self.base}\.(\d+)\.\d+/", listed))
        for _ in range(250):
            subnet = next(_subnets) % 250 + 1
            if str(subnet) not in taken:
                return subnet
        raise RuntimeError(f"every 10.{self.base}.N.0/24 is in use on the root namespace")

    def bare(self, label: str) -> Netns:
        """A namespace with only loopback; join it to others with ``link``."""
        ns = Netns(label)
        self.hosts.append(ns)
        return ns

    def router(self, label: str) -> Netns:
        """A bare namespace that forwards IPv4 and IPv6 between its links."""
        ns = self.bare(label)
        ns.sysctl("net.ipv4.ip_forward", 1)
        ns.sysctl("net.ipv6.conf.all.forwarding", 1)
        return ns

    def link(self, a: Netns, b: Netns, a_addr: str, b_addr: str) -> tuple[str, str]:
        """Join two namespaces with a veth pair; addresses in CIDR form (v4 or v6).
        Returns the interface names (in a, in b), for more addresses (``add_address``).

        The root namespace does not forward (ip_forward is off and tests must not change
        it), so hosts that talk to each other need a direct link like this one.
        """
        n = next(_subnets)
        a_if, b_if = f"va{os.getpid() % 100000}x{n}", f"vb{os.getpid() % 100000}x{n}"
        sh("ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if)
        sh("ip", "link", "set", a_if, "netns", a.name)
        sh("ip", "link", "set", b_if, "netns", b.name)
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            family = "-6" if ":" in addr else "-4"
            extra = ["nodad"] if family == "-6" else []
            ns.run("ip", family, "addr", "add", addr, "dev", ifname, *extra)
            ns.run("ip", "link", "set", ifname, "up")
            ns.addresses.append(addr.split("/")[0])
        return a_if, b_if

    def close(self) -> None:
        for ns in self.hosts:
            ns.delete()
        for link in self._root_links:
            sh("ip", "link", "del", link, check=False)


@contextlib.contextmanager
def network(base: int = 77) -> Iterator[Network]:
    net = Network(base)
    try:
        yield net
    finally:
        net.close()
