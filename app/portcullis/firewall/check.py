"""Validate a ruleset without root and without touching any firewall.

``unshare -rn`` gives nft a fresh user and network namespace in which it may talk to the
kernel; ``nft -c`` then checks the whole transaction (grammar, types and what the kernel
supports) and throws it away.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from portcullis.firewall.nft import FirewallError

# nft lives in /usr/sbin, which is not on an ordinary user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _tool(name: str) -> str:
    found = shutil.which(name, path=_SEARCH_PATH)
    if not found:
        raise FirewallError(f"{name} not found (Debian packages nftables and util-linux)")
    return found


def check_ruleset(text: str, timeout: float = 60.0) -> None:
    """Raise FirewallError with nft's complaint if the ruleset would not load."""
    command = [_tool("unshare"), "-rn", _tool("nft"), "-c", "-f", "-"]
    try:
        result = subprocess.run(command, input=text.encode(), capture_output=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FirewallError("nft -c did not finish") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).decode(errors="replace").strip()
        if "unshare" in message and ("Operation not permitted" in message
                                     or "Permission denied" in message):
            raise FirewallError(f"cannot create a user namespace to check in: {message}")
        raise FirewallError(message.replace("/dev/stdin", "ruleset") or
                            f"nft -c failed (status {result.returncode})")
