"""Live figures of the running gateway (open SMTP sessions), for the web UI's dashboard.

The gateway and the web UI are separate processes that share the state directory, not
memory.  Each gateway worker writes a small JSON file there every few seconds
(``<state>/run/gateway-<worker>.json``, replaced atomically); the web UI reads them and
ignores files that have not been refreshed lately (a worker that died).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

STALE_SECONDS = 30.0
TOP_CLIENTS = 20


def _dir(state_dir: Path) -> Path:
    return state_dir / "run"


def publish(state_dir: Path, worker: int, *, active: int, refused: int,
            per_ip: Counter[str], max_sessions: int) -> None:
    """Write one worker's figures (best effort: a full disk must not stop the gateway)."""
    directory = _dir(state_dir)
    data = {"worker": worker, "pid": os.getpid(), "updated": time.time(), "active": active,
            "refused": refused, "max_sessions": max_sessions,
            "clients": per_ip.most_common(TOP_CLIENTS)}
    path = directory / f"gateway-{worker}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        directory.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def withdraw(state_dir: Path, worker: int) -> None:
    """Remove a worker's file when it stops."""
    with contextlib.suppress(OSError):
        (_dir(state_dir) / f"gateway-{worker}.json").unlink(missing_ok=True)


@dataclass
class GatewayStatus:
    running: bool = False
    workers: int = 0
    active: int = 0
    max_sessions: int = 0
    refused: int = 0                     # turned away with 421 since the workers started
    clients: list[tuple[str, int]] = field(default_factory=list)
    updated: float | None = None


def read(state_dir: Path, now: float | None = None) -> GatewayStatus:
    """The gateway's figures summed over its live workers."""
    now = time.time() if now is None else now
    status = GatewayStatus()
    clients: Counter[str] = Counter()
    for path in sorted(_dir(state_dir).glob("gateway-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            updated = float(data["updated"])
            if now - updated > STALE_SECONDS:
                continue
            status.workers += 1
            status.active += int(data["active"])
            status.refused += int(data["refused"])
            status.max_sessions += int(data["max_sessions"])
            clients.update({str(ip): int(n) for ip, n in data["clients"]})
            status.updated = max(status.updated or 0.0, updated)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    status.running = status.workers > 0
    status.clients = clients.most_common(TOP_CLIENTS)
    return status
