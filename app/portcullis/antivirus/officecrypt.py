"""Office documents encrypted with a password ([MS-OFFCRYPTO] agile encryption, what
Office 2010 and later write when a .docx, .xlsx or .pptx is given a password, and the
ECMA-376 "standard" encryption of Office 2007).

Malware campaigns send such documents with the password in the message text, exactly as
they do password-protected zips: no scanner can look inside, and the recipient is told
how to open it.  The file is an OLE2 compound file holding ``EncryptionInfo`` (an XML
description of the keys) and ``EncryptedPackage`` (the real document, AES-CBC in 4096-byte
segments).  A password is tried by hashing it with the salt and the spin count (100,000
rounds of SHA-512 as Office writes it), decrypting the verifier and comparing its hash;
the right one unwraps the document key.  Office 2007's "standard" encryption describes
its key in binary instead, derives it from the password by 50,000 rounds of SHA-1 and
encrypts the whole package with AES-ECB under it.  Extensible encryption (a third-party
provider) and certificate-only encryption are recognised and not opened.

Excel 97-2003 workbooks are encrypted differently: RC4 over the workbook stream, rekeyed
every 1024 bytes, record headers left in the clear.  Excel opens a workbook encrypted with
its built-in password, "VelvetSweatshop", without asking, which is why Excel 4.0 macro
droppers were sent so: ``Rc4Workbook`` opens those (plain RC4 and RC4 CryptoAPI).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from xml.etree import ElementTree

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portcullis.antivirus.readers import Unreadable

ENCRYPTION_INFO = "EncryptionInfo"
ENCRYPTED_PACKAGE = "EncryptedPackage"
MAX_INFO = 64 * 1024            # bytes of EncryptionInfo read (Office writes about 1 KB)
MAX_SPIN = 100_000              # Office writes 100,000; more only burns our time (1 s a try)
SEGMENT = 4096
_VERIFIER_INPUT = bytes.fromhex("fea7d2763b4b9e79")
_VERIFIER_VALUE = bytes.fromhex("d7aa0f6d3061344e")
_KEY_VALUE = bytes.fromhex("146e0be7abacd0d6")
_HASHES = {"SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
_ENCRYPTION_NS = "{http://schemas.microsoft.com/office/2006/encryption}"
_KEY_ENCRYPTOR_NS = "{http://schemas.microsoft.com/office/2006/keyEncryptor/password}"
_INDEX = struct.Struct("<I")


class UnsupportedScheme(Exception):
    """Encrypted by a scheme this module does not open (named in the message)."""


@dataclass(frozen=True)
class _Cipher:
    salt: bytes
    key_bytes: int
    hash_name: str

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def fitted(self, value: bytes, size: int) -> bytes:
        """Cut to ``size`` bytes, or padded with 0x36 as the specification says."""
        return value[:size].ljust(size, b"\x36")

    def decrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        usable = len(data) // 16 * 16
        decryptor = Cipher(algorithms.AES(key), modes.CBC(self.fitted(iv, 16))).decryptor()
        return decryptor.update(data[:usable]) + decryptor.finalize()


class Scheme(Protocol):
    """How one encrypted document is opened: a password's key, then its bytes."""

    def key(self, password: str) -> bytes | None:
        """The document key when ``password`` is the right one, else None."""

    def document_bytes(self, key: bytes, package: bytes, limit: int) -> bytes:
        """The decrypted document (a zip), at most ``limit`` bytes of it."""


