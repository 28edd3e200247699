"""Root's half of the agent: ``portcullis-update-agent install``.

Started per connection by the ``portcullis-update-install.socket`` unit (stdin and stdout
are the connection), it takes one framed bundle from the unprivileged agent, repeats every
check on its own copy (it trusts nothing the agent concluded), applies it, and answers
with one JSON result line.  Only root and the agent's account may connect: the socket's
mode says so and the peer's credentials are checked again here.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from portcullis.update import hostkeys, keys, transfer
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import BundleRejected, StorageError
from portcullis.update.releases import InstallError
from portcullis.update.state import StateError
from portcullis.update.targets import Outcome, recover, remove_scratch, scratch_dir, verify

log = logging.getLogger("portcullis.update.installer")


def peer_uid(fd: int) -> int | None:
    """The uid on the other end of a Unix socket, or None if ``fd`` is not one."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    with sock:
        if sock.family != socket.AF_UNIX:
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def peer_allowed(config: AgentConfig, uid: int) -> bool:
    if uid == 0:
        return True
    try:
        return uid == pwd.getpwnam(config.installer_user).pw_uid
    except KeyError:
        return False


@contextlib.contextmanager
def installation_lock(state_dir: Path) -> Iterator[None]:
    """One installation at a time; a second push waits for the first to finish."""
    state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(state_dir / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def install_stream(config: AgentConfig, source: IO[bytes]) -> Outcome:
    """Receive one framed bundle from ``source`` and install it."""
    with installation_lock(config.state_dir):
        try:
            note = recover(config, restart=True)
        except (StateError, InstallError, OSError) as exc:
            return Outcome("failed", f"cannot undo an update that was cut off: {exc}")
        if note:
            log.warning("%s", note)
        work = scratch_dir(config.state_dir / "work")
        try:
            bundle_path = work / "bundle.tar"
            with bundle_path.open("xb") as sink:
                # Room for the bundle and, extracted, its payload (no bigger than it).
                transfer.receive(source, sink, config.max_bundle_bytes,
                                 lambda size: transfer.ensure_room(work, 2 * size,
                                                                   config.min_free_bytes))
            return install_file(config, bundle_path, work)
        except BundleRejected as exc:
            return _rejected(exc)
        except StorageError as exc:
            return Outcome("failed", f"appliance cannot store the bundle: {exc}")
        finally:
            remove_scratch(work)


def install_file(config: AgentConfig, bundle_path: Path, work: Path) -> Outcome:
    """Verify ``bundle_path`` from scratch and apply it (the caller holds the lock)."""
    try:
        verified, available = verify(config, bundle_path, extract_to=work / "payload")
        manifest = verified.manifest
        log.info("verified %s %s (signed by %s); applying", manifest.target,
                 manifest.version, ", ".join(verified.signed_by))
        try:
            return available[manifest.target].apply(verified)
        except BundleRejected as exc:   # content checks only a target can make
            exc.manifest = manifest
            raise
    except BundleRejected as exc:
        return _rejected(exc)
    except (keys.TrustRootError, StateError, hostkeys.HostKeyError) as exc:
        return Outcome("failed", f"appliance cannot verify updates: {exc}")
    except StorageError as exc:
        return Outcome("failed", f"appliance cannot store the bundle: {exc}")


def _rejected(exc: BundleRejected) -> Outcome:
    manifest = exc.manifest
    return Outcome("rejected", str(exc), manifest.target if manifest else "",
                   manifest.version if manifest else "")


def serve(config: AgentConfig, stdin: IO[bytes] | None = None,
          stdout: IO[bytes] | None = None) -> int:
    """Handle one connection (stdin/stdout); exit 0 only if the bundle was applied."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    os.umask(0o022)
    uid = peer_uid(stdin.fileno())
    if uid is not None and not peer_allowed(config, uid):
        log.warning("refused a connection from uid %d", uid)
        outcome = Outcome("rejected", f"uid {uid} may not hand bundles to the installer")
    else:
        try:
            outcome = install_stream(config, stdin)
        except Exception as exc:
            log.exception("installation failed")
            outcome = Outcome("failed", f"internal error: {exc}")
    log.info("%s %s %s: %s %s", outcome.target or "-", outcome.version or "-",
             outcome.previous or "-", outcome.outcome, outcome.reason)
    with contextlib.suppress(OSError):
        stdout.write(transfer.result_line(outcome.as_dict()))
        stdout.flush()
    return 0 if outcome.outcome == "applied" else 1
