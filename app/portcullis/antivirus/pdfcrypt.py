"""PDF encryption, the standard security handler (ISO 32000-2 7.6.4): opening a PDF's
strings and streams with its user password.

An encrypted PDF hides its links, file names and embedded files from a filter that does
not decrypt it, even when anyone may open it: most encrypted PDFs have an empty user
password and only an owner password restricting printing or copying, which a reader
never asks for.  Phishing PDFs use exactly that to keep their link from URI blocklists.
Others are opened with a password the message gives, as encrypted archives are.

Revisions 2 to 4 derive a key from the password by MD5 and encrypt each object with RC4 or
AES-128 under a key of its own (the document key, the object's number and generation);
revisions 5 and 6 (AES-256) check the password by SHA-256 (6: the iterated hash of
algorithm 2.B) and unwrap one key for the whole document.  Version 4 and 5 documents name
a crypt filter for strings, streams and embedded files each; /Identity leaves a class
unencrypted.  Public-key handlers are reported, not opened.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portcullis.antivirus.officecrypt import rc4

_PADDING = bytes.fromhex("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a")
MAX_PASSWORD = 127              # bytes of a revision 5/6 password that count
PYTHON_RC4 = 1024 * 1024        # bytes decrypted by RC4 keys OpenSSL does not take


class Unsupported(Exception):
    """Encrypted in a way not opened here (a public-key handler, an unknown revision)."""


_CRYPT_METHODS = {b"/None": "none", b"/V2": "rc4", b"/AESV2": "aes", b"/AESV3": "aes"}


@dataclass(frozen=True)
class Settings:
    """An /Encrypt dictionary's entries, as they were read (strings already decoded)."""

    filter: bytes               # /Standard for the standard security handler
    version: int                # /V
    revision: int               # /R
    length: int                 # /Length, in bits (40 when absent)
    owner: bytes                # /O
    user: bytes                 # /U
    permissions: int            # /P
    user_key: bytes = b""       # /UE (revisions 5, 6)
    encrypt_metadata: bool = True
    # The crypt filter methods (/CFM of the filter each of /StrF, /StmF, /EFF names).
    strings: bytes = b"/V2"
    streams: bytes = b"/V2"
    files: bytes = b"/V2"