@dataclass(frozen=True)
class AgileEncryption:
    """What an agile EncryptionInfo says: the document's cipher, and the password key's."""

    document: _Cipher
    password: _Cipher
    spin_count: int
    verifier_input: bytes
    verifier_value: bytes
    key_value: bytes

    def key(self, password: str) -> bytes | None:
        """The document key when ``password`` is the right one, else None."""
        cipher = self.password
        digest = cipher.hash(cipher.salt + password.encode("utf-16-le"))
        for index in range(self.spin_count):
            digest = cipher.hash(_INDEX.pack(index) + digest)

        def unwrap(block: bytes, value: bytes) -> bytes:
            key = cipher.fitted(cipher.hash(digest + block), cipher.key_bytes)
            return cipher.decrypt(key, cipher.salt, value)

        verifier = unwrap(_VERIFIER_INPUT, self.verifier_input)[:len(cipher.salt)]
        expected = unwrap(_VERIFIER_VALUE, self.verifier_value)
        digest_size = hashlib.new(cipher.hash_name).digest_size
        if cipher.hash(verifier) != expected[:digest_size]:
            return None
        return unwrap(_KEY_VALUE, self.key_value)[:self.document.key_bytes]

    def document_bytes(self, key: bytes, package: bytes, limit: int) -> bytes:
        """The decrypted document (a zip), at most ``limit`` bytes of it."""
        want = _package_size(package, limit)
        out = bytearray()
        for index, start in enumerate(range(8, len(package), SEGMENT)):
            if len(out) >= want:
                break
            iv = self.document.hash(self.document.salt + _INDEX.pack(index))
            out += self.document.decrypt(key, iv, package[start:start + SEGMENT])
        return bytes(out[:want])


def _package_size(package: bytes, limit: int) -> int:
    """The bytes of the document to decrypt: its size from the package, at most ``limit``."""
    if len(package) < 8:
        raise Unreadable("EncryptedPackage cut short")
    # An 8-byte size, but writers leave junk in the upper half (so readers, Office's and
    # msoffcrypto's among them, take the lower): no mailed document is 4 GiB.
    return min(struct.unpack_from("<I", package)[0], limit)


