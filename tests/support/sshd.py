"""What OpenSSH's sshd makes of a configuration, asked of sshd itself (``sshd -T``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def effective_settings(directory: Path, config: str, user: str, address: str
                       ) -> dict[str, str]:
    """sshd's settings for ``user`` connecting from ``address`` with ``config`` (written to
    ``directory``, with a host key of its own made there).  A setting sshd lists more
    than once (AllowUsers, one line per entry) is its values joined by spaces."""
    host_key = directory / "host_key"
    if not host_key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                       check=True)
    path = directory / "sshd_config"
    path.write_text(f"HostKey {host_key}\n{config}")
    result = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(path), "-C",
                             f"user={user},addr={address},host=h,laddr=192.0.2.10,lport=22"],
                            capture_output=True, text=True, timeout=60, check=True)
    settings: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings[key] = f"{settings[key]} {value}" if key in settings else value
    return settings
