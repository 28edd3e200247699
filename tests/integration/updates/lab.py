"""The update lab: real sshd, real agent, real releases, three hosts.

    vendor     207.219.44.10 (inside the vendor netblocks): runs ``portcullis-vendor``
    rogue      198.51.100.66 (outside them): has stolen the vendor's SSH key and bundles
    appliance  192.0.2.10: OpenSSH sshd configured from the update_agent role's templates,
               the ``pcupdate`` account (in the appliance's own /etc/passwd only), root's
               installer behind systemd-socket-activate (the role's socket unit, without
               systemd), releases under opt/releases with opt/current, and the gateway
               started from opt/current as its service

The vendor's known_hosts also pins a second appliance, 192.0.2.12 (never started: only its
host key is known, enough to build a configuration bundle for it).

The appliance's files live in one directory tree whose every parent is root's (sshd's
StrictModes), laid out like the real appliance's /etc/portcullis, /var/lib, /opt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from portcullis.store import open_store
from portcullis.update import UpdateAttempt, history, transfer
from portcullis.update.releases import Releases, copy_release
from tests.support import dirs
from tests.support.clamd import Clamd
from tests.support.netns import Netns, Network, sh

VENDOR_IP = "207.219.44.10"
ROGUE_IP = "198.51.100.66"
APPLIANCE_IP = "192.0.2.10"
IMPOSTOR_IP = "192.0.2.11"         # the appliance again, but known_hosts expects another key
OTHER_APPLIANCE_IP = "192.0.2.12"  # another appliance of the vendor's (its host key only)
KEYS_ONLY_PORT = 2022              # an sshd with only the authorized_keys restrictions
REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "update_agent"
VENV_BIN = Path(sys.executable).parent
VENDOR_CLI = str(VENV_BIN / "portcullis-vendor")
# Releases are built on Debian's Python: the unprivileged agent must be able to run them
# (a Python under root's home would not be).
SYSTEM_PYTHON = "/usr/bin/python3.11"
# The appliance's pip wheel (the image's comes from the wheelhouse: pip 23.0.1 as well):
# Debian's python3-pip-whl.
SYSTEM_PIP_WHEELS = Path("/usr/share/python-wheels")
SERVICES = Path(__file__).with_name("services.py")
BASE_VERSION = "0.1.0"
OLD_PIP_RAN = "the bundle's old pip ran"


# -- things built once per session ---------------------------------------------------------

def source_tree(dest: Path, version: str, *, broken: bool = False) -> Path:
    """A copy of the repository's Python sources with another version number; ``broken``
    makes the gateway refuse to start (the release still imports and installs)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", dest)
    shutil.copytree(REPO / "app", dest / "app", ignore=ignore)
    shutil.copytree(REPO / "update-server", dest / "update-server", ignore=ignore)
    init = dest / "app" / "portcullis" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"',
                           init.read_text()))
    if broken:
        server = dest / "app" / "portcullis" / "smtp" / "server.py"
        server.write_text('raise SystemExit("this release is broken on purpose")\n'
                          + server.read_text())
    return dest


def build_wheel(source: Path, out: Path) -> Path:
    from portcullis_vendor.build import build_wheel as vendor_build_wheel

    out.mkdir(parents=True, exist_ok=True)
    return vendor_build_wheel(source, out)


def system_pip_wheel() -> Path | None:
    found = sorted(SYSTEM_PIP_WHEELS.glob("pip-*-py3-none-any.whl"))
    return found[-1] if found else None


def release_base(dest: Path, wheel: Path, pip_wheel: Path) -> Path:
    """The appliance's first release: a venv with portcullis and its dependencies and no
    pip, which runs from its wheel (as the mailfilter role makes it)."""
    sh(SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(dest), timeout=120)
    sh(str(dest / "bin" / "python"), f"{pip_wheel}/pip", "install", "--quiet",
       "--disable-pip-version-check", str(wheel), timeout=600)
    assert not has_pip(dest), f"{dest} has pip installed"
    return dest


def has_pip(venv: Path) -> bool:
    """Whether pip is installed in ``venv`` (a release must not have it)."""
    return sh(str(venv / "bin" / "python"), "-c", "import pip", check=False).returncode == 0


