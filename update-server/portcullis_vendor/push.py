"""Pushing a signed bundle to appliances over SSH (paramiko), several at a time.

Each appliance is a separate SSH session to its update account, whose forced command is
the update agent: we send the framed bundle on stdin and read the agent's JSON result.
Host keys are checked against a known_hosts file and nothing else (an unknown or changed
key is never accepted), and the outcome per appliance is one of:

    applied      the agent installed it and the health check passed
    rejected     the agent refused it (the reason says why: signature, version, expiry...)
    rolled-back  installed, failed its health check, the previous version runs again
    failed       valid but could not be installed (nothing changed)
    pushed       the bundle arrived but no result came back
    unreachable  no SSH session (refused, timed out, host key or login refused)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from portcullis.update import hostkeys, transfer
from portcullis_vendor.inventory import Appliance

RESULTS = ("applied", "rejected", "rolled-back", "failed", "pushed", "unreachable")
# The most an appliance may answer (the agent's answer is one line, a status a few KiB):
# one sending without end must not hold the push, and the vendor's memory, for ever.
MAX_ANSWER = 1024 * 1024
Progress = Callable[[str, str], None]


@dataclass
class PushResult:
    appliance: str
    address: str
    result: str
    reason: str = ""
    version: str = ""
    previous: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StatusResult:
    appliance: str
    address: str
    reachable: bool
    reason: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        """Reached, and it answered with a status."""
        return self.reachable and not self.reason


@dataclass(frozen=True)
class SshSettings:
    identity: paramiko.PKey
    known_hosts: Path
    connect_timeout: float = 15.0
    # Silence to bear while the appliance installs: the agent waits up to ANSWER_WAIT for
    # its installer, then answers (a shorter wait reports a push that may still apply).
    transfer_timeout: float = transfer.ANSWER_WAIT + 300


def load_identity(path: Path, passphrase: str | None = None) -> paramiko.PKey:
    """The SSH private key the vendor logs in to appliances with."""
    try:
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"{path}: cannot load SSH key: {exc}") from None


class _Unreachable(Exception):
    pass


class _Overlong(Exception):
    """The appliance answered more than MAX_ANSWER bytes: not the agent's answer."""

    def __str__(self) -> str:
        return f"unexpected answer: more than {MAX_ANSWER} bytes"


def known_hosts_name(appliance: Appliance) -> str:
    """The name the appliance's key has in known_hosts: what ``_connect`` (paramiko's
    SSHClient) looks up, ``host`` on port 22 and ``[host]:port`` on any other."""
    return appliance.host if appliance.port == 22 else f"[{appliance.host}]:{appliance.port}"


def appliance_host_key(appliance: Appliance, known_hosts: Path) -> paramiko.PKey:
    """The host key a push to ``appliance`` insists on: the first one known_hosts lists for
    it (paramiko asks the appliance for that key's type and refuses any other key).
    ValueError if there is none: a push could not reach it either."""
    try:
        known = paramiko.HostKeys(str(known_hosts))
    except OSError as exc:
        raise ValueError(f"known_hosts {known_hosts}: {exc.strerror or exc}") from None
    entries = known.lookup(known_hosts_name(appliance))
    if not entries:
        raise ValueError(f"{appliance.name}: no host key for {known_hosts_name(appliance)} "
                         f"in {known_hosts}")
    return entries[entries.keys()[0]]


def appliance_fingerprint(appliance: Appliance, known_hosts: Path) -> str:
    """Who ``appliance`` is, as a bundle's audience: its host key's SHA256 fingerprint."""
    return hostkeys.fingerprint(appliance_host_key(appliance, known_hosts).asbytes())


def _connect(appliance: Appliance, ssh: SshSettings) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(ssh.known_hosts))
    except OSError as exc:
        raise _Unreachable(f"known_hosts {ssh.known_hosts}: {exc.strerror}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(appliance.host, appliance.port, username=appliance.user,
                       pkey=ssh.identity, look_for_keys=False, allow_agent=False,
                       timeout=ssh.connect_timeout, banner_timeout=ssh.connect_timeout,
                       auth_timeout=ssh.connect_timeout)
    except paramiko.BadHostKeyException:
        client.close()
        raise _Unreachable("host key does not match known_hosts (refusing to talk to an "
                           "impostor)") from None
    except paramiko.AuthenticationException:
        client.close()
        raise _Unreachable("login refused (not from a vendor netblock, or key not "
                           "authorized)") from None
    except paramiko.SSHException as exc:
        client.close()
        text = str(exc)
        if "not found in known_hosts" in text:
            text = "host key unknown (not in known_hosts)"
        raise _Unreachable(text) from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        client.close()
        reasons = {e.strerror or str(e) for e in exc.errors.values()}
        raise _Unreachable(", ".join(sorted(reasons))) from None
    except (OSError, EOFError) as exc:
        client.close()
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _Unreachable(message or type(exc).__name__) from None
    return client


def _read_all(channel: paramiko.Channel) -> tuple[str, str]:
    """The appliance's stdout and stderr, each at most MAX_ANSWER bytes (_Overlong)."""
    out, err = bytearray(), bytearray()
    for buffer, receive in ((out, channel.recv), (err, channel.recv_stderr)):
        while chunk := receive(65536):
            buffer += chunk
            if len(buffer) > MAX_ANSWER:
                raise _Overlong
    return out.decode(errors="replace"), err.decode(errors="replace")


