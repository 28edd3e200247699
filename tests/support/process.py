"""Stopping the daemons the tests start, politely first."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen | None, timeout: float = 20,
         sig: int = signal.SIGTERM) -> int | None:
    """Send ``sig``, wait up to ``timeout`` seconds, then kill; return the exit status."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
