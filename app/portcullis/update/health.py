"""``portcullis-update-agent health``: is the appliance answering after an update?

The default post-install health check.  It runs from the new release (so it also proves
the new code imports), reads the appliance configuration, and greets each SMTP listener
(a 220 banner) and each web listener (an HTTP answer below 500).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from portcullis.config import Config, HostPort

CHECKS = ("smtp", "web")
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1"}  # noqa: S104


def _local(address: HostPort) -> tuple[str, int]:
    return _WILDCARDS.get(address.host, address.host), address.port


def probe_smtp(address: HostPort, timeout: float = 10.0) -> str | None:
    """None if the listener greets with 220, else what went wrong."""
    try:
        with socket.create_connection(_local(address), timeout=timeout) as sock:
            banner = sock.makefile("rb").readline(512)
            sock.sendall(b"QUIT\r\n")
    except OSError as exc:
        return f"smtp {address}: {exc}"
    if not banner.startswith(b"220"):
        return f"smtp {address}: greeted with {banner[:60]!r}"
    return None


def probe_web(address: HostPort, timeout: float = 10.0) -> str | None:
    """None if the listener answers HTTP with a status below 500."""
    try:
        with socket.create_connection(_local(address), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            status = sock.makefile("rb").readline(512).split()
    except OSError as exc:
        return f"web {address}: {exc}"
    if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit() \
            or int(status[1]) >= 500:
        return f"web {address}: answered {b' '.join(status)[:60]!r}"
    return None


def check_services(config: Config, checks: Sequence[str] = CHECKS) -> list[str]:
    """Every problem found (empty: healthy)."""
    problems: list[str] = []
    if "smtp" in checks:
        problems += [p for a in config.smtp.listen if (p := probe_smtp(a))]
    if "web" in checks:
        problems += [p for a in config.web.listen if (p := probe_web(a))]
    return problems
