"""libnftables in this process: run nft commands and read JSON answers.

The library talks to the network namespace the process runs in (tests run it under
``ip netns exec``).  Every failure becomes a ``FirewallError`` carrying nft's own message.
"""

from __future__ import annotations

import json
import threading
from typing import Any


class FirewallError(Exception):
    """The firewall cannot do what was asked; the message says why (nft's text included)."""


class Nft:
    """One libnftables context (``pip-nftables`` bindings over Debian's ``libnftables1``)."""

    def __init__(self) -> None:
        try:
            import nftables
        except ImportError:
            raise FirewallError("the nftables Python bindings are missing "
                                "(pip install pip-nftables)") from None
        try:
            self._nft = nftables.Nftables()
        except OSError as exc:
            raise FirewallError(f"libnftables cannot be loaded (Debian package libnftables1): "
                                f"{exc}") from None
        self._nft.set_json_output(False)
        # A context is not safe to share between threads; the control server is one thread,
        # but be explicit rather than rely on it.
        self._lock = threading.Lock()

    def run(self, commands: str) -> str:
        """Run nft commands (one atomic transaction per call); return nft's text output."""
        with self._lock:
            self._nft.set_json_output(False)
            rc, output, error = self._nft.cmd(commands)
        if rc != 0:
            raise FirewallError(_clean_error(error) or f"nft failed (status {rc})")
        return output

    def query(self, command: str) -> list[dict[str, Any]]:
        """Run one listing command; return its JSON objects (metainfo removed)."""
        with self._lock:
            self._nft.set_json_output(True)
            try:
                rc, output, error = self._nft.cmd(command)
            finally:
                self._nft.set_json_output(False)
        if rc != 0:
            raise FirewallError(_clean_error(error) or f"nft failed (status {rc})")
        try:
            objects = json.loads(output)["nftables"] if output.strip() else []
        except (ValueError, KeyError) as exc:
            raise FirewallError(f"unexpected nft output: {exc}") from None
        return [obj for obj in objects if "metainfo" not in obj]


def _clean_error(text: str) -> str:
    return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())