def pip_wheel_of(python: str, out: Path) -> Path:
    """A wheel of the pip ``python`` has installed (its package and dist-info zipped): the
    test venv's pip, newer than the appliance's, for a bundle to carry."""
    script = ("import importlib.metadata as m; d = m.distribution('pip'); print(d.version); "
              "print(d.locate_file('')); "
              "print(next(f.parent for f in d.files if f.name == 'METADATA'))")
    version, site, info = sh(python, "-c", script).stdout.decode().split()
    wheel = out / f"pip-{version}-py3-none-any.whl"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for top in ("pip", info):
            for path in sorted((Path(site) / top).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(site).as_posix())
    return wheel


def old_pip_wheel(out: Path, version: str = "9.0.1") -> Path:
    """A pip wheel of a version older than any appliance's, standing in for an old pip a
    signed bundle might carry: run, it fails with OLD_PIP_RAN (so a release it built
    cannot pass unnoticed)."""
    wheel = out / f"pip-{version}-py3-none-any.whl"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pip/__init__.py", "")
        archive.writestr("pip/__main__.py", f"raise SystemExit({OLD_PIP_RAN!r})\n")
        archive.writestr(f"pip-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: pip\nVersion: {version}\n")
    return wheel


def vendor(*args: str, ns: Netns | None = None, check: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``portcullis-vendor`` (in a namespace if given)."""
    cmd = [VENDOR_CLI, *args]
    if ns is not None:
        cmd = ns.cmd(*cmd)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"portcullis-vendor {' '.join(args)} failed "
                             f"({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def render(template: str, variables: dict[str, Any]) -> str:
    """Render one of the role's templates the way Ansible does (trim_blocks)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     keep_trailing_newline=True, autoescape=False)
    environment.filters["dirname"] = os.path.dirname      # as Ansible's filter of that name
    return environment.get_template(template).render(**variables)


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def free_id(taken: set[int], start: int = 64100) -> int:
    candidate = start
    while candidate in taken:
        candidate += 1
    return candidate


@dataclass
class Keys:
    """The vendor's keys: signing keys k1 (trusted at first), k2 (rotated to), rogue
    (never trusted), and the SSH login key; plus the appliance's host key and another
    appliance's."""

    directory: Path

    def signing(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def public(self, name: str) -> Path:
        return self.directory / f"{name}.pub"

    @property
    def ssh(self) -> Path:
        return self.directory / "vendor_ssh"

    @property
    def host(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def impostor_host(self) -> Path:
        return self.directory / "impostor_host_key"

    @property
    def other_appliance_host(self) -> Path:
        return self.directory / "other_appliance_host_key"

    @classmethod
    def create(cls, directory: Path) -> Keys:
        for name in ("k1", "k2", "rogue"):
            vendor("keygen", "--name", name, "--dir", str(directory))
        made = cls(directory)
        for path in (made.ssh, made.host, made.impostor_host, made.other_appliance_host):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path))
        return made


# -- the appliance ---------------------------------------------------------------------------

class Lab:
    # As the ssh role's first-boot unit leaves the public half of a host key: readable by
    # all, so the unprivileged agent tells which appliance this is before root's installer.
    HOST_PUBLIC_KEY_MODE = 0o644

    def __init__(self, net: Network, base: Path, keys: Keys, pip_wheel: Path) -> None:
        self.net = net
        self.base = base
        self.keys = keys
        self.system_pip_wheel = pip_wheel
        self.root = dirs.secure_dir("update-lab")
        self.etc = self.root / "etc"
        self.update_etc = self.etc / "update"
        self.state_dir = self.root / "state"
        self.spool_dir = self.root / "spool"
        self.run_dir = self.root / "run"
        self.releases_dir = self.root / "opt" / "releases"
        self.current = self.root / "opt" / "current"
        self.pip_wheel = self.root / "lib" / "pip.whl"     # the mailfilter role's copy
        self.store_dir = self.root / "store"
        self.clamav_dir = self.root / "clamav"      # tests.support.clamd's layout
        self.clamav_db = self.clamav_dir / "db"
        self.clamd_socket = self.clamav_dir / "run" / "clamd.ctl"
        self.clamd: Clamd | None = None
        self.ssh_dir = self.root / "ssh"
        self.vendor_dir = self.root / "vendor"
        self.host_public_key = self.ssh_dir / "ssh_host_ed25519_key.pub"
        self.installer_log = self.root / "installer.log"
        self.processes: list[subprocess.Popen] = []

    # -- setup ----------------------------------------------------------------------------

    def start(self) -> Lab:
        self.appliance = self.net.bare("appliance")
        self.vendor = self.net.bare("vendor")
        self.rogue = self.net.bare("rogue")
        # Point-to-point links: the vendor's and the rogue's addresses are in unrelated
        # networks, so each end gets a /32 and a host route to the other.
        for host, address in ((self.vendor, VENDOR_IP), (self.rogue, ROGUE_IP)):
            host_if, appliance_if = self.net.link(host, self.appliance, f"{address}/32",
                                                  f"{APPLIANCE_IP}/32")
            host.run("ip", "route", "add", f"{APPLIANCE_IP}/32", "dev", host_if)
            self.appliance.run("ip", "route", "add", f"{address}/32", "dev", appliance_if,
                               "src", APPLIANCE_IP)
            if host is self.vendor:
                host.run("ip", "route", "add", f"{IMPOSTOR_IP}/32", "dev", host_if)
        self.appliance.run("ip", "addr", "add", f"{IMPOSTOR_IP}/32", "dev", "lo")
        self._accounts()
        self._directories()
        self._configuration()
        self._sshd()
        self._installer()
        self._vendor_side()
        return self

    def _accounts(self) -> None:
        """pcupdate and the store group exist only in the appliance's /etc."""
        passwd = [line for line in Path("/etc/passwd").read_text().splitlines()
                  if line and not line.startswith("pcupdate:")]
        group = [line for line in Path("/etc/group").read_text().splitlines()
                 if line and not line.startswith(("pcupdate:", "portcullis:"))]
        self.uid = free_id({int(line.split(":")[2]) for line in passwd})
        gids = {int(line.split(":")[2]) for line in group}
        self.gid = free_id(gids)
        self.store_gid = free_id(gids | {self.gid})
        passwd.append(f"pcupdate:*:{self.uid}:{self.gid}:Portcullis updates:"
                      f"{self.spool_dir}:/bin/sh")
        group += [f"pcupdate:x:{self.gid}:", f"portcullis:x:{self.store_gid}:pcupdate"]
        self.appliance.etc_file("passwd", "\n".join(passwd) + "\n")
        self.appliance.etc_file("group", "\n".join(group) + "\n")

    def _directories(self) -> None:
        for path in (self.etc, self.update_etc, self.state_dir, self.run_dir,
                     self.releases_dir, self.clamav_db, self.ssh_dir, self.vendor_dir,
                     self.pip_wheel.parent, self.root / "gateway"):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.spool_dir.mkdir(mode=0o700)
        os.chown(self.spool_dir, self.uid, self.gid)
        self.store_dir.mkdir()
        os.chown(self.store_dir, 0, self.store_gid)
        os.chmod(self.store_dir, 0o2770)

    @property
    def variables(self) -> dict[str, Any]:
        """The role's defaults with this lab's paths and test stand-ins."""
        return {**role_defaults(),
                "update_agent_vendor_ssh_keys": [self.keys.ssh.with_suffix(".pub").read_text()
                                                 .strip()],
                "update_agent_portcullis_config": str(self.etc / "portcullis.toml"),
                "update_agent_config_dir": str(self.update_etc),
                "update_agent_state_dir": str(self.state_dir),
                "update_agent_spool_dir": str(self.spool_dir),
                "update_agent_socket": str(self.run_dir / "install.sock"),
                "update_agent_releases_dir": str(self.releases_dir),
                "update_agent_current_link": str(self.current),
                "update_agent_pip_wheel": str(self.pip_wheel),
                "update_agent_clamav_database_dir": str(self.clamav_db),
                "update_agent_clamd_socket": str(self.clamd_socket),
                # sshd's host key, and a type it does not have (skipped, as on an appliance)
                "update_agent_host_keys": [str(self.host_public_key),
                                           str(self.ssh_dir / "ssh_host_ecdsa_key.pub")],
                "update_agent_restart_command": ["/usr/bin/python3", str(SERVICES),
                                                 str(self.root), "restart"],
                "update_agent_services": ["portcullis-gateway.service"],
                "update_agent_health_user": "nobody",
                "update_agent_health_command": ["portcullis-update-agent", "health",
                                                "--check", "smtp"],
                "update_agent_health_timeout": 8}

    def _configuration(self) -> None:
        variables = self.variables
        self.agent_toml = self.update_etc / "agent.toml"
        self.agent_toml.write_text(render("agent.toml.j2", variables))
        (self.update_etc / "authorized_keys").write_text(render("authorized_keys.j2",
                                                                variables))
        self.trust_root = self.update_etc / "trust.json"
        self.initial_trust_root = self.root / "trust-initial.json"
        vendor("trust-root", "--key", str(self.keys.public("k1")), "--out",
               str(self.initial_trust_root))
        self.portcullis_toml = (
            '[smtp]\nlisten = "127.0.0.1:25"\nhostname = "appliance.test"\n'
            '[web]\nlisten = "127.0.0.1:80"\n'
            f'[store]\ndir = "{self.store_dir}"\n')

    def _sshd(self) -> None:
        shutil.copy(self.keys.host, self.ssh_dir / "ssh_host_ed25519_key")
        os.chmod(self.ssh_dir / "ssh_host_ed25519_key", 0o600)
        shutil.copy(self.keys.host.with_suffix(".pub"), self.host_public_key)
        os.chmod(self.host_public_key, self.HOST_PUBLIC_KEY_MODE)
        (self.ssh_dir / "60-portcullis-update-agent.conf").write_text(
            render("sshd-update-agent.conf.j2", self.variables))
        self.sshd_log = self.ssh_dir / "sshd.log"
        # The machine's part (the ssh role's job on the appliance) plus the role's drop-in.
        # SetEnv stands in for /usr/local/bin/portcullis-update-agent -> current/bin.
        config = self.ssh_dir / "sshd_config"
        config.write_text(
            f"ListenAddress {APPLIANCE_IP}:22\nListenAddress {IMPOSTOR_IP}:22\n"
            f"HostKey {self.ssh_dir / 'ssh_host_ed25519_key'}\n"
            f"PidFile {self.ssh_dir / 'sshd.pid'}\n"
            "UsePAM no\nPermitRootLogin no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nStrictModes yes\nLogLevel VERBOSE\n"
            "MaxStartups 50\n"
            f"SetEnv PATH={self.current}/bin:/usr/bin:/bin "
            f"PORTCULLIS_UPDATE_CONFIG={self.agent_toml}\n"
            "AllowUsers root@127.0.0.1\n"
            f"Include {self.ssh_dir / '60-portcullis-update-agent.conf'}\n")
        # A second sshd without the role's sshd settings: only the authorized_keys entry
        # (from=, command=, restrict) stands between a client and the agent there.
        keys_only = self.ssh_dir / "sshd_config.keys-only"
        keys_only.write_text(
            config.read_text().split("AllowUsers")[0].replace(":22\n", f":{KEYS_ONLY_PORT}\n")
            .replace("sshd.pid", "sshd-keys-only.pid")
            + f"Match User pcupdate\n    AuthorizedKeysFile {self.update_etc}/authorized_keys\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        check = self.appliance.run("/usr/sbin/sshd", "-t", "-f", str(config), check=False)
        assert check.returncode == 0, check.stderr.decode()
        self._spawn(self.appliance, "/usr/sbin/sshd", "-D", "-f", str(config),
                    "-E", str(self.sshd_log))
        self._spawn(self.appliance, "/usr/sbin/sshd", "-D", "-f", str(keys_only),
                    "-E", str(self.ssh_dir / "sshd-keys-only.log"))
        self.wait_for_port(self.appliance, APPLIANCE_IP, 22)
        self.wait_for_port(self.appliance, APPLIANCE_IP, KEYS_ONLY_PORT)

    def _installer(self) -> None:
        """Root's installer as the role's socket unit would run it, one per connection."""
        sock = self.run_dir / "install.sock"
        self._spawn(self.appliance, "systemd-socket-activate", "--inetd", "--accept",
                    "--listen", str(sock), "-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                    str(self.current / "bin" / "portcullis-update-agent"), "--config",
                    str(self.agent_toml), "install",
                    stderr=self.installer_log.open("ab"))
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "the installer socket did not appear"
            time.sleep(0.05)
        os.chown(sock, 0, self.gid)     # SocketGroup=pcupdate
        os.chmod(sock, 0o660)           # SocketMode=0660

    def _vendor_side(self) -> None:
        host_key = self.keys.host.with_suffix(".pub").read_text().split()
        impostor_key = self.keys.impostor_host.with_suffix(".pub").read_text().split()
        other_key = self.keys.other_appliance_host.with_suffix(".pub").read_text().split()
        self.known_hosts = self.vendor_dir / "known_hosts"
        self.known_hosts.write_text(
            f"{APPLIANCE_IP} {host_key[0]} {host_key[1]}\n"
            f"[{APPLIANCE_IP}]:{KEYS_ONLY_PORT} {host_key[0]} {host_key[1]}\n"
            f"{IMPOSTOR_IP} {impostor_key[0]} {impostor_key[1]}\n"
            f"{OTHER_APPLIANCE_IP} {other_key[0]} {other_key[1]}\n")
        self.inventory = self.inventory_file("inventory.toml", [("appliance-1", APPLIANCE_IP)])
        # Every appliance the vendor knows: what configuration bundles are built for.
        self.fleet = self.inventory_file("fleet.toml", [("appliance-1", APPLIANCE_IP),
                                                        ("appliance-2", OTHER_APPLIANCE_IP)])

    def bound_to(self, name: str) -> tuple[str, ...]:
        """``portcullis-vendor build`` options making a bundle for appliance ``name`` of the
        fleet (appliance-1: this one; appliance-2: the other)."""
        return ("--inventory", str(self.fleet), "--appliance", name)

    def inventory_file(self, name: str, appliances: list[tuple[str, str]]) -> Path:
        lines = ['known_hosts = "known_hosts"\n']
        for label, address in appliances:
            host, _, port = address.partition(":")
            lines.append(f'[[appliance]]\nname = "{label}"\nhost = "{host}"\n'
                         + (f"port = {port}\n" if port else ""))
        path = self.vendor_dir / name
        path.write_text("\n".join(lines))
        return path

    def _spawn(self, ns: Netns, *cmd: str, stderr: Any = subprocess.DEVNULL) -> None:
        self.processes.append(ns.popen(*cmd, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr))

    @staticmethod
    def wait_for_port(ns: Netns, host: str, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while ns.run("bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}",
                     check=False).returncode != 0:
            assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.services("stop")
        self.stop_clamd()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    # -- per test: a fresh appliance running the base release -----------------------------

    def reset(self) -> None:
        self.services("stop")
        self.stop_clamd()
        shutil.rmtree(self.releases_dir)
        self.releases_dir.mkdir(mode=0o755)
        self.current.unlink(missing_ok=True)
        copy_release(self.base, self.releases_dir / BASE_VERSION)
        Releases(self.releases_dir, self.current).switch(BASE_VERSION)
        shutil.rmtree(self.clamav_dir)
        self.clamav_db.mkdir(parents=True)
        for path in (self.state_dir, self.spool_dir, self.store_dir):
            for entry in path.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        shutil.copy(self.initial_trust_root, self.trust_root)
        shutil.copy(self.system_pip_wheel, self.pip_wheel)
        os.chmod(self.pip_wheel, 0o644)
        os.chmod(self.host_public_key, self.HOST_PUBLIC_KEY_MODE)
        (self.etc / "portcullis.toml").write_text(self.portcullis_toml)
        self.services("restart")
        self.wait_for_port(self.appliance, "127.0.0.1", 25)

    def services(self, action: str) -> None:
        self.appliance.run("/usr/bin/python3", str(SERVICES), str(self.root), action,
                           "portcullis-gateway.service")

    # -- clamd (for signature bundles) ----------------------------------------------------

    def start_clamd(self) -> Clamd:
        """A real clamd (tests.support.clamd: EICAR and a test worm) on the appliance's
        database directory."""
        self.clamd = Clamd(self.clamav_dir).start()
        return self.clamd

    def stop_clamd(self) -> None:
        if self.clamd is not None:
            self.clamd.stop()
        self.clamd = None

    def clamd_scan(self, data: bytes) -> str:
        """What clamd says about ``data`` (INSTREAM)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(20)
            sock.connect(str(self.clamd_socket))
            sock.sendall(b"zINSTREAM\0" + len(data).to_bytes(4, "big") + data
                         + b"\0\0\0\0")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        return reply.rstrip(b"\0").decode()

    # -- observing the appliance ----------------------------------------------------------

    def current_version(self) -> str | None:
        return Releases(self.releases_dir, self.current).current()

    def gateway_pid(self) -> int:
        return int((self.root / "gateway" / "gateway.pid").read_text())

    def running_version(self) -> str:
        """The release the running gateway process was started from (its interpreter)."""
        pid = self.gateway_pid()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        match = re.search(r"/releases/([0-9.]+)/bin/python", cmdline[0].decode())
        assert match, f"gateway {pid} runs {cmdline!r}"
        return match.group(1)

    def smtp_banner(self) -> str:
        result = self.appliance.run(
            "python3", "-c",
            "import socket; s = socket.create_connection(('127.0.0.1', 25), timeout=10); "
            "print(s.makefile().readline().strip()); s.sendall(b'QUIT\\r\\n')", check=False)
        return result.stdout.decode().strip()

    def wait_for_gateway(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            banner = self.smtp_banner()
            if banner.startswith("220") or time.monotonic() > deadline:
                return banner
            time.sleep(0.1)

    def snapshot(self) -> dict[str, Any]:
        """Everything an update may change; equal snapshots mean nothing changed."""
        state = self.state_dir / "state.json"
        return {"current": os.readlink(self.current),
                "releases": sorted(p.name for p in self.releases_dir.iterdir()),
                "state": state.read_text() if state.exists() else None,
                "trust_root": self.trust_root.read_bytes(),
                "portcullis.toml": (self.etc / "portcullis.toml").read_text(),
                "signatures": sorted(p.name for p in self.clamav_db.iterdir()),
                "gateway_pid": self.gateway_pid()}

    def history(self) -> list[UpdateAttempt]:
        store = open_store(self.store_dir)
        try:
            return history(store)
        finally:
            store.close()

    def wait_for_history(self, count: int, timeout: float = 30) -> list[UpdateAttempt]:
        """The history once ``count`` attempts have finished (newest first)."""
        deadline = time.monotonic() + timeout
        while True:
            attempts = self.history()
            finished = [a for a in attempts if a.outcome != "receiving"]
            if len(finished) >= count or time.monotonic() > deadline:
                return attempts
            time.sleep(0.1)

    # -- pushing ---------------------------------------------------------------------------

    def push(self, bundle: Path, *, ns: Netns | None = None, inventory: Path | None = None,
             extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """``portcullis-vendor push --json`` from the vendor host (or ``ns``)."""
        result = vendor("push", "--inventory", str(inventory or self.inventory),
                        "--identity", str(self.keys.ssh), "--json", "--quiet", *extra,
                        str(bundle), ns=ns or self.vendor, check=False)
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"push gave no results:\n{result.stdout}{result.stderr}") \
                from None

    def push_one(self, bundle: Path, **kwargs: Any) -> dict[str, Any]:
        (result,) = self.push(bundle, **kwargs)
        return result

    def run_agent(self, data: bytes, client: str) -> tuple[int, dict[str, Any] | None]:
        """The agent as sshd would start it, but with ``client`` as SSH_CLIENT."""
        result = self.agent_process(data, client)
        return result.returncode, transfer.parse_result(result.stdout.decode())

    def agent_process(self, data: bytes, client: str, request: str = "receive"
                      ) -> subprocess.CompletedProcess:
        """The forced command with ``request`` as the vendor's SSH command."""
        return self.appliance.run(
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
            "env", "-i", f"SSH_CLIENT={client} 40000 22", f"SSH_ORIGINAL_COMMAND={request}",
            f"PATH={self.current}/bin:/usr/bin:/bin",
            f"PORTCULLIS_UPDATE_CONFIG={self.agent_toml}",
            "portcullis-update-agent", "receive", input=data, check=False)

    def ssh_command(self, *options: str, command: str | None = None) -> list[str]:
        """OpenSSH's client on the vendor host, logging in as the update account."""
        return self.vendor.cmd(
            "ssh", "-F", "/dev/null", "-i", str(self.keys.ssh), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *options,
            f"pcupdate@{APPLIANCE_IP}", *([command] if command else []))
