"""RAR 5 members encrypted with a password from the message: the key, and the check that the
bytes opened are the file's.

RAR 5 (WinRAR's format since 5.0) encrypts each member with AES-256-CBC under a key drawn
from the password by PBKDF2-HMAC-SHA256 (2**n rounds, n written in the member: 15 by
WinRAR), and stores a password check value: the same derivation 32 rounds further, folded
to 8 bytes.  A wrong password is told from that value alone, without decrypting anything.
The member's CRC32 (or BLAKE2sp) is usually "tweaked": passed through an HMAC keyed with
the value 16 rounds on, so the archive does not give away a checksum of the plain text;
the file is checked against it once decoded (technote.htm of RARLAB; unrar's crypt5.cpp).

RAR 3 (WinRAR 2.9-4.x, and the "RAR4" format since) encrypts each member with AES-128-CBC
under a key and IV drawn from the password and the member's 8-byte salt by 2**18 rounds of
SHA-1 (rarfile's ``rar3_s2k``, 0.15 s a password), with no check value: a password is
right when a stored member matches its CRC, or a packed one's start decodes without a
fault, and the CRC is checked once the member is read whole (``Lock.checked`` is False).
RAR 2.x's own ciphers are not read.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass

import rarfile
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portcullis.antivirus.readers import Unreadable, Unsupported

AES_256 = 0
CHECK_VALUE = 0x01             # the member carries a password check value
TWEAKED = 0x02                 # its checksum is an HMAC, not the plain CRC32/BLAKE2sp
# WinRAR writes 15 (32768 rounds: 8 ms a password here); an archive asking for many more
# would make each password tried cost seconds.
MAX_ROUNDS_LOG = 16
CHECK_SIZE = 8


SIGNATURE = b"Rar!\x1a\x07\x01\x00"
ENCRYPTION_HEADER = 4          # the block that, first after the signature, encrypts the rest


@dataclass(frozen=True)
class Lock:
    """What a password must open: a member's or the archive headers' KDF parameters and
    password check value (and a member's IV and flags)."""

    rounds_log: int
    salt: bytes
    check: bytes
    iv: bytes = b""
    flags: int = 0
    rar3: bool = False            # RAR 3's SHA-1 derivation, no check value

    @property
    def checked(self) -> bool:
        """Whether ``key`` tells a wrong password (RAR 5's check value)."""
        return not self.rar3


@dataclass(frozen=True)
class Key:
    """What opens one member: the AES key and IV, and the key of its tweaked checksum."""

    aes: bytes
    iv: bytes
    checksum_key: bytes | None


def member_lock(member: rarfile.RarInfo) -> Lock:
    """The lock of an encrypted member; raises Unsupported for what no password from a
    message opens here, Unreadable for a damaged one."""
    if not isinstance(member, rarfile.Rar5Info):
        if (member.extract_version or 0) < 29 or not member.salt:
            raise Unsupported("RAR 2 encryption is not read here")
        return Lock(0, member.salt, b"", rar3=True)
    algorithm, flags, rounds_log, salt, iv, check = member.file_encryption
    if algorithm != AES_256:
        raise Unsupported(f"cipher {algorithm} is not read here")
    if not flags & CHECK_VALUE or not check:
        raise Unsupported("no password check value is stored")
    return _lock(rounds_log, salt, check, iv, flags)


def names_lock(data: bytes) -> Lock:
    """The lock of an archive whose headers are encrypted (rar -hp); RAR 3's has no
    check value: the headers' CRCs tell a wrong password."""
    if not data.startswith(SIGNATURE):
        return Lock(0, b"", b"", rar3=True)
    at = len(SIGNATURE) + 4                       # the block's CRC32 first
    _size, at = _vint(data, at)
    kind, at = _vint(data, at)
    _flags, at = _vint(data, at)
    algorithm, at = _vint(data, at)
    flags, at = _vint(data, at)
    if kind != ENCRYPTION_HEADER:
        raise Unreadable("headers not encrypted")
    if algorithm != AES_256:
        raise Unsupported(f"cipher {algorithm} is not read here")
    if not flags & CHECK_VALUE:
        raise Unsupported("no password check value is stored")
    fields = data[at:at + 29]
    if len(fields) < 29:
        raise Unreadable("encryption header cut short")
    return _lock(fields[0], fields[1:17], fields[17:29])


RAR3_FAST_SEED = 64          # bytes of password (UTF-16) and salt rarfile hashes quickly


def _lock(rounds_log: int, salt: bytes, check: bytes, iv: bytes = b"", flags: int = 0) -> Lock:
    if len(check) != 12 or len(salt) != 16:
        raise Unreadable("damaged encryption record")
    if rounds_log > MAX_ROUNDS_LOG:
        raise Unsupported(f"2**{rounds_log} key derivation rounds are too costly to try")
    if hashlib.sha256(check[:CHECK_SIZE]).digest()[:4] != check[CHECK_SIZE:]:
        raise Unreadable("damaged password check value")
    return Lock(rounds_log, salt, check[:CHECK_SIZE], iv, flags)


def key(lock: Lock, password: str) -> Key | None:
    """The key ``password`` gives for ``lock``, or None when the password is not its own
    (for a lock that is ``checked``)."""
    if lock.rar3:
        if len(password.encode("utf-16-le")) + len(lock.salt) > RAR3_FAST_SEED:
            # rarfile derives such a key in pure Python, emulating RAR 3's SHA-1 bug: up to
            # 8 s a try for 40 characters.  Passwords that long are not what people mail.
            return None
        aes, iv = rarfile.rar3_s2k(password, lock.salt)
        return Key(aes, iv, None)
    secret = _password_bytes(password)
    rounds = 1 << lock.rounds_log
    # PBKDF2 of n rounds XORs the first n HMAC outputs: the value 32 rounds on is the
    # derivation run 32 rounds longer.
    if _fold(hashlib.pbkdf2_hmac("sha256", secret, lock.salt, rounds + 32)) != lock.check:
        return None
    checksum_key = hashlib.pbkdf2_hmac("sha256", secret, lock.salt, rounds + 16) \
        if lock.flags & TWEAKED else None
    return Key(hashlib.pbkdf2_hmac("sha256", secret, lock.salt, rounds), lock.iv, checksum_key)


class Keyring:
    """The keys derived for one archive's members: WinRAR gives every member one salt, so
    a password is derived once per archive, not once per member."""

    def __init__(self) -> None:
        self._keys: dict[tuple[int, bytes, bytes, int, str], Key | None] = {}

    def has(self, lock: Lock, password: str) -> bool:
        """Whether ``key(lock, password)`` is known without a derivation."""
        return self._entry(lock, password) in self._keys

    def key(self, lock: Lock, password: str) -> Key | None:
        entry = self._entry(lock, password)
        if entry not in self._keys:
            self._keys[entry] = key(lock, password)
        found = self._keys[entry]
        if found is None or lock.rar3:            # RAR 3's IV comes with its key
            return found
        return Key(found.aes, lock.iv, found.checksum_key)

    @staticmethod
    def _entry(lock: Lock, password: str) -> tuple[int, bytes, bytes, int, str]:
        return lock.rounds_log, lock.salt, lock.check, lock.flags & TWEAKED | lock.rar3 << 8, \
            password


def decrypt(data: bytes, key: Key) -> bytes:
    """A member's packed bytes, decrypted (AES-CBC blocks; a partial block is damage)."""
    if len(data) % 16:
        raise Unreadable("encrypted data not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key.aes), modes.CBC(key.iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def checksum_matches(member: rarfile.RarInfo, content: bytes, key: Key) -> bool:
    """Whether ``content`` is the member's file, by its CRC32 or BLAKE2sp (tweaked or not);
    a member that records neither cannot be told and passes."""
    if member.CRC is not None:
        crc = zlib.crc32(content)
        if key.checksum_key is not None:
            digest = hmac.digest(key.checksum_key, crc.to_bytes(4, "little"), "sha256")
            crc = 0
            for index, byte in enumerate(digest):
                crc ^= byte << ((index & 3) * 8)
        return crc == member.CRC
    expected = getattr(member, "blake2sp_hash", None)
    if expected is None:
        return True
    digest = rarfile.Blake2SP(content).digest()
    if key.checksum_key is not None:
        digest = hmac.digest(key.checksum_key, digest, "sha256")
    return digest == expected


def _vint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if at >= len(data):
            break
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise Unreadable("damaged header")


def _fold(value: bytes) -> bytes:
    folded = bytearray(CHECK_SIZE)
    for index, byte in enumerate(value):
        folded[index % CHECK_SIZE] ^= byte
    return bytes(folded)


def _password_bytes(password: str) -> bytes:
    # As WinRAR takes it: at most 127 UTF-16 units, then UTF-8.
    units = password.encode("utf-16le", "surrogatepass")[:254]
    return units.decode("utf-16le", "ignore").encode("utf-8")
