"""The control socket protocol: how processes without CAP_NET_ADMIN (the web UI) reach
the firewall.

One JSON object per line each way.  Requests: ``{"op": "status"}``,
``{"op": "block", "address": A, "minutes": M}``, ``{"op": "unblock", "address": A}``,
``{"op": "push_black_list"}``.
Answers: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.  The server is
``portcullis firewall monitor`` (``monitor.py``); the socket's group decides who may use it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from portcullis.firewall.control import FirewallStatus, SetEntry
from portcullis.firewall.nft import FirewallError

MAX_MESSAGE = 1 << 20        # an answer: a status with many blocked sources fits comfortably
MAX_REQUEST = 64 << 10       # a request is one short line; the monitor buffers no more
OPERATIONS = ("status", "block", "unblock", "push_black_list")


class ControlClient:
    """The firewall through the monitor's control socket (same methods as LocalFirewall)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def _call(self, request: dict[str, Any]) -> Any:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(json.dumps(request).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > MAX_MESSAGE:
                        raise FirewallError("firewall control answer too large")
        except OSError as exc:
            raise FirewallError(f"cannot reach the firewall control socket {self.path} "
                                f"({exc.strerror or exc}); is portcullis-firewall-monitor "
                                "running?") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise FirewallError("firewall control socket gave no valid answer") from None
        if not answer.get("ok"):
            raise FirewallError(str(answer.get("error", "firewall control failed")))
        return answer.get("result")

    def status(self) -> FirewallStatus:
        return FirewallStatus.from_dict(self._call({"op": "status"}))

    def block(self, address: str, minutes: float | None = None) -> SetEntry:
        return SetEntry(**self._call({"op": "block", "address": address, "minutes": minutes}))

    def unblock(self, address: str) -> list[str]:
        return list(self._call({"op": "unblock", "address": address}))

    def push_black_list(self) -> int | None:
        """Have the monitor push the store's IP black list now (None: the feature is off)."""
        result = self._call({"op": "push_black_list"})
        return None if result is None else int(result)
