"""7-Zip's AES-256 coder (method 06 F1 07 01): the key a password gives, and decryption.

7-Zip draws the key from the password by hashing, 2**n times over, the salt, the password
(UTF-16LE) and an 8-byte round counter, all into one SHA-256 (n is in the coder's
properties: 19 as 7-Zip writes it); the data is AES-256-CBC with the IV from the
properties (7zAes.cpp of the LZMA SDK).  There is no password check value: a wrong
password is told only by what the decrypted bytes decode to, and the files' CRCs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portcullis.antivirus.readers import Unreadable, Unsupported

# 7-Zip writes 19 (half a million rounds: about 0.1 s a password in Python); an archive
# asking for more would make each password tried cost seconds.
MAX_ROUNDS_LOG = 20
NO_HASHING = 0x3F        # the key is the salt and password themselves (never written now)
ROUNDS_PER_PIECE = 1 << 14


@dataclass(frozen=True)
class Lock:
    rounds_log: int
    salt: bytes
    iv: bytes


def lock(properties: bytes) -> Lock:
    """The coder's KDF parameters and IV; Unsupported for a derivation too costly to try,
    Unreadable for damaged properties."""
    if not properties:
        raise Unreadable("AES coder without properties")
    first = properties[0]
    rounds_log = first & 0x3F
    salt = iv = b""
    if first & 0xC0:
        if len(properties) < 2:
            raise Unreadable("AES properties cut short")
        salt_size = (first >> 7 & 1) + (properties[1] >> 4)
        iv_size = (first >> 6 & 1) + (properties[1] & 0x0F)
        if len(properties) < 2 + salt_size + iv_size:
            raise Unreadable("AES properties cut short")
        salt = properties[2:2 + salt_size]
        iv = properties[2 + salt_size:2 + salt_size + iv_size]
    if rounds_log > MAX_ROUNDS_LOG and rounds_log != NO_HASHING:
        raise Unsupported(f"2**{rounds_log} key derivation rounds are too costly to try")
    return Lock(rounds_log, salt, iv.ljust(16, b"\0"))


def key(lock: Lock, password: str) -> bytes:
    """The AES-256 key ``password`` gives under ``lock``."""
    secret = password.encode("utf-16-le", "surrogatepass")
    if lock.rounds_log == NO_HASHING:
        return (lock.salt + secret)[:32].ljust(32, b"\0")
    sha = hashlib.sha256()
    prefix = lock.salt + secret
    rounds = 1 << lock.rounds_log
    # The rounds hashed a piece at a time: one update per round would cost seconds.
    for start in range(0, rounds, ROUNDS_PER_PIECE):
        sha.update(b"".join(prefix + counter.to_bytes(8, "little")
                            for counter in range(start, min(rounds, start + ROUNDS_PER_PIECE))))
    return sha.digest()


def decrypt(data: bytes, lock: Lock, aes_key: bytes) -> bytes:
    """A folder's packed stream, decrypted (a trailing partial block is left out)."""
    whole = len(data) - len(data) % 16
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(lock.iv)).decryptor()
    return decryptor.update(data[:whole]) + decryptor.finalize()
