"""The state of the appliance's services as systemd reports it (Server Admin page).

Read-only (``systemctl show``); on a machine without systemd as init (a developer's
``make run``, containers) the panel says so instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

UNITS = (
    "portcullis-gateway.service", "portcullis-web.service", "portcullis-firewall.service",
    "portcullis-firewall-monitor.service",
    "portcullis-tarpit.service", "clamav-daemon.service", "clamav-freshclam.service",
    "unbound.service", "postfix.service", "ssh.service",
)
PROPERTIES = ("Id", "Description", "LoadState", "ActiveState", "SubState",
              "ActiveEnterTimestamp")


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def unit_states(units: tuple[str, ...] = UNITS) -> list[dict[str, str]] | None:
    """One dict of PROPERTIES per unit, or None where systemd is not the init system."""
    if not systemd_running():
        return None
    try:
        result = subprocess.run(
            ["systemctl", "show", "--no-pager", *(f"--property={p}" for p in PROPERTIES),
             "--", *units], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states: list[dict[str, str]] = []
    for block in result.stdout.strip().split("\n\n"):
        entry = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if entry.get("Id") and entry.get("LoadState") != "not-found":
            states.append(entry)
    return states
