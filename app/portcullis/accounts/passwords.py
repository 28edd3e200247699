"""Password hashing with scrypt (a memory-hard KDF from the standard library).

Hashes are self-describing (``scrypt$N$r$p$salt$hash``) so the cost can be raised later:
``needs_rehash`` tells the login code to store a fresh hash with the current cost.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# 2**15 * 8 * 128 bytes = 32 MiB and roughly 0.1 s per hash on the appliance: slow for
# an attacker with a stolen store, cheap for one administrator logging in.
COST_N = 2**15
BLOCK_R = 8
PARALLEL_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MAX_MEMORY = 128 * 1024 * 1024

MIN_LENGTH = 10
MAX_LENGTH = 1024   # scrypt takes any length; this only bounds the work per request


class PasswordError(ValueError):
    """A password that may not be used; the message says why."""


def check_password_rules(password: str) -> None:
    """Raise PasswordError unless the password is long enough and printable."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password may have at most {MAX_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise PasswordError("a password may not contain control characters")
    if password.strip() != password:
        raise PasswordError("a password may not start or end with white space")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=MAX_MEMORY, dklen=length)


def hash_password(password: str) -> str:
    """A new salted hash of a password, in the self-describing text form."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, COST_N, BLOCK_R, PARALLEL_P, KEY_BYTES)
    return f"scrypt${COST_N}${BLOCK_R}${PARALLEL_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when the password matches the hash; any malformed hash matches nothing."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = _derive(password[:MAX_LENGTH], _unb64(salt), int(n), int(r), int(p),
                         len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """True when a hash was made with parameters other than the current ones."""
    parts = encoded.split("$")
    return len(parts) != 6 or parts[:4] != ["scrypt", str(COST_N), str(BLOCK_R),
                                            str(PARALLEL_P)]


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so a login takes as long
    either way and the response time does not tell which user names exist."""
    return hash_password(secrets.token_urlsafe(16))
