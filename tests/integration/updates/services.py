"""The update lab's stand-in for ``systemctl restart portcullis-gateway.service``.

There is no systemd here, so the installer's restart command is this script: it stops the
gateway it started before (pid file) and starts ``<current>/bin/portcullis serve`` again,
exactly as the unit's ExecStart would, as a service detached from whoever restarted it.

    python3 services.py LAB_ROOT restart|stop portcullis-gateway.service
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state.split()[1:2]


def stop(root: Path) -> None:
    pidfile = root / "gateway" / "gateway.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def start(root: Path) -> None:
    log = (root / "gateway" / "gateway.log").open("ab")
    env = {"PATH": "/usr/bin:/bin", "PORTCULLIS_CONFIG": str(root / "etc" / "portcullis.toml"),
           "LC_ALL": "C.UTF-8"}
    old_umask = os.umask(0o007)  # as the unit's UMask=0007: the store stays group-writable
    try:
        process = subprocess.Popen([str(root / "opt" / "current" / "bin" / "portcullis"),
                                    "serve"], env=env, cwd="/", stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log, start_new_session=True)
    finally:
        os.umask(old_umask)
    (root / "gateway" / "gateway.pid").write_text(str(process.pid))


def main(argv: list[str]) -> int:
    root, action, services = Path(argv[1]), argv[2], argv[3:]
    if "--" in services:
        services.remove("--")
    unknown = [s for s in services if s != "portcullis-gateway.service"]
    if unknown:
        print(f"unknown service(s): {' '.join(unknown)}", file=sys.stderr)
        return 5
    stop(root)
    if action == "restart":
        start(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