class Security:
    """An encrypted document and how to open it."""

    def __init__(self, settings: Settings, first_id: bytes) -> None:
        if settings.filter != b"/Standard":
            raise Unsupported(f"the {settings.filter.decode('latin-1')[1:40]} handler")
        if settings.revision not in (2, 3, 4, 5, 6) or settings.version not in (1, 2, 4, 5):
            raise Unsupported(f"security revision {settings.revision}")
        methods = (settings.strings, settings.streams, settings.files)
        if any(m not in _CRYPT_METHODS for m in methods):
            raise Unsupported("an unknown crypt filter")
        self.settings = settings
        self._id = first_id
        self._key: bytes | None = None
        self.description = self._describe()

    def _describe(self) -> str:
        if self.settings.revision >= 5:
            return "AES-256"
        return "AES-128" if _CRYPT_METHODS[self.settings.streams] == "aes" else \
            f"RC4 {self._key_length() * 8}-bit"

    @property
    def opened(self) -> bool:
        return self._key is not None

    def open(self, password: str) -> bool:
        """Whether ``password`` is the user password; when it is, the document opens."""
        key = self._user_key(password)
        if key is not None:
            self._key = key
        return key is not None

    def string(self, number: int, generation: int, data: bytes) -> bytes:
        return self._decrypt(_CRYPT_METHODS[self.settings.strings], number, generation, data)

    def stream(self, number: int, generation: int, data: bytes, *,
               embedded_file: bool = False) -> bytes:
        method = self.settings.files if embedded_file else self.settings.streams
        return self._decrypt(_CRYPT_METHODS[method], number, generation, data)

    # -- keys ------------------------------------------------------------------------------

    def _key_length(self) -> int:
        if self.settings.revision == 2:
            return 5
        return max(5, min(16, self.settings.length // 8))

    def _user_key(self, password: str) -> bytes | None:
        settings = self.settings
        if settings.revision >= 5:
            secret = password.encode("utf-8")[:MAX_PASSWORD]
            user = settings.user
            if len(user) < 48 or len(settings.user_key) < 32:
                return None
            check, validation, salt = user[:32], user[32:40], user[40:48]
            if self._hash(secret, validation) != check:
                return None
            unwrap = Cipher(algorithms.AES(self._hash(secret, salt)),
                            modes.CBC(bytes(16))).decryptor()
            return unwrap.update(settings.user_key[:32]) + unwrap.finalize()
        secret = password.encode("latin-1", "ignore")[:32]
        key = self._rc4_key(secret)
        if settings.revision == 2:
            return key if _rc4(key, _PADDING) == settings.user[:32] else None
        digest = _md5(_PADDING + self._id)
        for step in range(20):
            digest = _rc4(bytes(b ^ step for b in key), digest)
        return key if digest == settings.user[:16] else None

    def _rc4_key(self, secret: bytes) -> bytes:
        """Algorithm 2: the document key from a (revision 2-4) password."""
        settings = self.settings
        material = ((secret + _PADDING)[:32] + settings.owner[:32]
                    + struct.pack("<I", settings.permissions & 0xFFFFFFFF) + self._id)
        if settings.revision >= 4 and not settings.encrypt_metadata:
            material += b"\xff\xff\xff\xff"
        digest = _md5(material)
        length = self._key_length()
        if settings.revision >= 3:
            for _ in range(50):
                digest = _md5(digest[:length])
        return digest[:length]

    def _hash(self, secret: bytes, salt: bytes) -> bytes:
        """Revision 5's SHA-256, or revision 6's algorithm 2.B (user password: no /U
        data mixed in)."""
        digest = hashlib.sha256(secret + salt).digest()
        if self.settings.revision == 5:
            return digest
        round_ = 0
        while True:
            block = (secret + digest) * 64
            encrypted = Cipher(algorithms.AES(digest[:16]),
                               modes.CBC(digest[16:32])).encryptor().update(block)
            choice = int.from_bytes(encrypted[:16], "big") % 3
            digest = hashlib.new(("sha256", "sha384", "sha512")[choice], encrypted).digest()
            round_ += 1
            if round_ >= 64 and encrypted[-1] <= round_ - 32:
                return digest[:32]

    # -- objects ---------------------------------------------------------------------------

    def _decrypt(self, method: str, number: int, generation: int, data: bytes) -> bytes:
        if method == "none" or self._key is None:
            return data
        key = self._key
        if self.settings.revision < 5:
            salt = b"sAlT" if method == "aes" else b""
            key = _md5(key + (number & 0xFFFFFF).to_bytes(3, "little")
                       + (generation & 0xFFFF).to_bytes(2, "little") + salt
                       )[:min(len(self._key) + 5, 16)]
        if method == "rc4":
            return _rc4(key, data)
        whole = len(data) - len(data) % 16
        if whole < 32:                      # an IV and at least one block
            return b""
        try:
            decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
        except ValueError:                  # a key length AES has not: a damaged /Length
            return b""
        plain = decryptor.update(data[16:whole]) + decryptor.finalize()
        pad = plain[-1]
        if 1 <= pad <= 16 and plain.endswith(bytes([pad]) * pad):
            plain = plain[:-pad]
        return plain



def _rc4(key: bytes, data: bytes) -> bytes:
    """RC4 under a key of any length PDF allows (5 to 16 bytes).  OpenSSL's takes 5, 7, 8,
    10 and 16; the others (a /Length of 48 or 120 bits, say) run in Python, on the first
    PYTHON_RC4 bytes only (enough to tell a file's type and read links)."""
    try:
        return rc4(key, data)
    except ValueError:
        pass
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) & 0xFF
        state[i], state[j] = state[j], state[i]
    out = bytearray(data[:PYTHON_RC4])
    i = j = 0
    for at in range(len(out)):
        i = (i + 1) & 0xFF
        j = (j + state[i]) & 0xFF
        state[i], state[j] = state[j], state[i]
        out[at] ^= state[(state[i] + state[j]) & 0xFF]
    return bytes(out)


def _md5(data: bytes) -> bytes:
    # The format's own (weak) hash, to read a file: no security rests on it here.
    return hashlib.md5(data, usedforsecurity=False).digest()
