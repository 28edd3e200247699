"""The unprivileged half of the agent: ``portcullis-update-agent receive``.

sshd runs it as ``pcupdate`` (the authorized_keys forced command) with the bundle on
stdin.  It checks where the connection comes from, spools the bundle, runs every check it
can without privilege (so junk never reaches root), hands the bundle to root's installer
over a local socket, records the attempt in the update history, and prints one JSON
result line for the vendor.  ``SSH_ORIGINAL_COMMAND=status`` asks for versions instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

from portcullis import config as appliance_config
from portcullis.store import Store, StoreError, open_store
from portcullis.update import attempts, history, hostkeys, keys, transfer
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import BundleRejected, StorageError
from portcullis.update.state import StateError
from portcullis.update.targets import Outcome, targets, verify


class _TimedOut(Exception):
    pass


def client_address(env: Mapping[str, str]) -> str | None:
    """The pushing host's address from sshd's ``SSH_CLIENT`` ("addr port localport")."""
    fields = env.get("SSH_CLIENT", "").split()
    return fields[0] if fields else None


def from_vendor(address: str | None, config: AgentConfig) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in config.networks())


class HistoryLog:
    """The attempt's row in the update history; failures to write it are reported on
    stderr but never stop an update (a broken store may be what the update fixes)."""

    def __init__(self, config: AgentConfig, client: str) -> None:
        self.store: Store | None = None
        self.attempt: int | None = None
        try:
            appliance = appliance_config.load(config.portcullis_config)
            self.store = open_store(appliance.store.dir, appliance.store.url)
            self.attempt = attempts.start_attempt(self.store, client)
        except (appliance_config.ConfigError, StoreError, OSError) as exc:
            print(f"portcullis-update-agent: update history unavailable: {exc}",
                  file=sys.stderr)

    def finish(self, outcome: Outcome, sha256: str = "", size: int = 0) -> None:
        if self.store is None or self.attempt is None:
            return
        try:
            attempts.finish_attempt(self.store, self.attempt, outcome=outcome.outcome,
                                   reason=outcome.reason, target=outcome.target,
                                   version=outcome.version, previous=outcome.previous,
                                   signed_by=outcome.signed_by, sha256=sha256, size=size)
        except StoreError as exc:
            print(f"portcullis-update-agent: update history unavailable: {exc}",
                  file=sys.stderr)
        finally:
            self.store.close()


def receive(config: AgentConfig, stdin: IO[bytes], stdout: IO[bytes],
            env: Mapping[str, str]) -> int:
    """Take one pushed bundle; exit 0 only if it was applied."""
    # A dropped connection must not stop us half way: the attempt still gets recorded.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    client = client_address(env) or "unknown"
    record = HistoryLog(config, client)
    size, sha256 = 0, ""
    try:
        if not from_vendor(client_address(env), config):
            outcome = Outcome("rejected", f"client {client} is outside the vendor netblocks")
        else:
            config.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _one_at_a_time(config.spool_dir) as alone:
                if not alone:
                    outcome = Outcome("failed", "another bundle is being received; push"
                                                " again when it is done")
                else:
                    with tempfile.NamedTemporaryFile(dir=config.spool_dir,
                                                     prefix="bundle-") as spool:
                        outcome, size, sha256 = _receive_and_install(config, stdin, spool)
    except Exception as exc:  # noqa: BLE001 - recorded and reported, never silently lost
        outcome = Outcome("failed", f"internal error: {exc}")
    record.finish(outcome, sha256, size)
    with contextlib.suppress(OSError):
        stdout.write(transfer.result_line(outcome.as_dict()))
        stdout.flush()
    if outcome.outcome != "applied":
        with contextlib.suppress(OSError):
            print(f"portcullis-update-agent: {outcome.outcome}: {outcome.reason}",
                  file=sys.stderr)
    return 0 if outcome.outcome == "applied" else 1


@contextlib.contextmanager
def _one_at_a_time(spool_dir: Path) -> Iterator[bool]:
    """True while this is the only receive: each may spool ``max_bundle_bytes`` and wait
    ``receive_timeout``, so sessions in parallel could fill the disk (the installer
    applies one at a time anyway)."""
    lock = os.open(spool_dir / ".receiving", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(lock)


def _receive_and_install(config: AgentConfig, stdin: IO[bytes], spool: IO[bytes]
                         ) -> tuple[Outcome, int, str]:
    size, sha256 = 0, ""

    def timed_out(signum: int, frame: FrameType | None) -> None:
        raise _TimedOut

    previous_handler = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(max(1, int(config.receive_timeout)))
    try:
        size, sha256 = transfer.receive(
            stdin, spool, config.max_bundle_bytes,
            lambda size: transfer.ensure_room(config.spool_dir, size, config.min_free_bytes))
    except _TimedOut:
        return Outcome("rejected", "transfer timed out"), size, sha256
    except BundleRejected as exc:
        return Outcome("rejected", str(exc)), size, sha256
    except StorageError as exc:
        return Outcome("failed", f"appliance cannot store the bundle: {exc}"), size, sha256
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_handler)
    try:
        _precheck(config, spool.name)
    except BundleRejected as exc:
        manifest = exc.manifest
        return (Outcome("rejected", str(exc), manifest.target if manifest else "",
                        manifest.version if manifest else ""), size, sha256)
    except (keys.TrustRootError, StateError, hostkeys.HostKeyError) as exc:
        return Outcome("failed", f"appliance cannot verify updates: {exc}"), size, sha256
    spool.seek(0)
    return _hand_over(config, spool, size), size, sha256


def _precheck(config: AgentConfig, path: str) -> None:
    """Every check that needs no privilege (root's installer repeats them all)."""
    verify(config, Path(path), precheck=True)


def _hand_over(config: AgentConfig, spool: IO[bytes], size: int) -> Outcome:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(transfer.ANSWER_WAIT)
            sock.connect(str(config.installer_socket))
            transfer.send(spool, size, sock.sendall)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    except OSError as exc:
        return Outcome("failed", f"no answer from the installer at "
                                 f"{config.installer_socket}: {exc.strerror or exc}")
    result = transfer.parse_result(reply.decode(errors="replace"))
    if result is None or result.get("outcome") not in attempts.OUTCOMES:
        return Outcome("failed", "the installer ended without a result")
    return Outcome(str(result.get("outcome")), str(result.get("reason", "")),
                   str(result.get("target", "")), str(result.get("version", "")),
                   str(result.get("previous", "")),
                   [str(k) for k in result.get("signed_by", [])])


def status(config: AgentConfig) -> dict[str, Any]:
    """Versions, trusted keys and the latest attempts (for ``portcullis-vendor status``)."""
    report: dict[str, Any] = {"time": time.time(), "versions": {}, "trusted_keys": [],
                              "recent": [], "problems": []}
    for name, target in targets(config).items():
        try:
            report["versions"][name] = target.installed_version()
        except (keys.TrustRootError, StateError) as exc:
            report["versions"][name] = None
            report["problems"].append(str(exc))
    with contextlib.suppress(keys.TrustRootError):
        root = keys.load_trust_root(config.trust_root)
        report["trusted_keys"] = root.key_ids
        report["threshold"] = root.threshold
    try:
        appliance = appliance_config.load(config.portcullis_config)
        store = open_store(appliance.store.dir, appliance.store.url)
        try:
            report["recent"] = [a.as_dict() for a in history(store, 5)]
        finally:
            store.close()
    except (appliance_config.ConfigError, StoreError, OSError) as exc:
        report["problems"].append(f"update history unavailable: {exc}")
    return report


def ssh_command(env: Mapping[str, str]) -> str:
    """What the vendor asked for: "receive" (the default) or "status"."""
    return (env.get("SSH_ORIGINAL_COMMAND") or "receive").strip()