def push_one(appliance: Appliance, bundle: Path, ssh: SshSettings,
             progress: Progress | None = None) -> PushResult:
    """Push ``bundle`` to one appliance; never raises, the result says what happened."""
    started = time.monotonic()
    report = progress or (lambda name, text: None)

    def done(result: str, reason: str = "", **extra: str) -> PushResult:
        return PushResult(appliance.name, appliance.address, result, reason,
                          seconds=round(time.monotonic() - started, 2), **extra)

    report(appliance.name, f"connecting to {appliance.address}")
    try:
        client = _connect(appliance, ssh)
    except _Unreachable as exc:
        return done("unreachable", str(exc))
    size = bundle.stat().st_size
    sent = 0
    try:
        channel = client.get_transport().open_session(timeout=ssh.connect_timeout)
        channel.settimeout(ssh.transfer_timeout)
        channel.exec_command("receive")
        marks = [size * q // 4 for q in (1, 2, 3, 4)]

        def sending(count: int) -> None:
            nonlocal sent
            sent = count
            if marks and count >= marks[0]:
                while marks and count >= marks[0]:
                    marks.pop(0)
                report(appliance.name, f"sent {count * 100 // max(size, 1)}% of {size} bytes")

        try:
            with bundle.open("rb") as handle:
                transfer.send(handle, size, channel.sendall, sending)
            channel.shutdown_write()
            report(appliance.name, "sent; the appliance is verifying and installing")
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the agent may have answered early (refusal): its result says why
        stdout, stderr = _read_all(channel)
    except _Overlong as exc:
        return done("pushed", str(exc))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        return done("unreachable" if sent == 0 else "pushed",
                    f"connection lost after {sent} of {size} bytes: {exc}")
    finally:
        client.close()
    result = transfer.parse_result(stdout)
    if result is None:
        tail = " | ".join(stderr.strip().splitlines()[-2:])
        if sent < size:
            return done("unreachable", f"connection lost after {sent} of {size} bytes"
                        + (f": {tail}" if tail else ""))
        return done("pushed", "no result from the appliance" + (f": {tail}" if tail else ""))
    outcome = str(result.get("outcome", ""))
    if outcome not in RESULTS:
        return done("pushed", f"unexpected answer {outcome!r}")
    return done(outcome, str(result.get("reason", "")), version=str(result.get("version", "")),
                previous=str(result.get("previous", "")))


def status_one(appliance: Appliance, ssh: SshSettings) -> StatusResult:
    """Ask one appliance's agent for its versions (``status``); never raises."""
    try:
        client = _connect(appliance, ssh)
    except _Unreachable as exc:
        return StatusResult(appliance.name, appliance.address, False, str(exc))
    try:
        channel = client.get_transport().open_session(timeout=ssh.connect_timeout)
        channel.settimeout(ssh.connect_timeout * 4)
        channel.exec_command("status")
        channel.shutdown_write()
        stdout, stderr = _read_all(channel)
    except _Overlong as exc:
        return StatusResult(appliance.name, appliance.address, True, str(exc))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        return StatusResult(appliance.name, appliance.address, False, f"connection lost: {exc}")
    finally:
        client.close()
    try:
        report = status_report(stdout)
    except ValueError:
        return StatusResult(appliance.name, appliance.address, True,
                            f"unexpected answer: {(stdout or stderr).strip()[:200]}")
    return StatusResult(appliance.name, appliance.address, True, "", report)


def status_report(text: str) -> dict[str, Any]:
    """The agent's status answer: a JSON object whose ``versions`` maps targets to text
    (or null) and whose ``recent`` lists attempts (objects); ValueError for anything else,
    which an appliance that is broken or not ours may send."""
    report = json.loads(text)
    if not isinstance(report, dict):
        raise ValueError("not a JSON object")
    versions, recent = report.get("versions", {}), report.get("recent", [])
    if not isinstance(versions, dict) or \
            not all(isinstance(v, str | None) for v in versions.values()):
        raise ValueError("versions is not an object of versions")
    if not isinstance(recent, list) or not all(isinstance(a, dict) for a in recent):
        raise ValueError("recent is not a list of attempts")
    return report


def push_all(appliances: Sequence[Appliance], bundle: Path, ssh: SshSettings,
             parallel: int = 8, progress: Progress | None = None) -> list[PushResult]:
    """Push to every appliance, at most ``parallel`` at a time; results in inventory order."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(appliances)))) as pool:
        return list(pool.map(lambda a: push_one(a, bundle, ssh, progress), appliances))


def status_all(appliances: Sequence[Appliance], ssh: SshSettings,
               parallel: int = 8) -> list[StatusResult]:
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(appliances)))) as pool:
        return list(pool.map(lambda a: status_one(a, ssh), appliances))


def printer(stream: Any) -> Progress:
    """A thread-safe progress reporter writing ``[name] text`` lines to ``stream``."""
    lock = threading.Lock()

    def report(name: str, text: str) -> None:
        with lock:
            stream.write(f"[{name}] {text}\n")
            stream.flush()

    return report
