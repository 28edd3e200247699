"""Which appliance this is: the fingerprints of the SSH host keys its sshd serves.

A bundle's ``audience`` names the appliance it was built for by one such fingerprint, in
the form OpenSSH prints (``ssh-keygen -lf``: ``SHA256:`` and the unpadded base64 of the
SHA-256 of the key blob).  The vendor already pins every appliance's host key in its
known_hosts (nothing else is pushed to), so it knows the fingerprint without asking; the
appliance reads its own from the public halves of its host keys (out of reach of any
bundle).  The appliance's first-boot unit leaves those readable by all (0644, as Debian
does), so the unprivileged agent turns a bundle for another appliance away early; where
they are root's alone (made by the unit before it did that, mode 0600), the agent is refused
them and root's installer, which repeats every check, is the one that tells
(``HostKeysUnreadable``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
MAX_PUBLIC_KEY_BYTES = 16 * 1024


class HostKeyError(Exception):
    """The appliance cannot tell which appliance it is (no readable host key)."""


class HostKeysUnreadable(HostKeyError):
    """A host key file exists but this process may not read it (it is root's)."""


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (the wire form of the key)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def public_key_fingerprint(line: str) -> str:
    """The fingerprint of an OpenSSH public key line (``ssh-ed25519 AAAA... comment``);
    ValueError if it is not one."""
    fields = line.split()
    if len(fields) < 2:
        raise ValueError("not an OpenSSH public key line (type and base64 key)")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not base64") from None
    # The blob starts with its own type name (an SSH string): it must agree with the line.
    length = int.from_bytes(blob[:4], "big")
    if blob[4:4 + length].decode(errors="replace") != fields[0]:
        raise ValueError(f"the key is not a {fields[0]} key")
    return fingerprint(blob)


def appliance_identities(paths: Iterable[Path]) -> frozenset[str]:
    """The fingerprints of this appliance's host keys (``*.pub`` files).  A path that does
    not exist is skipped (sshd serves only the types made at first boot); HostKeyError if
    none is readable, or one is damaged, since then the appliance cannot say who it is."""
    found: set[str] = set()
    tried: list[str] = []
    for path in paths:
        tried.append(str(path))
        try:
            with path.open("rb") as handle:
                text = handle.read(MAX_PUBLIC_KEY_BYTES).decode("ascii")
        except FileNotFoundError:
            continue
        except PermissionError as exc:
            raise HostKeysUnreadable(f"SSH host key {path}: unreadable: "
                                     f"{exc.strerror or exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise HostKeyError(f"SSH host key {path}: unreadable: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            found.add(public_key_fingerprint(text))
        except ValueError as exc:
            raise HostKeyError(f"SSH host key {path}: {exc}") from None
    if not found:
        raise HostKeyError("no SSH host key to tell which appliance this is (looked for "
                           f"{', '.join(tried) or 'nothing: host_keys is empty'})")
    return frozenset(found)
