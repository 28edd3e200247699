"""Making an update live and judging it: restart the services, run the health check.

Health checks run unprivileged (``health_user``): they only look, and a vendor command
that only looks has no business running as root.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from portcullis.update.bundle import HealthCheck

# A restart waits for each unit's stop: the gateway's may take its TimeoutStopSec (600 s,
# a message past its final dot is answered first), then the start.  180 s judged an
# update failed while systemd was still stopping the gateway, which then ran it anyway.
RESTART_TIMEOUT = 900
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RETRY_PAUSE = 1.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def _tail(text: str, lines: int = 4) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def restart_services(command: Sequence[str], services: Sequence[str],
                     env: dict[str, str]) -> CheckResult:
    """Run the restart command for ``services``; not ok if it fails or hangs."""
    argv = [*command, *services]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=RESTART_TIMEOUT,
                                env={"PATH": SYSTEM_PATH, **env}, cwd="/", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(False, f"restart failed: {exc}")
    if result.returncode != 0:
        return CheckResult(False, f"restart failed ({result.returncode}): "
                                  f"{_tail(result.stderr + result.stdout)}")
    return CheckResult(True, "")


def run_health_check(check: HealthCheck, *, bin_dir: Path, user: str,
                     env: dict[str, str]) -> CheckResult:
    """Run ``check`` until it exits 0 or its timeout passes (services need a moment)."""
    kwargs: dict[str, object] = {}
    if user and os.geteuid() == 0:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            return CheckResult(False, f"health check account {user!r} does not exist")
        kwargs = {"user": account.pw_uid, "group": account.pw_gid,
                  "extra_groups": os.getgrouplist(user, account.pw_gid)}
    full_env = {"PATH": f"{bin_dir}:{SYSTEM_PATH}", "LC_ALL": "C.UTF-8", "HOME": "/", **env}
    deadline = time.monotonic() + check.timeout
    detail = "health check did not run"
    while True:
        remaining = deadline - time.monotonic()
        try:
            result = subprocess.run(list(check.command), capture_output=True, text=True,
                                    timeout=max(1.0, remaining), env=full_env, cwd="/",
                                    check=False, **kwargs)  # type: ignore[call-overload]
            if result.returncode == 0:
                return CheckResult(True, _tail(result.stdout))
            detail = f"exit {result.returncode}: {_tail(result.stderr + result.stdout)}"
        except subprocess.TimeoutExpired:
            detail = f"no answer within {check.timeout:g} s"
        except OSError as exc:
            return CheckResult(False, f"cannot run {check.command[0]}: {exc.strerror}")
        if time.monotonic() + RETRY_PAUSE >= deadline:
            return CheckResult(False, detail)
        time.sleep(RETRY_PAUSE)
