"""Office documents encrypted with a password ([MS-OFFCRYPTO] agile encryption, what
Office 2010 and later write when a .docx, .xlsx or .pptx is given a password).

Malware campaigns send such documents with the password in the message text, exactly as
they do password-protected zips: no scanner can look inside, and the recipient is told
how to open it.  The file is an OLE2 compound file holding ``EncryptionInfo`` (an XML
description of the keys) and ``EncryptedPackage`` (the real document, AES-CBC in 4096-byte
segments).  A password is tried by hashing it with the salt and the spin count (100,000
rounds of SHA-512 as Office writes it), decrypting the verifier and comparing its hash;
the right one unwraps the document key.  Older schemes (Office 2007's "standard"
encryption, RC4 in 97-2003 files) are recognised and not opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portcullis.antivirus.readers import Unreadable

ENCRYPTION_INFO = "EncryptionInfo"
ENCRYPTED_PACKAGE = "EncryptedPackage"
MAX_INFO = 64 * 1024            # bytes of EncryptionInfo read (Office writes about 1 KB)
MAX_SPIN = 1_000_000            # Office writes 100,000; more only burns our time
SEGMENT = 4096
_VERIFIER_INPUT = bytes.fromhex("fea7d2763b4b9e79")
_VERIFIER_VALUE = bytes.fromhex("d7aa0f6d3061344e")
_KEY_VALUE = bytes.fromhex("146e0be7abacd0d6")
_HASHES = {"SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
_ENCRYPTION_NS = "{http://schemas.microsoft.com/office/2006/encryption}"
_KEY_ENCRYPTOR_NS = "{http://schemas.microsoft.com/office/2006/keyEncryptor/password}"
_INDEX = struct.Struct("<I")


class NotAgile(Exception):
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


@dataclass(frozen=True)
class Encryption:
    """What EncryptionInfo says: the document's cipher, and the password key's."""

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
        if len(package) < 8:
            raise Unreadable("EncryptedPackage cut short")
        # An 8-byte size, but writers leave junk in the upper half (so readers, Office's
        # and msoffcrypto's among them, take the lower): no mailed document is 4 GiB.
        size = struct.unpack_from("<I", package)[0]
        want = min(size, limit)
        out = bytearray()
        for index, start in enumerate(range(8, len(package), SEGMENT)):
            if len(out) >= want:
                break
            iv = self.document.hash(self.document.salt + _INDEX.pack(index))
            out += self.document.decrypt(key, iv, package[start:start + SEGMENT])
        return bytes(out[:want])


def encryption(info: bytes) -> Encryption:
    """EncryptionInfo read; raises NotAgile for the schemes not opened here and
    Unreadable for damage."""
    if len(info) < 8:
        raise Unreadable("EncryptionInfo cut short")
    major, minor = struct.unpack_from("<HH", info)
    if (major, minor) != (4, 4):
        raise NotAgile("standard encryption" if minor == 2 else f"encryption {major}.{minor}")
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
        raise NotAgile("no password key (certificate encryption)")
    try:
        spin_count = int(password.get("spinCount", ""))
        found = Encryption(
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
