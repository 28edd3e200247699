"""Real Postfix instances for the tests: a protected internal mail server that accepts
only listed users, a sending MTA that retries on 4xx, and an "Internet" MX.

Each instance has its own configuration and queue directory and runs inside a network
namespace (``postfix -c DIR start`` under ``ip netns exec``).  There is no syslog here, so
every instance logs to its own ``maillog`` file.
"""

from __future__ import annotations

import contextlib
import email
import pwd
import shutil
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

from tests.support.netns import Netns, sh

MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    def __init__(self, root: Path, ns: Netns, address: str, *, port: int = 25,
                 hostname: str = "mx.test", settings: dict[str, str] | None = None) -> None:
        self.root = root
        self.ns = ns
        self.address = address
        self.port = port
        self.hostname = hostname
        self.config_dir = root / "etc"
        self.queue_dir = root / "queue"
        self.data_dir = root / "data"
        self.mail_dir = root / "mail"
        self.maillog = root / "maillog"
        for directory in (self.config_dir, self.queue_dir, self.data_dir, self.mail_dir):
            directory.mkdir(parents=True, exist_ok=True)
        postfix_user = pwd.getpwnam("postfix")
        shutil.chown(self.data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        shutil.chown(self.mail_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        self.settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": f"/var,/dev/stdout,{root}",
            "myhostname": hostname,
            "mydestination": "",
            "inet_interfaces": address,
            "inet_protocols": "ipv4",
            "smtp_dns_support_level": "disabled",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": f"{hostname} ESMTP test Postfix",
            "message_size_limit": str(60 * 1024 * 1024),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "disable_dns_lookups": "yes",
            # No resolver is reachable from a test namespace: a reverse lookup of each
            # client would cost a 10-second timeout.
            "smtpd_peername_lookup": "no",
            "smtp_host_lookup": "native",
            **(settings or {}),
        }
        self._write_config()

    # -- configuration -------------------------------------------------------------------

    def _write_config(self) -> None:
        main = "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        (self.config_dir / "main.cf").write_text(main)
        master = MASTER_CF.replace("smtp      inet", f"{self.address}:{self.port} inet", 1)
        (self.config_dir / "master.cf").write_text(master)

    def configure(self, **settings: str) -> None:
        self.settings.update(settings)
        self._write_config()
        if self.running:
            self.postfix("reload")
            self._end_sessions()

    @contextlib.contextmanager
    def configured(self, **settings: str) -> Iterator[None]:
        """These settings for the length of a with-block, then the ones before (a setting
        that was not set goes back to Postfix's default)."""
        before = {name: self.settings.get(name) for name in settings}
        self.configure(**settings)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    del self.settings[name]
                else:
                    self.settings[name] = value
            self.configure()

    def _end_sessions(self) -> None:
        """Close the connections clients keep open (the gateway keeps its next-hop
        connections for the next message, and reopens one found closed): their smtpd
        processes keep the settings they started with until the client leaves.  Closed
        from the socket's side (ss -K), so smtpd sees a lost connection and exits as usual;
        killing it would have the master throttle the service for a minute."""
        time.sleep(0.3)                         # the master re-reads its files first
        self.ns.run("ss", "-K", "-t", "state", "established",
                    f"src {self.address}:{self.port}", check=False)

    @classmethod
    def mailbox_server(cls, root: Path, ns: Netns, address: str, domains: list[str],
                       users: list[str], **kwargs: object) -> Postfix:
        """The protected internal host: mail for listed users only, others get 550."""
        users_file = root / "virtual_users"
        root.mkdir(parents=True, exist_ok=True)
        users_file.write_text("".join(
            f"{u} {u.partition('@')[2]}/{u.partition('@')[0]}/\n" for u in users))
        postfix_user = pwd.getpwnam("postfix")
        return cls(root, ns, address, settings={
            "virtual_mailbox_domains": " ".join(domains),
            "virtual_mailbox_maps": f"texthash:{users_file}",
            "virtual_mailbox_base": str(root / "mail"),
            "virtual_uid_maps": f"static:{postfix_user.pw_uid}",
            "virtual_gid_maps": f"static:{postfix_user.pw_gid}",
            "virtual_mailbox_limit": "0",
            "smtpd_recipient_restrictions": "reject_unlisted_recipient",
            "mynetworks": "127.0.0.0/8",
        }, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def sending_mta(cls, root: Path, ns: Netns, address: str, relayhost: str,
                    clients: str) -> Postfix:
        """An MTA that relays everything it is given to the gateway and retries on 4xx."""
        return cls(root, ns, address, hostname="sender.test", settings={
            "relayhost": relayhost,
            "mynetworks": clients,
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "smtp_connect_timeout": "5s",
        })

    # -- control --------------------------------------------------------------------------

    def postfix(self, *args: str, check: bool = True) -> str:
        result = self.ns.run("postfix", "-c", str(self.config_dir), *args, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: "
                               f"{result.stderr.decode(errors='replace')}\n{self.log()}")
        return result.stdout.decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.ns.run("postfix", "-c", str(self.config_dir), "status",
                           check=False).returncode == 0

    def start(self) -> Postfix:
        self.postfix("start")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = self.ns.run("bash", "-c", f"exec 3<>/dev/tcp/{self.address}/{self.port}",
                                check=False)
            if probe.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"postfix at {self.address}:{self.port} did not start\n{self.log()}")

    def stop(self) -> None:
        if self.running:
            self.postfix("stop", check=False)

    def flush(self) -> None:
        """Ask the queue manager to retry deferred mail now."""
        self.ns.run("postqueue", "-c", str(self.config_dir), "-f", check=False)

    def queue_size(self) -> int:
        out = self.ns.run("postqueue", "-c", str(self.config_dir), "-j", check=False)
        return len([line for line in out.stdout.splitlines() if line.strip()])

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    # -- mailboxes ------------------------------------------------------------------------

    def messages(self, address: str) -> list[Message]:
        local, _, domain = address.partition("@")
        maildir = self.mail_dir / domain / local
        files = sorted(p for sub in ("new", "cur") for p in (maildir / sub).glob("*")
                       if p.is_file())
        return [email.message_from_bytes(p.read_bytes()) for p in files]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(address)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def swaks(ns: Netns | None, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run swaks (optionally in a namespace); return (exit status, transcript)."""
    cmd = ["swaks", "--hide-informational", *args]
    result = ns.run(*cmd, check=False, timeout=timeout) if ns else \
        sh(*cmd, check=False, timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")