@dataclass(frozen=True)
class StandardEncryption:
    """What a standard EncryptionInfo says: the salt, the AES key size and the verifier."""

    salt: bytes
    key_bytes: int
    verifier: bytes                  # 16 random bytes, encrypted
    verifier_hash: bytes             # their SHA-1, encrypted (32 bytes: two AES blocks)

    def key(self, password: str) -> bytes | None:
        digest = _digest("sha1", self.salt + password.encode("utf-16-le"))
        for index in range(STANDARD_SPIN):
            digest = _digest("sha1", _INDEX.pack(index) + digest)
        final = _digest("sha1", digest + _INDEX.pack(0))
        # CryptDeriveKey's way of stretching a SHA-1 to the key size.
        stretched = b"".join(_digest("sha1", bytes(b ^ pad for b in final) + bytes([pad]) * 44)
                             for pad in (0x36, 0x5C))
        key = stretched[:self.key_bytes]
        verifier = _ecb(key, self.verifier)
        return key if _ecb(key, self.verifier_hash)[:20] == _digest("sha1", verifier) else None

    def document_bytes(self, key: bytes, package: bytes, limit: int) -> bytes:
        want = _package_size(package, limit)
        return _ecb(key, package[8:8 + -(-want // 16) * 16])[:want]


STANDARD_SPIN = 50_000
_STANDARD_AES = {0x660E: 128, 0x660F: 192, 0x6610: 256}       # CryptoAPI ALG_IDs
_STANDARD_SHA1 = 0x8004
_F_EXTERNAL, _F_AES = 0x10, 0x20                                # EncryptionInfo flags


def _ecb(key: bytes, data: bytes) -> bytes:
    # The format's own mode, to read a file: no security rests on it here.
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(data[:len(data) // 16 * 16]) + decryptor.finalize()


def _standard(info: bytes) -> StandardEncryption:
    """A standard EncryptionInfo: flags, a header (algorithms, key size, provider name)
    of the size given, then the verifier (salt size, salt, verifier, hash size, hash)."""
    if len(info) < 12:
        raise Unreadable("EncryptionInfo cut short")
    flags, header_size = struct.unpack_from("<II", info, 4)
    if flags & _F_EXTERNAL:
        raise UnsupportedScheme("extensible encryption, by a third-party provider")
    if not flags & _F_AES:
        raise UnsupportedScheme("standard encryption without AES")
    verifier_at = 12 + header_size
    if header_size < 32 or len(info) < verifier_at + 72:
        raise Unreadable("EncryptionInfo cut short")
    algorithm, hash_algorithm, key_bits = struct.unpack_from("<III", info, 20)
    algorithm = algorithm or 0x660E               # 0 with the AES flag: AES-128
    if algorithm not in _STANDARD_AES or hash_algorithm not in (0, _STANDARD_SHA1):
        raise UnsupportedScheme(f"standard encryption with algorithm {algorithm:#x}, "
                                f"hash {hash_algorithm:#x}")
    if key_bits != _STANDARD_AES[algorithm]:
        raise Unreadable(f"{key_bits}-bit key for AES-{_STANDARD_AES[algorithm]}")
    salt_size = struct.unpack_from("<I", info, verifier_at)[0]
    if salt_size != 16:
        raise Unreadable(f"salt of {salt_size} bytes")
    salt = info[verifier_at + 4:verifier_at + 20]
    return StandardEncryption(salt=salt, key_bytes=key_bits // 8,
                              verifier=info[verifier_at + 20:verifier_at + 36],
                              verifier_hash=info[verifier_at + 40:verifier_at + 72])


def encryption(info: bytes) -> Scheme:
    """EncryptionInfo read; raises UnsupportedScheme for the schemes not opened here
    and Unreadable for damage."""
    if len(info) < 8:
        raise Unreadable("EncryptionInfo cut short")
    major, minor = struct.unpack_from("<HH", info)
    if major in (2, 3, 4) and minor == 2:
        return _standard(info)
    if (major, minor) != (4, 4):
        raise UnsupportedScheme("extensible encryption" if minor == 3
                                else f"encryption {major}.{minor}")
    xml = info[8:MAX_INFO]
    if b"<!DOCTYPE" in xml.upper():
        # Office writes none; entity definitions are how XML is turned into a bomb.
        raise Unreadable("EncryptionInfo with a DOCTYPE")
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 - no DOCTYPE, no entities, 64 KiB
    except ElementTree.ParseError as exc:
        raise Unreadable(f"EncryptionInfo is not XML ({exc})") from exc
    key_data = root.find(f"{_ENCRYPTION_NS}keyData")
    password = next((node for node in root.iter(f"{_KEY_ENCRYPTOR_NS}encryptedKey")), None)
    if key_data is None or password is None:
        raise UnsupportedScheme("no password key (certificate encryption)")
    try:
        spin_count = int(password.get("spinCount", ""))
        found = AgileEncryption(
            document=_cipher(key_data), password=_cipher(password), spin_count=spin_count,
            verifier_input=_base64(password, "encryptedVerifierHashInput"),
            verifier_value=_base64(password, "encryptedVerifierHashValue"),
            key_value=_base64(password, "encryptedKeyValue"))
    except (ValueError, binascii.Error) as exc:
        raise Unreadable(f"EncryptionInfo: {exc}") from exc
    if not 0 <= spin_count <= MAX_SPIN:
        raise Unreadable(f"spin count {spin_count}")
    return found


def _cipher(node: ElementTree.Element) -> _Cipher:
    if node.get("cipherAlgorithm") != "AES" or node.get("cipherChaining") != "ChainingModeCBC":
        raise ValueError(f"cipher {node.get('cipherAlgorithm')} "
                         f"{node.get('cipherChaining')} is not AES-CBC")
    hash_name = _HASHES.get(node.get("hashAlgorithm", ""))
    key_bits = int(node.get("keyBits", ""))
    if hash_name is None or key_bits not in (128, 192, 256):
        raise ValueError(f"hash {node.get('hashAlgorithm')}, {key_bits}-bit key")
    return _Cipher(salt=_base64(node, "saltValue"), key_bytes=key_bits // 8,
                   hash_name=hash_name)


def _base64(node: ElementTree.Element, attribute: str) -> bytes:
    value = node.get(attribute)
    if not value:
        raise ValueError(f"no {attribute}")
    return base64.b64decode(value, validate=True)


# -- Excel 97-2003: RC4 ------------------------------------------------------------------

VELVET_SWEATSHOP = "VelvetSweatshop"
RC4_BLOCK = 1024
RC4_KEY_BITS = frozenset({40, 56, 64, 80, 128})   # CryptoAPI's, within a SHA-1 digest


class Rc4Workbook:
    """The keys of an RC4-encrypted BIFF8 workbook stream, from its FilePass record."""

    def __init__(self, key_of: Callable[[int], bytes]) -> None:
        self._key_of = key_of
        self._keystreams: dict[int, bytes] = {}

    @classmethod
    def open(cls, filepass: bytes, password: str) -> Rc4Workbook | None:
        """The workbook's decryption when ``password`` opens it, else None;
        UnsupportedScheme for XOR obfuscation, Unreadable for damage."""
        if len(filepass) < 6:
            raise Unreadable("FilePass record cut short")
        kind, major, minor = struct.unpack_from("<HHH", filepass)
        if kind != 1:
            raise UnsupportedScheme("XOR obfuscation")
        encoded = password.encode("utf-16-le")
        if (major, minor) == (1, 1):                      # RC4, MD5-based (Office 97)
            if len(filepass) < 54:
                raise Unreadable("FilePass record cut short")
            salt, verifier = filepass[6:22], filepass[22:54]
            truncated = _digest("md5", (_digest("md5", encoded)[:5] + salt) * 16)[:5]

            def key_of(block: int) -> bytes:
                return _digest("md5", truncated + _INDEX.pack(block))
            check = "md5"
        elif major in (2, 3, 4) and minor == 2:           # RC4 CryptoAPI (Office 2002 on)
            if len(filepass) < 14:
                raise Unreadable("FilePass record cut short")
            header_size, = struct.unpack_from("<I", filepass, 10)
            at = 14 + header_size
            if header_size < 20 or len(filepass) < at + 60:
                raise Unreadable("FilePass record cut short")
            key_bits = struct.unpack_from("<I", filepass, 14 + 16)[0] or 40
            if key_bits not in RC4_KEY_BITS:
                raise Unreadable(f"RC4 key of {key_bits} bits")
            # The verifier: salt size, salt, encrypted verifier, hash size, its hash.
            salt = filepass[at + 4:at + 20]
            verifier = filepass[at + 20:at + 36] + filepass[at + 40:at + 60]
            start = _digest("sha1", salt + encoded)

            def key_of(block: int) -> bytes:
                digest = _digest("sha1", start + _INDEX.pack(block))
                return digest[:5] + bytes(11) if key_bits == 40 else digest[:key_bits // 8]
            check = "sha1"
        else:
            raise UnsupportedScheme(f"RC4 encryption {major}.{minor}")
        size = hashlib.new(check, usedforsecurity=False).digest_size
        clear = rc4(key_of(0), verifier[:16 + size])
        if _digest(check, clear[:16]) != clear[16:16 + size]:
            return None
        return cls(key_of)

    def decrypt(self, offset: int, data: bytes) -> bytes:
        """``data``, found at ``offset`` in the workbook stream, decrypted."""
        out = bytearray()
        while len(out) < len(data):
            block, within = divmod(offset + len(out), RC4_BLOCK)
            keystream = self._keystreams.get(block)
            if keystream is None:
                keystream = self._keystreams[block] = rc4(self._key_of(block),
                                                           bytes(RC4_BLOCK))
            chunk = data[len(out):len(out) + RC4_BLOCK - within]
            mask = keystream[within:within + len(chunk)]
            out += (int.from_bytes(chunk, "little") ^ int.from_bytes(mask, "little")
                    ).to_bytes(len(chunk), "little")
        return bytes(out)


def _digest(name: str, data: bytes) -> bytes:
    # The format's own (weak) hashes, to read a file: no security rests on them here.
    return hashlib.new(name, data, usedforsecurity=False).digest()


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4, the cipher of Office 97-2003's and older PDFs' encryption."""
    return Cipher(ARC4(key), mode=None).decryptor().update(data)
